"""What a content-only anime borrows from its nearest trained anime.

An anime with no list rows at training time has a vector (its content path) but none of the
parts only list rows teach: its item-to-item scores, its encoder vectors (what having it on a
list says about a person), how many lists it is on. Leaving them at zero would put it at the
bottom of every blend that leans on them (or, for the popularity discount, at the top). So each
such anime takes the similarity-weighted mean of those parts over its ``k`` nearest trained
anime in the learned space: a new mecha film ranks where the mecha films people watched rank.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NEIGHBOURS = 10
_CHUNK = 1024


@dataclass(frozen=True)
class Borrowed:
    """Nearest trained anime of every content-only anime (model indices) and their weights."""

    new: np.ndarray  # int64 [m]: the content-only anime
    index: np.ndarray  # int64 [m, k]: their nearest trained anime
    weight: np.ndarray  # float32 [m, k]: rows sum to 1

    @classmethod
    def of(cls, table: np.ndarray, is_new: np.ndarray, k: int = NEIGHBOURS) -> Borrowed:
        """Neighbours by cosine of the rows of ``table`` (float [n, d])."""
        new = np.flatnonzero(is_new).astype(np.int64)
        old = np.flatnonzero(~np.asarray(is_new, dtype=bool)).astype(np.int64)
        k = min(k, old.size)
        if new.size == 0 or k == 0:
            empty = np.zeros((0, 0), np.int64)
            return cls(np.zeros(0, np.int64), empty, empty.astype(np.float32))
        unit = table / np.maximum(np.linalg.norm(table, axis=1, keepdims=True), 1e-8)
        ref = unit[old].T.astype(np.float32)
        index = np.empty((new.size, k), np.int64)
        weight = np.empty((new.size, k), np.float32)
        for start in range(0, new.size, _CHUNK):
            rows = new[start : start + _CHUNK]
            sim = unit[rows].astype(np.float32) @ ref
            top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
            s = np.take_along_axis(sim, top, axis=1)
            w = np.maximum(s, 0.0) + 1e-6
            index[start : start + rows.size] = old[top]
            weight[start : start + rows.size] = w / w.sum(1, keepdims=True)
        return cls(new, index, weight)

    def fill(self, values: np.ndarray) -> np.ndarray:
        """``values`` (float [n] or [n, d], per anime) with the content-only rows replaced by
        their neighbours' weighted mean (float32; a copy when anything changes)."""
        out = np.asarray(values, dtype=np.float32)
        if self.new.size == 0:
            return out
        out = out.copy()
        spec = "mk,mk->m" if out.ndim == 1 else "mkd,mk->md"  # no [m, k(, d)] temporaries
        out[self.new] = np.einsum(spec, out[self.index], self.weight)
        return out
