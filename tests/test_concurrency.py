"""Several processes upserting ratings into one SQLite file at the same moment lose nothing."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from storage.repository import Store
from storage.rows import Anime

WORKERS = 4
PER_WORKER = 150


def _writer(db_path: str, worker: int, start: mp.Event) -> None:
    store = Store(db_path)
    user = store.users.ensure("telegram", f"w{worker}")
    shared = store.users.ensure("telegram", "shared")
    start.wait()
    for i in range(PER_WORKER):
        anime_id = i % 50 + 1
        store.ratings.upsert(user.id, anime_id, (i + worker) % 10 + 1)
        # Everyone also writes to one shared user's distinct rows: contention on one user.
        store.ratings.upsert(shared.id, 100 + worker * PER_WORKER + i, worker + 1)
    store.close()


def test_concurrent_writers_lose_nothing(tmp_path: Path):
    db_path = str(tmp_path / "race.db")
    with Store(db_path) as store:
        store.catalog.upsert(
            [Anime(i, f"Anime {i}", ("Action",), "TV", 1, 7.0, 10, False) for i in range(1, 51)]
            + [
                Anime(100 + i, f"Extra {i}", ("Drama",), "TV", 1, 7.0, 10, False)
                for i in range(WORKERS * PER_WORKER)
            ]
        )
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(db_path, w, start)) for w in range(WORKERS)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with Store(db_path) as store:
        for w in range(WORKERS):
            user = store.users.find("telegram", f"w{w}")
            ratings = {r.anime_id: r.score for r in store.ratings.of_user(user.id)}
            # The last write for each anime wins: i in [100, 149] maps to anime i % 50 + 1.
            assert ratings == {a: (a - 1 + 100 + w) % 10 + 1 for a in range(1, 51)}
        shared = store.users.find("telegram", "shared")
        assert len(store.ratings.of_user(shared.id)) == WORKERS * PER_WORKER
