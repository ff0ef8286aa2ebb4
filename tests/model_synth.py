"""Synthetic rating data with planted genre tastes, for the model tests (no files needed).

Five genres with 20 anime each; every user loves one genre: they list most of its anime and
score them 8-10, list a few anime of other genres and score them 2-5, and leave a few rows
unscored (score 0), like the real data set.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

GENRES = ("Mecha", "Romance", "Comedy", "Horror", "Sports")
PER_GENRE = 20


def catalog() -> dict[int, tuple[str, ...]]:
    """anime_id -> genres: ids 100.. grouped by genre; a few carry a second genre."""
    genres: dict[int, tuple[str, ...]] = {}
    for g, name in enumerate(GENRES):
        for k in range(PER_GENRE):
            aid = 100 + g * PER_GENRE + k
            extra = (GENRES[(g + 1) % len(GENRES)],) if k % 7 == 0 else ()
            genres[aid] = (name, *extra)
    return genres


def ids_of(genre: str) -> list[int]:
    g = GENRES.index(genre)
    return [100 + g * PER_GENRE + k for k in range(PER_GENRE)]


def ratings(
    n_users: int = 240, seed: int = 0, scale: tuple[float, float] = (1.0, 10.0)
) -> tuple[pd.DataFrame, dict[int, str]]:
    """Rows (user, anime_id, score) and each user's planted favourite genre."""
    rng = np.random.default_rng(seed)
    lo, hi = scale
    rows: list[tuple[int, int, float]] = []
    favourite: dict[int, str] = {}
    for u in range(n_users):
        fav = GENRES[u % len(GENRES)]
        favourite[u] = fav
        loved = rng.choice(ids_of(fav), size=int(rng.integers(10, 17)), replace=False)
        others = [a for g in GENRES if g != fav for a in ids_of(g)]
        tried = rng.choice(others, size=int(rng.integers(4, 9)), replace=False)
        for a in loved:
            rows.append((u, int(a), _scale(rng.integers(8, 11), lo, hi)))
        for a in tried:
            rows.append((u, int(a), _scale(rng.integers(2, 6), lo, hi)))
        # unscored rows: a couple of both kinds
        for a in rng.choice(others, size=2, replace=False):
            if a not in tried:
                rows.append((u, int(a), 0.0))
    df = pd.DataFrame(rows, columns=["user", "anime_id", "score"])
    df = df.drop_duplicates(["user", "anime_id"]).reset_index(drop=True)
    df["score"] = df["score"].astype(np.float32)
    return df, favourite


def _scale(score: int, lo: float, hi: float) -> float:
    """Map a 1-10 score onto [lo, hi] (rounded to half steps on a 5-point scale)."""
    if (lo, hi) == (1.0, 10.0):
        return float(score)
    value = lo + (score - 1) / 9.0 * (hi - lo)
    return float(np.clip(np.round(value * 2) / 2, lo, hi))
