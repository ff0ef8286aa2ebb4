"""Shared pieces of the retraining tests: a small real database and the job's command line.

The world is the one of ``tests/fixtures_model.py`` (planted genre tastes), written without
training a model, plus a few console users with recent ratings, so that the gate's holdout has
both data-set users and chat users.
"""

from __future__ import annotations

import sys
from pathlib import Path

from storage.repository import Store
from tests.fixtures_model import TASTE_GENRES, small_catalog, small_ratings
from training.gate import GateConfig

#: The small world's users have 9-17 scores: reveal 3, need 8 to be held out.
GATE = GateConfig(reveal=3, min_scored=8, dataset_fraction=0.15, dataset_max_users=60)
GATE_ARGS = [
    "--holdout-reveal",
    "3",
    "--holdout-min-scored",
    "8",
    "--holdout-fraction",
    "0.15",
    "--holdout-max-users",
    "60",
]


def make_world(folder: Path) -> tuple[Path, dict[str, list[int]]]:
    """Write the small world into ``folder/world.db``; returns (db path, anime ids by genre)."""
    db = Path(folder) / "world.db"
    anime, by_genre, nsfw = small_catalog()
    rows = small_ratings(by_genre, nsfw)
    with Store(db) as store:
        store.catalog.upsert(anime)

        def write(conn):
            mapping = store.users.ensure_dataset({r[0] for r in rows}, conn)
            store.ratings.upsert_rows(
                conn, [(mapping[u], a, s, None) for u, a, s, _ in rows], "dataset"
            )

        store.write_batch(write)
        for n, genre in enumerate(TASTE_GENRES):  # chat users who love one genre each
            user = store.users.ensure("console", f"fan{n}", f"fan{n}")
            for j, aid in enumerate(by_genre[genre][:8]):
                store.ratings.upsert(user.id, aid, 8 + j % 3)
            other = by_genre[TASTE_GENRES[(n + 1) % len(TASTE_GENRES)]]
            for aid in other[:2]:
                store.ratings.upsert(user.id, aid, 3)
    return db, by_genre


def job_command(run_id: int, db: Path, model_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "training.job",
        "--run-id",
        str(run_id),
        "--database",
        str(db),
        "--model-dir",
        str(model_dir),
        "--device",
        "cpu",
        "--nice",
        "0",
        "--threads",
        "1",
        *GATE_ARGS,
        *extra,
    ]


def untrained_checkpoint(
    path: Path,
    anime_ids: list[int],
    seed: int = 0,
    version: str = "test",
    train_users: list[str] | None = None,
) -> Path:
    """A real, loadable checkpoint of an untrained model (no training: milliseconds)."""
    import numpy as np
    import torch

    from recommender.model import HybridRecommender, ModelShape, get_config
    from recommender.scoring import ServingModel

    torch.manual_seed(seed)
    cfg = get_config("default", dim=8, genre_hidden=8, ease_lambda=0.0)
    n = len(anime_ids)
    genres = np.zeros((n, 2), dtype=bool)
    genres[::2, 0] = True
    genres[1::2, 1] = True
    shape = ModelShape(n_items=n, n_genres=2)
    module = HybridRecommender(cfg, shape, torch.from_numpy(genres.astype(np.float32)), 7.0)
    meta = {
        "config": cfg.to_json(),
        "shape": {"n_items": n, "n_genres": 2, "n_users": 0, "extra": {}},
        "genre_vocab": ["A", "B"],
        "score_range": [1.0, 10.0],
        "global_mean": 7.0,
        "fingerprint": f"fp{seed}",
        "trained_at": "2026-01-01T00:00:00+00:00",
        "version": version,
        "metrics": {},
        "train_users": train_users or [],
    }
    model = ServingModel(
        module, np.asarray(anime_ids, np.int64), ["A", "B"], genres, np.ones(n, np.float32), meta
    )
    return model.save(path)
