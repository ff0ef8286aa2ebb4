"""Accuracy metrics shared by training, `anirec evaluate` and the benchmarks.

One definition of every number, so a model's validation metrics, the quality gate and the
benchmark table can be set side by side.

Ranking metrics use binary gain (an item is relevant or not):
- NDCG@k: DCG = sum over hits at 0-based position p of 1 / log2(p + 2); the ideal DCG puts
  min(#relevant, k) hits at the top.
- Recall@k: hits / min(#relevant, k), so a perfect list scores 1 even when a user has more
  relevant items than fit in k.
- Coverage@k: distinct items recommended over all lists / number of items known to the model.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def regression_metrics(y_true: Iterable[float], y_pred: Iterable[float]) -> dict[str, float]:
    """RMSE, MAE and R2 (1 - SS_res / SS_tot; 0.0 when the targets are constant)."""
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values but y_pred has {p.size}")
    if t.size == 0:
        raise ValueError("no rows to score")
    err = p - t
    ss_res = float(np.dot(err, err))
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    return {
        "rmse": float(np.sqrt(ss_res / t.size)),
        "mae": float(np.mean(np.abs(err))),
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0,
    }


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(k, dtype=np.float64) + 2.0)


def ndcg_at_k(recommended: Iterable[int], relevant: Iterable[int], k: int = 10) -> float:
    """Binary-gain NDCG of the first k recommended ids; 0.0 when nothing is relevant."""
    rel = set(relevant)
    if not rel:
        return 0.0
    rec = list(recommended)[:k]
    disc = _discounts(k)
    dcg = sum(disc[i] for i, item in enumerate(rec) if item in rel)
    ideal = float(disc[: min(len(rel), k)].sum())
    return float(dcg / ideal)


def recall_at_k(recommended: Iterable[int], relevant: Iterable[int], k: int = 10) -> float:
    """Hits in the first k over min(#relevant, k); 0.0 when nothing is relevant."""
    rel = set(relevant)
    if not rel:
        return 0.0
    hits = sum(1 for item in list(recommended)[:k] if item in rel)
    return hits / min(len(rel), k)


def top_k_rows(scores: np.ndarray, exclude: np.ndarray | None, k: int) -> np.ndarray:
    """Row-wise top-k for a [users, items] score matrix; ``exclude`` is a bool mask or None.

    Returns int64 [users, k] item indices, best first; -1 pads rows with fewer than k eligible
    (finite-scored) items. Used by the benchmarks to rank thousands of users at once.
    """
    s = np.array(scores, dtype=np.float32, copy=True)
    s[np.isnan(s)] = -np.inf
    if exclude is not None:
        s[exclude] = -np.inf
    n_items = s.shape[1]
    kk = min(k, n_items)
    part = (
        np.argpartition(-s, kk - 1, axis=1)[:, :kk]
        if kk < n_items
        else np.tile(np.arange(n_items), (s.shape[0], 1))
    )
    vals = np.take_along_axis(s, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    out = np.take_along_axis(part, order, axis=1).astype(np.int64)
    vals = np.take_along_axis(vals, order, axis=1)
    out[~np.isfinite(vals) & (vals < 0)] = -1
    if kk < k:
        out = np.concatenate([out, np.full((s.shape[0], k - kk), -1, dtype=np.int64)], axis=1)
    return out


class RankingAccumulator:
    """Averages NDCG@k and Recall@k over users and collects coverage@k.

    Every list passed to ``add`` counts towards coverage (it is a list someone would be
    shown), but a user with no relevant items is skipped for NDCG and Recall: those metrics
    are undefined for them, and counting them as 0 would punish every model alike. ``users``
    in the result is the number of users that entered NDCG/Recall.
    """

    def __init__(self, k: int = 10) -> None:
        self.k = k
        self._disc = _discounts(k)
        self._ndcg = 0.0
        self._recall = 0.0
        self._users = 0
        self._lists = 0
        self._seen: set[int] = set()

    def add(self, recommended_item_ids: Iterable[int], relevant_item_ids: Iterable[int]) -> None:
        rec = [int(i) for i in recommended_item_ids][: self.k]
        rec = [i for i in rec if i >= 0]  # -1 pads lists from top_k_rows
        self._seen.update(rec)
        self._lists += 1
        rel = {int(i) for i in relevant_item_ids}
        if not rel:
            return
        hits = [i for i, item in enumerate(rec) if item in rel]
        n_ideal = min(len(rel), self.k)
        self._ndcg += float(self._disc[hits].sum() / self._disc[:n_ideal].sum())
        self._recall += len(hits) / n_ideal
        self._users += 1

    def result(self, n_items: int) -> dict[str, float]:
        """Averages over users; coverage over ``n_items`` (the items the model knows)."""
        k = self.k
        u = self._users
        return {
            f"ndcg_at_{k}": self._ndcg / u if u else 0.0,
            f"recall_at_{k}": self._recall / u if u else 0.0,
            f"coverage_at_{k}": len(self._seen) / n_items if n_items else 0.0,
            "users": u,
        }
