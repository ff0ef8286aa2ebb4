"""Picks that respect franchises, on a small trained world with known series: entry points
once per list, nothing of a series the person is in, /next in watch order, /similar leaving the
title's own series out (and saying so), anime night on entry points."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from bot.core import Core
from bot.core.types import Caller
from bot.settings import Settings
from recommender import Recommender, franchise_store
from recommender.franchise import FranchiseGraph
from recommender.franchise_picks import Aligned
from storage.repository import Store
from storage.rows import Rating
from tests.fixtures_model import small_catalog, small_ratings

# title per (genre, position in the genre): two sagas and a false-merge trap
RENAMED = {
    ("Mecha", 0): "Mecha Saga",
    ("Mecha", 1): "Mecha Saga Season 2",
    ("Mecha", 2): "Mecha Saga Movie",
    ("Mecha", 3): "Mecha Saga OVA",
    ("Romance", 0): "Romance Saga",
    ("Romance", 1): "Romance Saga 2nd Season",
    ("Romance", 2): "Romance Saga: The Movie",
    ("Comedy", 0): "Gag",
    ("Comedy", 1): "Gag Gear",
}


class World(SimpleNamespace):
    store: Store
    rec: Recommender
    ids: dict[str, list[int]]

    def saga(self, genre: str) -> list[int]:
        return self.ids[genre][: 4 if genre == "Mecha" else 3]

    def user(
        self, name: str, ratings: dict[int, int | None], status: dict[int, str] | None = None
    ) -> int:
        u = self.store.users.ensure("console", name, name)
        for aid, score in ratings.items():
            self.store.ratings.upsert(u.id, aid, score, (status or {}).get(aid))
        return u.id


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    from training.train import train_from_store

    path = Path(tmp_path_factory.mktemp("franchise"))
    store = Store(path / "world.db")
    anime, by_genre, nsfw = small_catalog()
    titles = {by_genre[g][j]: t for (g, j), t in RENAMED.items()}
    store.catalog.upsert([replace(a, title=titles.get(a.anime_id, a.title)) for a in anime])
    franchise_store.rebuild(store)
    rows = small_ratings(by_genre, nsfw)

    def write(conn: object) -> None:
        mapping = store.users.ensure_dataset({r[0] for r in rows}, conn)
        store.ratings.upsert_rows(
            conn, [(mapping[u], a, s, None) for u, a, s, _ in rows], "dataset"
        )

    store.write_batch(write)
    summary = train_from_store(store, epochs=30, seed=0, device="cpu", out=path / "m.safetensors")
    w = World(store=store, rec=Recommender(store, summary.checkpoint), ids=by_genre)
    yield w
    store.close()


def lover(world: World, name: str, genre: str, extra: dict[int, int | None] | None = None) -> int:
    """Someone who loves ``genre`` and has rated five of its titles outside the sagas."""
    return world.user(name, {**{a: 9 for a in world.ids[genre][5:10]}, **(extra or {})})


def test_the_graph_has_the_sagas_and_not_the_trap(world: World) -> None:
    graph = world.rec.franchises()
    mecha = graph.franchise_of(world.ids["Mecha"][1])
    assert mecha is not None and mecha.members == tuple(world.saga("Mecha"))
    assert mecha.entry == world.ids["Mecha"][0]
    assert graph.franchise_of(world.ids["Comedy"][0]) is None  # "Gag" / "Gag Gear"


def test_unstarted_series_show_their_entry_point_once(world: World) -> None:
    uid = lover(world, "newcomer", "Mecha")
    picks = [p.anime.anime_id for p in world.rec.recommend(uid, k=12)]
    saga = world.saga("Mecha")
    assert saga[0] in picks  # the series is shown, where it begins
    assert not set(saga[1:]) & set(picks)  # never a later entry of it
    graph = world.rec.franchises()
    series = [graph.franchise_of(a) for a in picks]
    ids = [f.id for f in series if f is not None]
    assert len(ids) == len(set(ids))  # each series at most once per list


def test_a_series_the_user_is_in_is_left_out_of_discovery(world: World) -> None:
    saga = world.saga("Mecha")
    uid = lover(world, "fan", "Mecha", {saga[0]: 9})
    picks = {p.anime.anime_id for p in world.rec.recommend(uid, k=40)}
    assert not set(saga) & picks
    planner = world.user("planner", {saga[2]: None}, {saga[2]: "plan_to_watch"})
    assert not set(saga) & {p.anime.anime_id for p in world.rec.recommend(planner, k=40)}


def test_batch_path_applies_the_same_rules(world: World) -> None:
    saga = world.saga("Mecha")
    rows = [Rating(a, 9, None, "import", "") for a in world.ids["Mecha"][5:10]]
    picks = [p.anime.anime_id for p in world.rec.recommend_for(rows, k=12)]
    assert saga[0] in picks and not set(saga[1:]) & set(picks)


def test_next_continues_each_series_in_order_best_first(world: World) -> None:
    mecha, romance = world.saga("Mecha"), world.saga("Romance")
    uid = world.user("binger", {mecha[0]: 9, mecha[1]: 8, romance[0]: 7, 40: 8})
    found = world.rec.next_up(uid, k=5)
    assert {p.anime.anime_id for p in found} == {mecha[2], romance[1]}
    scores = [p.predicted_score for p in found]
    assert scores == sorted(scores, reverse=True)
    assert all(p.reason.startswith("next in ") for p in found)
    dropper = world.user("dropper", {mecha[0]: 9, mecha[1]: None}, {mecha[1]: "dropped"})
    assert world.rec.next_up(dropper) == []  # a dropped series is not continued
    done = world.user("completist", dict.fromkeys(mecha, 8))
    assert world.rec.next_up(done) == []


def test_similar_leaves_the_own_series_out(world: World) -> None:
    saga = world.saga("Mecha")
    found = {p.anime.anime_id for p in world.rec.similar(saga[1], k=30)}
    assert found and not set(saga) & found
    other = [p.anime.anime_id for p in world.rec.similar(world.ids["Mecha"][6], k=30)]
    assert saga[0] in other and not set(saga[1:]) & set(other)  # another series: its start, once


async def test_similar_and_next_commands_say_it(world: World) -> None:
    settings = Settings(_env_file=None, database=world.store.path)
    core = Core(world.store, world.rec, settings, rate_limited=False)
    alice = Caller("console", "alice-f", "alice-f")
    reply = await core.handle_text(alice, "/similar Mecha Saga Movie")
    assert reply is not None
    first = reply.text.splitlines()[0]
    assert first == "Same series (left out): Mecha Saga, Mecha Saga Season 2, Mecha Saga OVA"
    assert "Mecha Saga" not in "\n".join(reply.text.splitlines()[1:])
    reply = await core.handle_text(alice, "/next")
    assert reply is not None and "no list yet" in reply.text
    await core.handle_text(alice, "/rate Mecha Saga 9")
    reply = await core.handle_text(alice, "/next")
    assert reply is not None and "Mecha Saga Season 2" in reply.text


def test_anime_night_picks_entry_points_only(world: World) -> None:
    saga = world.saga("Mecha")
    a = lover(world, "night-a", "Mecha")
    b = lover(world, "night-b", "Mecha", {a: 8 for a in world.ids["Romance"][5:8]})
    picks = [p.anime.anime_id for p in world.rec.anime_night([a, b], k=8)]
    assert not set(saga[1:]) & set(picks)
    assert not set(world.saga("Romance")[1:]) & set(picks)
    c = lover(world, "night-c", "Mecha", {saga[0]: 9})  # one member has started the saga
    picks = [p.anime.anime_id for p in world.rec.anime_night([a, c], k=8)]
    assert not set(saga) & set(picks)


def test_an_unstarted_series_ranks_by_its_best_member() -> None:
    rows = [
        SimpleNamespace(anime_id=i, title=t, type="TV", year=None, season=None)
        for i, t in [(1, "Saga"), (2, "Saga Season 2"), (3, "Solo"), (4, "Other")]
    ]
    graph = FranchiseGraph.build(rows, [])
    model = SimpleNamespace(anime_ids=np.array([1, 2, 3, 4]), index_of={1: 0, 2: 1, 3: 2, 4: 3})
    aligned = Aligned(SimpleNamespace(model=model), graph)  # type: ignore[arg-type]
    rank = np.array([0.1, 0.9, 0.5, 0.3])
    allowed = np.ones(4, dtype=bool)
    new_rank, new_allowed = aligned.discovery(rank, allowed, np.empty(0, dtype=np.int64))
    assert new_allowed.tolist() == [True, False, True, True]
    assert new_rank[0] == pytest.approx(0.9)  # the entry carries the season's score
    _, started = aligned.discovery(rank, allowed, np.array([1]))
    assert started.tolist() == [False, False, True, True]
    allowed[0] = False  # the entry filtered out (e.g. by type): the series is not shown
    assert aligned.discovery(rank, allowed, np.empty(0, dtype=np.int64))[1][:2].tolist() == [
        False,
        False,
    ]


def test_next_entries_of_started_series_for_the_benchmark_variant() -> None:
    rows = [
        SimpleNamespace(anime_id=i, title=t, type=ty, year=None, season=None)
        for i, t, ty in [(1, "Saga", "TV"), (2, "Saga Season 2", "TV"), (3, "Saga Movie", "Movie")]
    ]
    graph = FranchiseGraph.build(rows, [])
    model = SimpleNamespace(anime_ids=np.array([1, 2, 3]), index_of={1: 0, 2: 1, 3: 2})
    aligned = Aligned(SimpleNamespace(model=model), graph)  # type: ignore[arg-type]
    assert aligned.next_entries(np.array([0])).tolist() == [1]
    assert aligned.next_entries(np.array([0, 1])).tolist() == [2]
    rank, allowed = np.array([0.9, 0.5, 0.1]), np.array([False, True, True])
    _, kept = aligned.discovery(rank, allowed, np.array([0]), aligned.next_entries(np.array([0])))
    assert kept.tolist() == [False, True, False]
