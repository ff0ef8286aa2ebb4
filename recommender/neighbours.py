"""What a content-only anime borrows from its nearest trained anime.

An anime with no list rows at training time has a vector (its content path) but none of the
parts only list rows teach: its item-to-item scores, its encoder vectors (what having it on a
list says about a person), how many lists it is on. Leaving them at zero would put it at the
bottom of every blend that leans on them (or, for the popularity discount, at the top). So each
such anime takes the similarity-weighted mean of those parts over its ``k`` nearest trained
anime in the learned space: a new mecha film ranks where the mecha films people watched rank.
A title with trained relatives released before it (a sequel, a film of a series) gives those
relatives a fixed share of the weight: the people who listed season 1 are the ones who list
season 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NEIGHBOURS = 10
#: weight share of a content-only title's earlier trained relatives (the rest: its neighbours).
#: Measured on trained titles with an earlier trained relative served as if new (two models,
#: two random halves each): new-title NDCG@10 0.315 / 0.318 / 0.321 / 0.319 / 0.315 at shares
#: 0 / 0.25 / 0.5 / 0.75 / 1.
RELATIVE_SHARE = 0.5
_CHUNK = 1024


@dataclass(frozen=True)
class Borrowed:
    """Nearest trained anime of every content-only anime (model indices) and their weights."""

    new: np.ndarray  # int64 [m]: the content-only anime
    index: np.ndarray  # int64 [m, k]: their nearest trained anime
    weight: np.ndarray  # float32 [m, k]: rows sum to 1

    @classmethod
    def of(
        cls,
        table: np.ndarray,
        is_new: np.ndarray,
        k: int = NEIGHBOURS,
        relatives: np.ndarray | None = None,
        share: float = RELATIVE_SHARE,
    ) -> Borrowed:
        """Neighbours by cosine of the rows of ``table`` (float [n, d]); ``relatives`` (int
        [n, r], model indices, -1 pads) are mixed in with ``share`` of the weight where a
        content-only title has any trained one."""
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
        if relatives is None or relatives.size == 0 or share <= 0.0:
            return cls(new, index, weight)
        trained = ~np.asarray(is_new, dtype=bool)
        return cls(new, *_with_relatives(index, weight, relatives[new], trained, share))

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


def _with_relatives(
    index: np.ndarray, weight: np.ndarray, rel: np.ndarray, trained: np.ndarray, share: float
) -> tuple[np.ndarray, np.ndarray]:
    """``index`` / ``weight`` widened by the trained ones of ``rel`` (int [m, r], -1 pads),
    which take ``share`` of a row's weight, split evenly; rows without any keep theirs."""
    ok = (rel >= 0) & np.asarray(trained, dtype=bool)[np.maximum(rel, 0)]
    count = ok.sum(1, keepdims=True)
    has = count > 0
    rel_w = np.where(ok, share / np.maximum(count, 1), 0.0).astype(np.float32)
    own_w = np.where(has, weight * (1.0 - share), weight).astype(np.float32)
    return (
        np.concatenate([index, np.where(ok, rel, 0)], axis=1),
        np.concatenate([own_w, rel_w], axis=1),
    )
