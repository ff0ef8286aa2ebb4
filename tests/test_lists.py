"""List statuses: the /status parser (properties), every status rule, /ptw, imports keeping
statuses, plan-to-watch in the fold-in, and drops vetoing their whole franchise (discovery,
/similar, anime night) through a hand-made franchise map. Real SQLite, a really trained model."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core import Caller, Core
from bot.core.commands import parse_line
from bot.core.commands.lists import parse_ptw, parse_status
from bot.core.parsing import ArgumentError, UsageError
from bot.core.statuses import SETTABLE, WORDS, read_status, split_status
from bot.settings import Settings
from recommender import Recommender
from storage.importers import import_mal_xml
from storage.repository import Store
from tests.fixtures_model import SmallWorld, build_small_world
from tests.test_core import CATALOG, rows

ALICE = Caller("console", "alice", "alice")
MECHA_FRANCHISE = (1, 2, 3)  # "Mecha Story A/B/C": a hand-made series


# -- the parser --------------------------------------------------------------------------------
STATUS_VOCAB = {w.split()[0] for w in WORDS} | {w.split()[-1] for w in WORDS}
title_words = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=12
).filter(lambda w: w.casefold() not in STATUS_VOCAB and not w.startswith("/"))
spellings = st.sampled_from(sorted(WORDS)).flatmap(
    lambda w: st.sampled_from([w, w.upper(), w.title(), w.replace(" ", "-"), w.replace(" ", "_")])
)


@given(st.lists(title_words, min_size=1, max_size=5), spellings)
def test_status_at_the_end_is_read_and_the_title_kept(words: list[str], spelling: str):
    title = " ".join(words)
    request = parse_status("status", ALICE, f"{title} {spelling}")
    assert request.title == title
    assert (
        request.option
        == read_status(spelling)
        == WORDS[spelling.casefold().replace("-", " ").replace("_", " ")]
    )
    assert request.option in SETTABLE


@given(st.text(max_size=80))
def test_status_parser_answers_any_text_with_a_request_or_a_usage_hint(text: str):
    try:
        request = parse_status("status", ALICE, text)
    except ArgumentError:
        assert not text.strip()
        return
    assert request.title and request.title == request.title.strip()
    assert request.option is None or request.option in SETTABLE


@given(st.text(max_size=60))
def test_status_and_ptw_lines_never_raise_anything_but_usage(text: str):
    for line in (f"/status {text}", f"/ptw {text}", f"/season {text}"):
        with contextlib.suppress(UsageError):
            parse_line(ALICE, line)


def test_parser_examples():
    assert split_status("Monster on hold") == ("Monster", "on_hold")
    assert split_status("Monster On-Hold") == ("Monster", "on_hold")
    assert split_status("Steins;Gate plan to watch") == ("Steins;Gate", "plan_to_watch")
    assert split_status("Naruto ptw") == ("Naruto", "plan_to_watch")
    assert split_status("Dropped") == ("Dropped", None)  # only a word: a title
    assert split_status("Cowboy Bebop") == ("Cowboy Bebop", None)
    assert parse_ptw("ptw", ALICE, "").setting is None
    assert parse_ptw("ptw", ALICE, "add Monster").setting == "add"
    assert parse_ptw("ptw", ALICE, "3").k == 3
    with pytest.raises(ArgumentError):
        parse_ptw("ptw", ALICE, "add")
    with pytest.raises(ArgumentError):
        parse_ptw("ptw", ALICE, "whatever this is")


# -- status rules in chat (no model needed) ----------------------------------------------------
@pytest.fixture
def core(tmp_path: Path) -> Core:
    store = Store(tmp_path / "anirec.db")
    store.catalog.upsert(CATALOG)
    settings = Settings(_env_file=None, database=store.path)
    yield Core(store, Recommender(store, None), settings, rate_limited=False)
    store.close()


async def test_status_set_keeps_score_and_ptw_refuses_a_scored_title(core: Core):
    await core.handle_text(ALICE, "/rate Monster 8")
    reply = await core.handle_text(ALICE, "/status Monster dropped")
    assert reply.kind == "ok" and "dropped" in reply.text
    assert rows(core.store, ALICE)[60] == (8, "dropped", "chat")
    refused = await core.handle_text(ALICE, "/status Monster plan to watch")
    assert refused.kind == "error" and "/unrate" in refused.text
    assert rows(core.store, ALICE)[60] == (8, "dropped", "chat")
    await core.handle_text(ALICE, "/status Monster on hold")
    assert rows(core.store, ALICE)[60] == (8, "on_hold", "chat")


async def test_rating_a_planned_title_completes_it_and_keeps_other_statuses(core: Core):
    await core.handle_text(ALICE, "/ptw add Naruto")
    assert rows(core.store, ALICE)[20] == (None, "plan_to_watch", "chat")
    await core.handle_text(ALICE, "/rate Naruto 7")
    assert rows(core.store, ALICE)[20] == (7, "completed", "chat")
    await core.handle_text(ALICE, "/status Monster watching")
    await core.handle_text(ALICE, "/rate Monster 9")
    assert rows(core.store, ALICE)[60] == (9, "watching", "chat")
    await core.handle_text(ALICE, "/status Cowboy Bebop dropped")
    await core.handle_text(ALICE, "/rate Cowboy Bebop 4")
    assert rows(core.store, ALICE)[1] == (4, "dropped", "chat")


async def test_status_buttons_and_show(core: Core):
    shown = await core.handle_text(ALICE, "/status Monster")
    assert "not on your list" in shown.text
    labels = [b.label for row in shown.buttons for b in row]
    assert labels == ["Watching", "Completed", "On hold", "Dropped", "Plan to watch"]
    plan = shown.buttons[0][4]
    pressed = await core.press(ALICE, plan.action)
    assert "plan to watch" in pressed.text
    assert rows(core.store, ALICE)[60] == (None, "plan_to_watch", "chat")
    shown = await core.handle_text(ALICE, "/status Monster")
    assert "plan to watch" in shown.text
    other = Caller("console", "bob", "bob")
    assert (await core.press(other, shown.buttons[0][0].action)).kind == "denied"
    assert (await core.press(ALICE, "st:60:z:1")).kind == "error"  # unknown code: expired


async def test_ptw_remove_and_profile_lists(core: Core):
    await core.handle_text(ALICE, "/ptw add Monster")
    await core.handle_text(ALICE, "/status Naruto watching")
    profile = await core.handle_text(ALICE, "/profile")
    assert "watching 1" in profile.text and "plan to watch 1" in profile.text
    reply = await core.handle_text(ALICE, "/ptw remove Naruto")
    assert "isn't on your plan-to-watch list" in reply.text
    reply = await core.handle_text(ALICE, "/ptw remove Monster")
    assert 60 not in rows(core.store, ALICE)


async def test_ptw_without_a_model_lists_by_mal_score_and_hides_adult_titles(core: Core):
    for title in ("Naruto", "Monster", "Spicy Secret"):
        await core.handle_text(ALICE, f"/ptw add {title}")
    reply = await core.handle_text(ALICE, "/ptw")
    assert [c.anime_id for c in reply.picks] == [60, 20]  # 8.7, 7.8; the adult one hidden
    await core.handle_text(ALICE, "/settings nsfw on")
    reply = await core.handle_text(ALICE, "/ptw")
    assert [c.anime_id for c in reply.picks] == [60, 20, 70]


def test_mal_xml_import_keeps_statuses(tmp_path: Path):
    xml = b"""<?xml version="1.0" encoding="UTF-8"?><myanimelist>
    <anime><series_animedb_id>1</series_animedb_id><my_score>9</my_score>
      <my_status>Completed</my_status></anime>
    <anime><series_animedb_id>20</series_animedb_id><my_score>0</my_score>
      <my_status>Dropped</my_status></anime>
    <anime><series_animedb_id>30</series_animedb_id><my_score>0</my_score>
      <my_status>On-Hold</my_status></anime>
    <anime><series_animedb_id>50</series_animedb_id><my_score>0</my_score>
      <my_status>Watching</my_status></anime>
    <anime><series_animedb_id>60</series_animedb_id><my_score>0</my_score>
      <my_status>Plan to Watch</my_status></anime>
    </myanimelist>"""
    with Store(tmp_path / "a.db") as store:
        store.catalog.upsert(CATALOG)
        user = store.users.ensure("console", "alice", "alice")
        import_mal_xml(store, user, xml)
        got = {r.anime_id: (r.score, r.status) for r in store.ratings.of_user(user.id)}
    assert got == {
        1: (9, "completed"),
        20: (None, "dropped"),
        30: (None, "on_hold"),
        50: (None, "watching"),
        60: (None, "plan_to_watch"),
    }


def test_csv_import_keeps_numeric_statuses(tmp_path: Path):
    from storage.importers import import_ratings

    path = tmp_path / "animelist.csv"
    path.write_text(
        "user_id,anime_id,status,score,num_episodes_watched\n"
        "7,1,2,9,26\n7,20,4,0,3\n7,60,6,0,0\n7,30,3,0,1\n7,50,1,0,2\n"
    )
    with Store(tmp_path / "b.db") as store:
        store.catalog.upsert(CATALOG)
        import_ratings(store, path)
        user = store.users.find("dataset", "7")
        assert user is not None
        got = {r.anime_id: (r.score, r.status) for r in store.ratings.of_user(user.id)}
    assert got == {
        1: (9, "completed"),
        20: (None, "dropped"),
        60: (None, "plan_to_watch"),
        30: (None, "on_hold"),
        50: (None, "watching"),
    }


# -- with a trained model ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> SmallWorld:
    w = build_small_world(tmp_path_factory.mktemp("lists-world"))
    yield w
    w.close()


def franchise(anime_id: int) -> tuple[int, ...]:
    return MECHA_FRANCHISE if anime_id in MECHA_FRANCHISE else (anime_id,)


def mecha_fan(world: SmallWorld, name: str, dropped: int | None = 1) -> int:
    mecha = world.anime_by_genre["Mecha"]
    uid = world.new_user(name, {a: 9 for a in mecha[4:10]})
    if dropped is not None:
        world.store.ratings.upsert(uid, dropped, None, "dropped")
    return uid


def ids(picks: list) -> set[int]:
    return {p.anime.anime_id for p in picks}


def test_a_drop_vetoes_its_whole_franchise_in_discovery_similar_and_night(world: SmallWorld):
    fan = mecha_fan(world, "dropper")
    friend = mecha_fan(world, "friend", dropped=None)
    plain = Recommender(world.store, world.checkpoint)
    # without a franchise map only the dropped title itself is vetoed: its sequels show up
    assert ids(plain.recommend(fan, 15)) & {2, 3}
    assert ids(plain.similar(4, 15, user_id=fan)) & {2, 3}
    rec = Recommender(world.store, world.checkpoint, franchise_members=franchise)
    assert not ids(rec.recommend(fan, 15)) & set(MECHA_FRANCHISE)
    assert not ids(rec.similar(4, 15, user_id=fan)) & set(MECHA_FRANCHISE)
    assert ids(rec.similar(4, 15)) & {2, 3}  # nobody's drops when nobody asks
    assert len(rec.similar(4, 10, user_id=fan)) == 10  # refilled after the veto
    night = rec.anime_night([fan, friend], 10)
    assert night and not ids(night) & set(MECHA_FRANCHISE)
    assert ids(rec.recommend(friend, 15)) & {2, 3}  # the friend's own picks keep them


def test_set_franchise_applies_to_cached_users(world: SmallWorld):
    fan = mecha_fan(world, "dropper2")
    rec = Recommender(world.store, world.checkpoint)
    assert ids(rec.recommend(fan, 15)) & {2, 3}
    rec.set_franchise(franchise)
    assert not ids(rec.recommend(fan, 15)) & set(MECHA_FRANCHISE)


def test_plan_to_watch_rows_fold_in_as_interest(world: SmallWorld):
    """A person whose list is only plan-to-watch Horror titles gets Horror picks (before,
    such rows were ignored and they got the popular cold-start list)."""
    horror = world.anime_by_genre["Horror"]
    uid = world.new_user("planner", statuses={a: "plan_to_watch" for a in horror[:6]})
    rec = Recommender(world.store, world.checkpoint)
    picks = rec.recommend(uid, 5)
    assert all(world.genre_of(p.anime.anime_id) == "Horror" for p in picks)
    assert not ids(picks) & set(horror[:6])  # planned titles are on the list: not picks


async def test_ptw_orders_by_predicted_score_with_nsfw_rules(world: SmallWorld):
    settings = Settings(_env_file=None, database=world.db_path)
    rec = Recommender(world.store, world.checkpoint)
    core = Core(world.store, rec, settings, rate_limited=False)
    caller = Caller("console", "ptw-fan", "ptw-fan")
    romance = world.anime_by_genre["Romance"]
    for a in romance[:6]:
        await core.handle_text(caller, f"/rate #{a} 10")
    planned = [romance[8], romance[9], world.anime_by_genre["Horror"][0], world.nsfw_ids[0]]
    for a in planned:
        await core.handle_text(caller, f"/ptw add #{a}")
    reply = await core.handle_text(caller, "/ptw")
    shown = [c.anime_id for c in reply.picks]
    assert world.nsfw_ids[0] not in shown and set(shown) == set(planned[:3])
    uid = world.store.users.find("console", "ptw-fan").id
    predicted = [rec.predict(uid, a) for a in shown]
    assert predicted == sorted(predicted, reverse=True)
    assert shown[-1] == world.anime_by_genre["Horror"][0]  # a Romance fan: Horror last
    assert reply.picks[0].buttons[0].label == "Watching now"
    await core.handle_text(caller, "/settings nsfw on")
    reply = await core.handle_text(caller, "/ptw 10")
    assert world.nsfw_ids[0] in [c.anime_id for c in reply.picks]


async def test_pick_cards_offer_plan_to_watch(world: SmallWorld):
    settings = Settings(_env_file=None, database=world.db_path)
    core = Core(
        world.store, Recommender(world.store, world.checkpoint), settings, rate_limited=False
    )
    caller = Caller("console", "carder", "carder")
    await core.handle_text(caller, f"/rate #{world.anime_by_genre['Sports'][0]} 9")
    reply = await core.handle_text(caller, "/recommend")
    card = reply.picks[0]
    plan = next(b for b in card.buttons if b.label == "Plan to watch")
    await core.press(caller, plan.action)
    uid = world.store.users.find("console", "carder").id
    assert any(
        r.anime_id == card.anime_id and r.status == "plan_to_watch"
        for r in world.store.ratings.of_user(uid)
    )
    again = await core.handle_text(caller, "/recommend")
    assert card.anime_id not in [c.anime_id for c in again.picks]
