"""The recommender on a REAL small trained model (tests/fixtures_model.py): exclusions, filters
and refill, NSFW, cold start, explanations, similar, the anime night, cache staleness and a hot
swap under concurrent load."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from recommender import NoModelError, Recommender, UnknownTitleError
from recommender.checkpoint import CheckpointError
from recommender.filters import FilterError
from recommender.types import Filters
from tests.fixtures_model import TASTE_GENRES, SmallWorld, build_small_world


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> SmallWorld:
    w = build_small_world(tmp_path_factory.mktemp("world"))
    yield w
    w.close()


@pytest.fixture(scope="module")
def rec(world) -> Recommender:
    return Recommender(world.store, world.checkpoint)


def genre_share(picks, genre: str) -> float:
    return sum(genre in p.anime.genres for p in picks) / max(len(picks), 1)


def test_no_model_yet(world):
    rec = Recommender(world.store)
    assert not rec.ready and rec.info() is None
    user = world.new_user("nomodel")
    with pytest.raises(NoModelError):
        rec.recommend(user)
    with pytest.raises(NoModelError):
        rec.similar(world.anime_by_genre["Mecha"][0])
    with pytest.raises(NoModelError):
        rec.anime_night([user])


def test_info(rec, world):
    info = rec.info()
    assert rec.ready and info.path == str(world.checkpoint)
    assert info.n_anime == len(world.anime) and info.version


def test_nothing_on_the_list_is_recommended(rec, world):
    mecha = world.anime_by_genre["Mecha"]
    statuses = {
        mecha[3]: "dropped",
        mecha[4]: "plan_to_watch",
        mecha[5]: "not_interested",
        mecha[6]: "completed",
    }
    user = world.new_user("lister", {mecha[0]: 10, mecha[1]: 9, mecha[2]: None}, statuses)
    listed = {r.anime_id for r in world.store.ratings.of_user(user)}
    assert len(listed) == 7
    every = rec.recommend(user, k=len(world.anime))
    assert every and not listed & {p.anime.anime_id for p in every}
    assert len(every) == len(world.anime) - len(listed) - len(world.nsfw_ids)


def test_planted_taste_comes_first_and_is_explained(rec, world):
    mecha = world.anime_by_genre["Mecha"]
    user = world.new_user(
        "mecha-fan",
        {
            mecha[0]: 10,
            mecha[1]: 9,
            mecha[2]: 10,
            mecha[3]: 9,
            world.anime_by_genre["Romance"][0]: 3,
        },
    )
    picks = rec.recommend(user, k=5)
    assert len(picks) == 5 and genre_share(picks, "Mecha") == 1.0
    rated = set(mecha[:4])
    for p in picks:
        assert p.because, "every pick names at least one rated title"
        assert 1 <= len(p.because) <= 3
        assert {a.anime_id for a in p.because} <= rated
        assert p.because[0].title in p.reason and "Mecha" in p.genres
        assert 1.0 <= p.predicted_score <= 10.0
    assert picks == sorted(picks, key=lambda p: -p.rank_score)
    assert rec.favourite_genres(user)[0] == "Mecha"
    assert rec.predict(user, picks[0].anime.anime_id) == pytest.approx(
        picks[0].predicted_score, abs=0.01
    )
    liked = rec.predict(user, mecha[5])
    disliked = rec.predict(user, world.anime_by_genre["Horror"][0])
    assert liked > disliked


def test_filters_apply_and_refill_to_k(rec, world):
    user = world.new_user("filtered", {a: 9 for a in world.anime_by_genre["Comedy"][:3]})
    base = rec.recommend(user, k=8)
    assert len(base) == 8
    no_comedy = rec.recommend(user, k=8, filters=Filters(exclude_genres=frozenset({"Comedy"})))
    assert len(no_comedy) == 8 and all("Comedy" not in p.anime.genres for p in no_comedy)
    horror = rec.recommend(user, k=8, filters=Filters(include_genres=frozenset({"horror"})))
    assert len(horror) == 8 and all("Horror" in p.anime.genres for p in horror)
    movies = rec.recommend(user, k=8, filters=Filters(types=frozenset({"Movie"})))
    assert len(movies) == 8 and all(p.anime.type == "Movie" for p in movies)
    floor = 100_000
    popular = rec.recommend(user, k=8, filters=Filters(min_members=floor))
    assert len(popular) == 8 and all(p.anime.members >= floor for p in popular)
    narrow = Filters(include_genres=frozenset({"Sports"}), types=frozenset({"OVA"}))
    passing = {
        a.anime_id for a in world.anime if "Sports" in a.genres and a.type == "OVA" and not a.nsfw
    }
    tiny = rec.recommend(user, k=len(passing) + 5, filters=narrow)
    assert {p.anime.anime_id for p in tiny} == passing  # fewer pass than asked: all, no padding
    with pytest.raises(FilterError, match="unknown genre"):
        rec.recommend(user, filters=Filters(include_genres=frozenset({"Mech"})))


def test_nsfw_hidden_unless_opted_in(rec, world):
    romance = world.anime_by_genre["Romance"]
    user = world.new_user("romantic", {a: 9 for a in romance[:5]})
    nsfw = set(world.nsfw_ids)
    everything = rec.recommend(user, k=len(world.anime))
    assert not nsfw & {p.anime.anime_id for p in everything}
    opted = rec.recommend(user, k=10, filters=Filters(nsfw=True))
    assert nsfw & {p.anime.anime_id for p in opted}, "planted: romance fans watch these"
    assert all(not p.anime.nsfw for p in rec.similar(romance[0], k=len(world.anime)))
    night = rec.anime_night([user], k=len(world.anime))
    assert not nsfw & {g.anime.anime_id for g in night}


def test_cold_start_zero_ratings_gives_popular_well_liked_titles(rec, world):
    user = world.new_user("newcomer")
    picks = rec.recommend(user, k=5)
    assert len(picks) == 5
    members = np.array([a.members for a in world.anime if not a.nsfw])
    assert np.mean([p.anime.members for p in picks]) > np.median(members)
    assert all(p.reason.startswith("Popular and well liked") and not p.because for p in picks)
    steered = rec.recommend(user, k=5, filters=Filters(include_genres=frozenset({"Sports"})))
    assert all("Sports" in p.anime.genres for p in steered)
    assert "Sports" in steered[0].reason


def test_cold_start_one_and_five_ratings_lean_to_the_taste(rec, world):
    horror = world.anime_by_genre["Horror"]
    one = world.new_user("one-rating", {horror[0]: 10})
    five = world.new_user("five-ratings", {a: 9 for a in horror[:5]})
    zero = rec.recommend(world.new_user("zero-rating"), k=5)
    one_picks = rec.recommend(one, k=5)
    five_picks = rec.recommend(five, k=5)
    assert genre_share(one_picks, "Horror") >= 0.6 > genre_share(zero, "Horror")
    assert genre_share(five_picks, "Horror") == 1.0
    assert horror[0] in {a.anime_id for p in one_picks for a in p.because}


def test_a_new_rating_is_seen_without_invalidate(rec, world):
    sports = world.anime_by_genre["Sports"]
    user = world.new_user("stale", {sports[0]: 9, sports[1]: 8})
    first = rec.recommend(user, k=3)[0].anime.anime_id
    world.store.ratings.upsert(user, first, 10)  # written by "another path": no invalidate()
    assert first not in {p.anime.anime_id for p in rec.recommend(user, k=20)}
    world.store.ratings.delete(user, first)
    assert first in {p.anime.anime_id for p in rec.recommend(user, k=20)}
    rec.invalidate(user)  # explicit invalidation works too (and is cheap)
    assert rec.recommend(user, k=3)[0].anime.anime_id == first


def test_similar(rec, world):
    mecha = world.anime_by_genre["Mecha"]
    picks = rec.similar(mecha[0], k=5)
    assert len(picks) == 5 and mecha[0] not in {p.anime.anime_id for p in picks}
    assert genre_share(picks, "Mecha") >= 0.8
    assert all(
        p.shared_genres == ("Mecha",) or "Mecha" in p.shared_genres
        for p in picks
        if "Mecha" in p.anime.genres
    )
    assert [p.similarity for p in picks] == sorted((p.similarity for p in picks), reverse=True)
    movies = rec.similar(mecha[0], k=3, filters=Filters(types=frozenset({"Movie"})))
    assert all(p.anime.type == "Movie" for p in movies)
    with pytest.raises(UnknownTitleError):
        rec.similar(123456)


def test_anime_night(rec, world):
    by = world.anime_by_genre
    alice = world.new_user("alice", {by["Mecha"][0]: 10, by["Mecha"][1]: 9, by["Mecha"][2]: 9})
    bob = world.new_user(
        "bob",
        {by["Comedy"][0]: 10, by["Comedy"][1]: 9, by["Mecha"][3]: 8},
        {by["Comedy"][2]: "dropped"},
    )
    cara = world.new_user(
        "cara", {by["Sports"][0]: 10, by["Sports"][1]: 9}, {by["Sports"][2]: "not_interested"}
    )
    members = [alice, bob, cara]
    night = rec.anime_night(members, k=5)
    assert len(night) == 5
    on_lists = {r.anime_id for m in members for r in world.store.ratings.of_user(m)}
    assert not on_lists & {g.anime.anime_id for g in night}
    for g in night:
        assert set(g.member_scores) == set(members)
        assert all(s >= rec.misery_threshold for s in g.member_scores.values())
        assert g.group_score == pytest.approx(np.mean(list(g.member_scores.values())), abs=0.01)
        assert set(g.served) <= set(members)
    assert {m for g in night for m in g.served} == set(members), "everyone is served"
    assert rec.anime_night([alice, alice]) == rec.anime_night([alice])
    with pytest.raises(ValueError):
        rec.anime_night([])


def test_misery_threshold_is_a_hard_veto(world):
    strict = Recommender(world.store, world.checkpoint, misery_threshold=9.9)
    by = world.anime_by_genre
    a = world.new_user("strict-a", {by["Mecha"][0]: 10, by["Mecha"][1]: 10})
    b = world.new_user("strict-b", {by["Horror"][0]: 10, by["Horror"][1]: 10})
    for g in strict.anime_night([a, b], k=5):
        assert min(g.member_scores.values()) >= 9.9


def test_swap_while_recommending(world, tmp_path):
    second = tmp_path / "second.safetensors"
    shutil.copy(world.checkpoint, second)
    rec = Recommender(world.store, world.checkpoint)
    users = [
        world.new_user(f"load-{i}", {world.anime_by_genre[g][i]: 9})
        for i, g in enumerate(TASTE_GENRES)
    ]
    errors: list[BaseException] = []
    counts = [0] * 4
    stop = threading.Event()

    def worker(n: int) -> None:
        try:
            while not stop.is_set():
                for u in users:
                    assert len(rec.recommend(u, k=5)) == 5
                    counts[n] += 1
                assert len(rec.anime_night(users[:3], k=3)) == 3
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        paths = []
        for i in range(6):
            path = second if i % 2 == 0 else world.checkpoint
            assert rec.swap(path).path == str(path)
            paths.append(rec.info().path)
        with pytest.raises(CheckpointError):
            bad = tmp_path / "bad.safetensors"
            bad.write_bytes(b"not a checkpoint")
            rec.swap(bad)
        assert rec.info().path == paths[-1]  # a failed swap keeps the serving model
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not errors, errors[0]
    assert all(c > 0 for c in counts)


def test_search_through_the_recommender(rec, world):
    assert rec.resolve_title("mecha story a").anime_id == world.anime_by_genre["Mecha"][0]
    assert rec.search("night romance 1")[0].anime.nsfw is False or not rec.search("night romance 1")
    assert rec.search("night romance 1", nsfw=True)[0].anime.title == "Night Romance 1"
    with pytest.raises(UnknownTitleError):
        rec.resolve_title("no such title at all qqq")


def test_fixture_is_a_plain_function(tmp_path: Path):
    """The BOT helpers call build_small_world directly; it must work on a fresh folder."""
    from tests.fixtures_model import small_catalog, small_ratings

    anime, by_genre, nsfw = small_catalog()
    rows = small_ratings(by_genre, nsfw)
    assert len(anime) == 86 and len(nsfw) == 6 and len(rows) > 3000


def test_explanation_pieces():
    from recommender import explain

    rows = [(("Mecha", "Action"), 10), (("Mecha",), 9), (("Romance",), 3), (("Comedy",), None)]
    assert explain.favourite_genres(rows, n=2) == ["Mecha", "Action"]
    assert explain.favourite_genres([], n=3) == []
    contrib = np.array([0.1, 0.9, 0.5, -0.2, 0.01])
    scored = np.array([True, False, True, True, True])
    assert explain.top_contributors(contrib, scored) == [2]  # 0.1 < a quarter of 0.5
    assert explain.top_contributors(contrib, np.zeros(5, bool)) == [1]  # unscored only if alone
    assert explain.top_contributors(np.array([-1.0]), np.array([True])) == []
    text = explain.sentence([("Steins;Gate", 10), ("Death Note", 9)], ["Sci-Fi", "Thriller"])
    assert text == (
        "Because you liked Steins;Gate and Death Note; Sci-Fi and Thriller, as you like."
    )
    assert explain.sentence([("Monster", None)], []) == "Because you watched Monster."
    assert explain.sentence([], [], cold=True, steered=["Mecha"]) == (
        "Popular and well liked in Mecha."
    )


def test_cli_recommend_similar_and_search(world, tmp_path):
    import json
    import os
    import subprocess
    import sys

    mecha = world.anime_by_genre["Mecha"]
    world.new_user("cli-fan", {mecha[0]: 10, mecha[1]: 9})
    env = {
        **os.environ,
        "ANIREC_DATABASE": str(world.db_path),
        "ANIREC_MODEL_DIR": str(tmp_path / "no-models"),
    }
    env.pop("ANIREC_DEBUG", None)

    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "bot.cli", *args],
            check=False,
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=300,
        )

    ck = ("--checkpoint", str(world.checkpoint))
    done = run("recommend", "--user", "console:cli-fan", "-k", "3", *ck, "--json")
    assert done.returncode == 0, done.stderr
    picks = json.loads(done.stdout)
    assert len(picks) == 3 and all("Mecha" in p["genres"] for p in picks)
    assert not {mecha[0], mecha[1]} & {p["anime_id"] for p in picks}
    near = run("similar", "mecha story a", "-k", "3", *ck, "--json")
    assert near.returncode == 0, near.stderr
    assert json.loads(near.stdout)["anime_id"] == mecha[0]
    text = run("search", "mecha stroy")
    assert text.returncode == 0 and "Mecha Story" in text.stdout
    nobody = run("recommend", "--user", "console:nobody", *ck)
    assert nobody.returncode != 0 and "no user console:nobody" in nobody.stderr
    no_model = run("recommend", "--user", "console:cli-fan")
    assert no_model.returncode != 0 and "no trained model" in no_model.stderr
    # without --checkpoint: the registry's serving version, the same model the bot serves,
    # even when a newer (here: untrained) checkpoint file lies in the model folder
    import shutil

    from tests.retrain_helpers import untrained_checkpoint
    from training.registry import CHECKPOINT, Registry

    models = tmp_path / "no-models"
    reg = Registry(models)
    work = reg.new_workdir(1)
    shutil.copy(world.checkpoint, work / CHECKPOINT)
    reg.promote(reg.commit(work))
    newest = models / "anirec-newest.safetensors"
    untrained_checkpoint(newest, [a.anime_id for a in world.anime], seed=3)
    served = run("recommend", "--user", "console:cli-fan", "-k", "3", "--json")
    assert served.returncode == 0, served.stderr
    assert json.loads(served.stdout) == picks
    other = run(
        "recommend", "--user", "console:cli-fan", "-k", "3", "--checkpoint", str(newest), "--json"
    )
    assert other.returncode == 0 and json.loads(other.stdout) != picks  # it would differ
