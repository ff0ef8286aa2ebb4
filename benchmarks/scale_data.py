"""A seeded N-times expansion of a ``user_id,anime_id,score`` ratings file.

Copy 0 is the real file, row for row. Copy ``k`` (1 to N-1) holds one synthetic user per real
user, a resampled real list:

- the synthetic user's id is ``k * ID_STRIDE + real id`` (so ids stay numeric and unique);
- each of the real user's rows is kept with probability ``keep`` (default 0.88), independently;
- a kept scored row (1-10) has its score moved by +1 or -1 (equally likely) with probability
  ``jitter`` (default 0.1), clipped to 1-10; unscored rows (0) stay unscored;
- anime ids are never changed, so the expansion uses only the real catalog.

Every copy draws from its own generator, ``numpy.random.default_rng([seed, k])``, so the same
seed gives the same file whatever the factor, and copy ``k`` of a 10x file equals copy ``k`` of a
25x file. A separate copy (number ``HOLDOUT_COPY``) of users none of the copies use can be
written as an evaluation file of people the model never saw. Expected rows:
``rows * (1 + (N - 1) * keep)``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Synthetic ids: copy k of real user u is k * ID_STRIDE + u (real ids are far below).
ID_STRIDE = 10_000_000
#: The copy number used for the evaluation file (never imported).
HOLDOUT_COPY = 999


@dataclass(frozen=True)
class Ratings:
    """The real rows, sorted by user then as in the file."""

    users: np.ndarray  # int64
    anime_ids: np.ndarray  # int64
    scores: np.ndarray  # int64, 0 = unscored

    @property
    def rows(self) -> int:
        return int(self.users.size)


def read_ratings(path: Path) -> Ratings:
    """The ``user_id,anime_id,score`` rows of ``path`` (numeric user ids)."""
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = [h.strip() for h in next(reader)]
        if header[:3] != ["user_id", "anime_id", "score"]:
            raise ValueError(f"{path}: expected user_id,anime_id,score, got {header}")
        table = np.array([row[:3] for row in reader], dtype=np.int64).reshape(-1, 3)
    return Ratings(table[:, 0].copy(), table[:, 1].copy(), table[:, 2].copy())


def synthetic_copy(
    real: Ratings, copy: int, seed: int, keep: float = 0.88, jitter: float = 0.1
) -> Ratings:
    """Copy number ``copy`` (>= 1) of every real user, as documented in the module."""
    if copy < 1:
        raise ValueError("copy 0 is the real data")
    rng = np.random.default_rng([seed, copy])
    kept = rng.random(real.rows) < keep
    moved = rng.random(real.rows) < jitter
    step = np.where(rng.random(real.rows) < 0.5, -1, 1)
    scores = real.scores.copy()
    scored = scores > 0
    scores[moved & scored] = np.clip(scores[moved & scored] + step[moved & scored], 1, 10)
    return Ratings(real.users[kept] + copy * ID_STRIDE, real.anime_ids[kept], scores[kept])


def expansion(
    real: Ratings, factor: int, seed: int, keep: float = 0.88, jitter: float = 0.1
) -> Iterator[Ratings]:
    """The real rows, then copies 1 to ``factor - 1``."""
    if factor < 1:
        raise ValueError("factor must be at least 1")
    yield real
    for copy in range(1, factor):
        yield synthetic_copy(real, copy, seed, keep, jitter)


def write_ratings(path: Path, parts: Iterator[Ratings] | list[Ratings]) -> int:
    """Write ``user_id,anime_id,score`` rows; returns the number of rows."""
    rows = 0
    with path.open("w") as handle:
        handle.write("user_id,anime_id,score\n")
        for part in parts:
            table = np.column_stack([part.users, part.anime_ids, part.scores])
            np.savetxt(handle, table, fmt="%d", delimiter=",")
            rows += part.rows
    return rows


def write_expansion(
    source: Path, out: Path, factor: int, seed: int = 0, keep: float = 0.88, jitter: float = 0.1
) -> int:
    """``factor`` x ``source`` into ``out``; returns the row count."""
    return write_ratings(out, expansion(read_ratings(source), factor, seed, keep, jitter))


def write_holdout(source: Path, out: Path, seed: int = 0, users: int = 500) -> int:
    """An evaluation file: copy ``HOLDOUT_COPY`` of the first ``users`` real users."""
    real = read_ratings(source)
    chosen = np.unique(real.users)[:users]
    part = synthetic_copy(real, HOLDOUT_COPY, seed)
    mask = np.isin(part.users - HOLDOUT_COPY * ID_STRIDE, chosen)
    return write_ratings(out, [Ratings(part.users[mask], part.anime_ids[mask], part.scores[mask])])
