"""Taste between people, steering from the picks and the onboarding deck, through the real core,
the real recommender (a small trained model) and a real SQLite file."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from bot.core import Caller, Core, Reply
from bot.core import actions as act
from bot.settings import Settings
from recommender import Recommender
from recommender.onboarding import DeckShape, select_deck
from recommender.steering import LessLike
from tests.fixtures_model import TASTE_GENRES, SmallWorld, build_small_world

GROUP = "g-social"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> SmallWorld:
    w = build_small_world(tmp_path_factory.mktemp("social"))
    yield w
    w.close()


@pytest.fixture
def core(world: SmallWorld) -> Core:
    settings = Settings(_env_file=None, database=world.db_path)
    return Core(
        world.store, Recommender(world.store, world.checkpoint), settings, rate_limited=False
    )


def in_group(name: str, chat: str = GROUP) -> Caller:
    return Caller("telegram", name, name, chat_id=chat, is_group=True)


def in_dm(name: str) -> Caller:
    return Caller("telegram", name, name, chat_id=name)


async def rate(core: Core, caller: Caller, ratings: dict[int, int]) -> None:
    for aid, score in ratings.items():
        reply = await core.handle_text(caller, f"/rate #{aid} {score}")
        assert reply is not None and "Rated" in reply.text, reply


def buttons(reply: Reply, label: str) -> list[str]:
    return [b.action for b in reply.all_buttons() if b.label == label]


# -- /compat -------------------------------------------------------------------------------------
async def test_compat_needs_the_other_person_to_share(world: SmallWorld, core: Core) -> None:
    mecha, sports = world.anime_by_genre["Mecha"], world.anime_by_genre["Sports"]
    ann, ben = in_group("ann_c"), in_group("ben_c")
    await rate(core, ann, {mecha[0]: 10, mecha[1]: 9, sports[0]: 3})
    await rate(core, ben, {mecha[0]: 9, mecha[2]: 10, sports[0]: 9})
    denied = await core.handle_text(ann, "/compat @ben_c")
    assert denied is not None and denied.kind == "denied" and "share" in denied.text
    assert "Mecha" not in denied.text  # nothing of ben's list leaks
    await core.handle_text(ben, "/settings share on")
    shown = await core.handle_text(ann, "/compat @ben_c")
    assert shown is not None and shown.kind == "ok", shown
    assert "% compatible" in shown.text
    assert f"Both loved: {world.anime[mecha[0] - 1].title}" in shown.text
    assert f"Biggest disagreement: {world.anime[sports[0] - 1].title}" in shown.text
    unknown = await core.handle_text(ann, "/compat @nobody_here")
    assert unknown is not None and unknown.kind == "error"
    itself = await core.handle_text(ann, "/compat @ann_c")
    assert itself is not None and "That's you" in itself.text


async def test_compat_means_something_without_shared_titles(world: SmallWorld) -> None:
    """Two Mecha fans who rated different titles match better than a Mecha and a Horror fan."""
    rec = Recommender(world.store, world.checkpoint)
    mecha, horror = world.anime_by_genre["Mecha"], world.anime_by_genre["Horror"]
    a = world.new_user("mecha_a", {mecha[0]: 10, mecha[1]: 9, mecha[2]: 10})
    b = world.new_user("mecha_b", {mecha[3]: 10, mecha[4]: 9, mecha[5]: 9})
    c = world.new_user("horror_c", {horror[0]: 10, horror[1]: 9, horror[2]: 10})
    same, other = rec.compatibility(a, b), rec.compatibility(a, c)
    assert same.shared == other.shared == 0
    assert same.score > other.score
    assert same.model_agreement > other.model_agreement
    assert rec.taste_vector(a).shape == rec.taste_vector(c).shape
    assert rec.compatibility(a, a).score >= same.score
    assert same.for_a is not None and same.for_a[0].anime_id in mecha[3:6]


# -- /twin and /fans ------------------------------------------------------------------------------
async def test_twin_and_fans_show_only_people_who_share(world: SmallWorld, core: Core) -> None:
    romance, comedy = world.anime_by_genre["Romance"], world.anime_by_genre["Comedy"]
    chat = "g-twin"
    me, twin, shy, far = (in_group(n, chat) for n in ("me_t", "twin_t", "shy_t", "far_t"))
    await rate(core, me, {romance[0]: 10, romance[1]: 9, comedy[0]: 3})
    await rate(core, twin, {romance[0]: 10, romance[2]: 9, comedy[0]: 2})
    await rate(core, shy, {romance[0]: 10, romance[1]: 9, comedy[0]: 3})  # a closer match...
    await rate(core, far, {comedy[0]: 10, comedy[1]: 10, romance[0]: 2})
    outsider = in_group("out_t", "elsewhere")
    await rate(core, outsider, {romance[0]: 10, romance[1]: 9})
    for caller in (twin, far):
        await core.handle_text(caller, "/settings share on")
    await core.handle_text(outsider, "/settings share on")
    reply = await core.handle_text(me, "/twin")
    assert reply is not None and "Your taste twin here: twin_t" in reply.text, reply
    assert "shy_t" not in reply.text and "out_t" not in reply.text  # ...but never shown
    assert "not shown to others" in reply.text
    fans = await core.handle_text(me, f"/fans #{romance[0]}")
    assert fans is not None and "twin_t: 10/10" in fans.text
    assert "shy_t" not in fans.text and "me_t" not in fans.text and "out_t" not in fans.text
    assert "far_t" not in fans.text  # shares, but scored it 2
    dm = await core.handle_text(in_dm("me_t"), "/twin")
    assert dm is not None and dm.kind == "error" and "group" in dm.text


async def test_names_shown_to_others_never_ping(world: SmallWorld, core: Core) -> None:
    sports = world.anime_by_genre["Sports"]
    chat = "g-ping"
    loud = Caller("telegram", "loud_p", "@everyone\x1b[2J", chat_id=chat, is_group=True)
    asker = in_group("ask_p", chat)
    await rate(core, loud, {sports[0]: 10})
    await rate(core, asker, {sports[0]: 9})
    await core.handle_text(loud, "/settings share on")
    for line in ("/twin", f"/fans #{sports[0]}"):
        reply = await core.handle_text(asker, line)
        assert reply is not None and "everyone" in reply.text
        assert "@everyone" not in reply.text and "\x1b" not in reply.text


# -- less like this -------------------------------------------------------------------------------
def _explained_by(rec: Recommender, user: int, title_id: int, k: int = 10) -> int:
    return sum(
        bool(p.because) and p.because[0].anime_id == title_id for p in rec.recommend(user, k)
    )


async def test_less_like_this_leans_away_and_undo_restores(world: SmallWorld, core: Core) -> None:
    mecha, comedy = world.anime_by_genre["Mecha"], world.anime_by_genre["Comedy"]
    caller = in_dm("lena_l")
    await rate(core, caller, {mecha[0]: 10, mecha[1]: 9, comedy[0]: 9, comedy[1]: 8})
    reply = await core.handle_text(caller, "/recommend 10")
    assert reply is not None and reply.picks
    less = buttons(reply, "Less like this")
    assert len(less) == len(reply.picks)
    user = world.store.users.find("telegram", "lena_l")
    assert user is not None
    rec = core.recommender
    behind = Counter(int(a.split(":")[2]) for a in less if a.split(":")[1] == "t").most_common(1)[
        0
    ][0]
    before = _explained_by(rec, user.id, behind)
    assert before >= 1
    press = next(a for a in less if a.split(":")[1:3] == ["t", str(behind)])
    answer = await core.press(caller, press)
    assert "less like" in answer.text and answer.ephemeral
    assert LessLike.from_settings(world.store.users.get(user.id).settings).titles == (behind,)
    after = _explained_by(rec, user.id, behind)
    assert after < before  # no restart, no retrain: the cached fold-in was dropped
    again = await core.handle_text(caller, "/recommend 10")
    assert again is not None
    assert sum(world.anime[behind - 1].title in c.reason for c in again.picks) < before
    # someone else cannot press it, and a made-up title is an expired button
    assert (await core.press(in_dm("mallory_l"), press)).kind == "denied"
    forged = await core.press(caller, act.encode(act.LESS, "t", 999_999, user.id))
    assert forged.kind == "error" and "expired" in forged.text
    # listed in /settings with an Undo button that works
    shown = await core.handle_text(caller, "/settings")
    assert shown is not None and world.anime[behind - 1].title in shown.text
    undo = [b.action for b in shown.all_buttons() if b.label.startswith("Undo")]
    assert undo == [act.encode(act.LESS_UNDO, "t", behind, user.id)]
    assert "Undone" in (await core.press(caller, undo[0])).text
    assert not LessLike.from_settings(world.store.users.get(user.id).settings)
    assert _explained_by(rec, user.id, behind) == before


async def test_less_of_a_genre_pushes_it_down(world: SmallWorld) -> None:
    rec = Recommender(world.store, world.checkpoint)
    comedy, sports = world.anime_by_genre["Comedy"], world.anime_by_genre["Sports"]
    uid = world.new_user("gina_l", {comedy[0]: 9, sports[0]: 9, comedy[1]: 8, sports[1]: 9})

    def count() -> int:
        return sum("Comedy" in p.anime.genres for p in rec.recommend(uid, 10))

    before = count()
    world.store.users.update_settings(uid, less=LessLike(genres=("Comedy",)).to_json())
    rec.invalidate(uid)
    assert count() < before


# -- settings -------------------------------------------------------------------------------------
async def test_settings_share_and_titles(world: SmallWorld, core: Core) -> None:
    caller = in_dm("set_s")
    shown = await core.handle_text(caller, "/settings")
    assert (
        shown is not None and "Sharing your taste with groups" in shown.text and "off" in shown.text
    )
    assert world.store.users.find("telegram", "set_s") is None  # showing writes nothing
    await core.handle_text(caller, "/settings share on")
    await core.handle_text(caller, "/settings titles english")
    user = world.store.users.find("telegram", "set_s")
    assert user is not None and user.settings == {"share": True, "titles": "english"}
    bad = await core.handle_text(caller, "/settings titles klingon")
    assert bad is not None and bad.kind == "error"
    chat = await core.handle_text(in_group("set_s"), "/settings chat share on")
    assert chat is not None and chat.kind == "error"


# -- onboarding -----------------------------------------------------------------------------------
def test_deck_is_popular_spread_and_safe(world: SmallWorld) -> None:
    rec = Recommender(world.store, world.checkpoint)
    deck = rec.onboarding_deck(10)
    ids = [a.anime_id for a in deck]
    assert len(ids) == 10 == len(set(ids))
    assert not set(ids) & set(world.nsfw_ids)
    assert len({world.genre_of(i) for i in ids}) >= 4  # spread over the model's space
    assert rec.onboarding_deck(10) == deck  # one deck per model
    assert {a.anime_id for a in rec.onboarding_deck(10, nsfw=True)} <= {
        a.anime_id for a in world.anime
    }


def test_deck_selection_rules() -> None:
    """Only the most popular are candidates; a universally loved title loses to a divisive
    one; and a near-duplicate of a chosen title comes after a distant one."""
    vectors = np.array([[1, 0], [1, 0.01], [0, 1], [0.7, 0.7], [1, 0]], float)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    popularity = np.array([100, 90, 80, 70, 1], float)
    spread = np.array([3.0, 3.0, 2.5, 0.2, 3.0])
    shape = DeckShape(size=3, pool=4, spread_power=1.0)
    deck = select_deck(vectors, popularity, spread, np.ones(5, bool), shape)
    assert deck[:2] == [0, 2]  # 1 is a near-copy of 0: the distant 2 comes first
    assert 4 not in deck  # not popular enough to be a candidate
    assert 3 not in deck[:2]  # loved by all (no spread): says little
    allowed = np.array([False, True, True, True, True])
    assert 0 not in select_deck(vectors, popularity, spread, allowed, shape)


async def test_start_offers_the_deck_rated_or_skipped(world: SmallWorld, core: Core) -> None:
    caller = in_dm("newbie_o")
    hello = await core.handle_text(caller, "/start")
    assert hello is not None
    offer = buttons(hello, "Quick start: rate 10 titles")
    assert offer and world.store.users.find("telegram", "newbie_o") is None
    first = await core.press(caller, offer[0])
    assert "Quick start 1/10" in first.text and len(first.picks) == 1
    shown = first.picks[0].anime_id
    eight = next(b.action for b in first.all_buttons() if b.label == "8")
    second = await core.press(caller, eight)
    assert "Rated" in second.text and "Quick start 2/10" in second.text and second.edit
    user = world.store.users.find("telegram", "newbie_o")
    assert user is not None
    assert {r.anime_id: r.score for r in world.store.ratings.of_user(user.id)} == {shown: 8}
    skipped = await core.press(caller, buttons(second, "Haven't seen it")[0])
    assert "Quick start 3/10" in skipped.text
    assert second.picks[0].anime_id not in {
        r.anime_id for r in world.store.ratings.of_user(user.id)
    }
    # few ratings: /recommend offers the deck too; a seasoned user is not offered it
    picks = await core.handle_text(caller, "/recommend")
    assert picks is not None and buttons(picks, "Quick start: rate 10 titles")
    old = in_dm("veteran_o")
    await rate(core, old, {a: 8 for a in world.anime_by_genre[TASTE_GENRES[0]][:5]})
    assert not buttons(await core.handle_text(old, "/start"), "Quick start: rate 10 titles")


# -- title language -------------------------------------------------------------------------------
def test_english_titles_are_picked_from_aliases() -> None:
    from recommender.english import Renamer, pick_english

    aliases = ["SnK", "AoT", "Attack on Titan", "L'Attaque des Titans", "進撃の巨人"]
    assert pick_english("Shingeki no Kyojin", aliases) == "Attack on Titan"
    assert pick_english("Naruto", ["NARUTO", "Naruto"]) is None
    rename = Renamer({"Naruto": "Naruto (EN)", "Naruto: Shippuuden": "Naruto Shippuden"})
    assert rename("Naruto: Shippuuden and Naruto.") == "Naruto Shippuden and Naruto (EN)."
    assert rename("Narutos and xNaruto") == "Narutos and xNaruto"


async def test_title_language_applies_to_replies_and_search(world: SmallWorld, core: Core) -> None:
    horror = world.anime_by_genre["Horror"]
    first = world.anime[horror[0] - 1]
    core.recommender.add_alias("The Haunted House of Fear", first.anime_id)
    caller = in_dm("eng_t")
    await rate(core, caller, {horror[1]: 9})
    romaji = await core.handle_text(caller, f"/rate #{first.anime_id} 8")
    assert romaji is not None and first.title in romaji.text
    await core.handle_text(caller, "/settings titles english")
    english = await core.handle_text(caller, f"/rate #{first.anime_id} 9")
    assert english is not None and "The Haunted House of Fear: 9/10" in english.text
    assert first.title not in english.text
    found = await core.search_titles(caller, "haunted house")
    assert found and found[0].title == "The Haunted House of Fear"
    similar = await core.handle_text(caller, f"/similar #{horror[1]}")
    assert similar is not None
    assert all(c.title != first.title for c in similar.picks)
    # someone on romaji still sees the catalog's title
    other = await core.search_titles(in_dm("rom_t"), "haunted house")
    assert other and other[0].title == first.title


def test_push_down_weakens_titles_like_the_ones_named_and_the_genres_named():
    """Each anime loses TITLE_PUSH x its highest (clipped) cosine to a named title, plus
    GENRE_PUSH per named genre it has; unknown titles and genres are ignored."""
    from recommender.filters import ItemTable
    from recommender.steering import GENRE_PUSH, TITLE_PUSH, push_down
    from storage.rows import Anime

    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(40, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(100, 140)
    catalog = [
        Anime(int(a), f"t{a}", ("Comedy",) if a % 3 else ("Drama",), "TV", 12, None, 0, False)
        for a in ids
    ]
    index_of = {int(a): i for i, a in enumerate(ids)}
    less = LessLike(titles=(104, 117, 999), genres=("Drama", "Nope"))
    got = push_down(less, vectors, index_of, ItemTable(ids, catalog))
    sim = np.clip(vectors @ vectors[[4, 17]].T, 0.0, 1.0).max(axis=1)
    drama = np.array([a % 3 == 0 for a in ids], np.float32)
    assert np.allclose(got, TITLE_PUSH * sim + GENRE_PUSH * drama, atol=1e-6)
    assert got[4] >= TITLE_PUSH - 1e-6 and got[17] >= TITLE_PUSH - 1e-6
