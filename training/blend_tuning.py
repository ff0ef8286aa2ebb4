"""Blend tuning: fit the serving mix of the model's parts on the validation users.

Two steps, both measured on users the network did not train on:

- the rating mix (:func:`tune_rating`): fold-in ridge and KNN shrinkage by grid, the weights of
  the dot product and the neighbourhood correction by non-negative least squares, once for
  users with few scores (the "10 revealed" protocol) and once for long lists ("80% shown");
- the rank blend (:func:`tune_blend`): item-to-item x network-rank x rating x popularity
  weights by coordinate search on NDCG@10, one anchor per protocol at its median list length.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from recommender.blend import BlendSchedule, BlendWeights
from recommender.scoring import RatingMix, ServingModel, UserState
from training import data as tdata
from training.evaluate import RankingTask, UserRows, blend_rows, components, group_rows, like_min
from training.splits import reveal_split, split_by_user

Log = Callable[[str], None]
Protocols = list[tuple[str, UserRows]]

RANK_GRID = (0.0, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
RATING_GRID = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0)
POPULARITY_GRID = (0.0, 0.01, 0.03, 0.1, 0.3)
BLEND_REVEALS = (5, 10, 20)  # blend anchors: these list lengths, plus 80% of a whole list
MIN_ANCHOR_USERS = 20  # a validation protocol with fewer users sets no blend anchor
REPORTED_PROTOCOLS = ("split80", "reveal10")  # validation metrics kept in the checkpoint
RIDGE_GRID = (0.0, 3.0, 10.0, 30.0)
KNN_SHRINK_GRID = (0.3, 1.0, 3.0)
MIN_TUNE_ROWS = 300  # fewer hidden scores than this: no weights are fitted
#: validation users the blend is tuned and the checkpoint's metrics measured on, at most (a
#: seeded sample past it): tuning holds [users x anime] score matrices, so without a cap its
#: memory and time grew with the data (2.5 GB and 4 minutes at 10x the shared data, 44k users)
#: while a few weights need no more than this; the shared data has ~420 validation users
TUNING_USERS = 2000
FEW_MAX = 20  # users with at most this many scores use the mix tuned on "10 revealed"


def validation_protocols(
    data: tdata.TrainingData, val_users: np.ndarray, seed: int, max_users: int = TUNING_USERS
) -> Protocols:
    """Validation protocols on the held-out users (a seeded sample of ``max_users`` of them
    when there are more): 80% of each list shown ("split80"), and K scored rows shown for
    each K in BLEND_REVEALS ("revealK")."""
    if val_users.size == 0:
        return []
    if val_users.size > max_users:
        pick = np.random.default_rng(seed).choice(val_users.size, max_users, replace=False)
        val_users = np.sort(np.asarray(val_users)[pick])
    sel = np.isin(data.users, val_users)
    df = pd.DataFrame(
        {"user": data.users[sel], "anime_id": data.items[sel], "score": data.scores[sel]}
    )
    out: Protocols = []
    shown, hidden = split_by_user(df, 0.2, seed)
    out.append(("split80", group_rows(shown, hidden, "anime_id")))
    for k in BLEND_REVEALS:
        rev, hid = reveal_split(df, k, seed=seed)
        if len(rev):
            out.append((f"reveal{k}", group_rows(rev, hid, "anime_id")))
    return out


def _rating_parts(
    model: ServingModel, rows: UserRows, shrinks: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[float, np.ndarray]]:
    """At every hidden scored row: truth, baseline, dot part, KNN part (per shrink)."""
    truth: list[np.ndarray] = []
    base: list[np.ndarray] = []
    dot: list[np.ndarray] = []
    knn: dict[float, list[np.ndarray]] = {lam: [] for lam in shrinks}
    for r, state in enumerate(_states(model, rows)):
        scored = rows.hidden_scores[r] > 0
        idx = rows.hidden_idx[r][scored]
        truth.append(rows.hidden_scores[r][scored])
        base.append(model.baseline(state)[idx])
        dot.append(model.dot_part(state)[idx])
        for lam in shrinks:
            knn[lam].append(model.knn_residual(state, lam)[idx])
    cat = np.concatenate
    return cat(truth), cat(base), cat(dot), {lam: cat(v) for lam, v in knn.items()}


def _states(model: ServingModel, rows: UserRows) -> Iterator[UserState]:
    for idx, sc in zip(rows.revealed_idx, rows.revealed_scores, strict=True):
        yield model.fold_in_indices(idx, sc)


def _nonneg_lstsq(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares with every weight >= 0 (tiny problems: try each subset of features)."""
    best, best_err = np.zeros(x.shape[1]), float(np.dot(y, y))
    n = x.shape[1]
    for mask in range(1, 2**n):
        cols = [j for j in range(n) if mask >> j & 1]
        coef, *_ = np.linalg.lstsq(x[:, cols], y, rcond=None)
        if (coef < 0).any():
            continue
        err = float(np.sum((y - x[:, cols] @ coef) ** 2))
        if err < best_err:
            best_err = err
            best = np.zeros(n)
            best[cols] = coef
    return best


def tune_rating(serving: ServingModel, val: Protocols, log: Log) -> ServingModel:
    """Per regime (users with few scores: the reveal-10 protocol; with many: the 80% one):
    fold-in ridge and KNN shrinkage by grid, dot/KNN weights by least squares, all on the
    validation users' hidden scores."""
    shrinks = KNN_SHRINK_GRID if serving.knn_index is not None else (1.0,)
    lo, hi = serving.score_range
    mixes: dict[str, tuple[float, RatingMix]] = {}
    for name, rows in val:
        if name not in ("split80", "reveal10"):
            continue
        best: tuple[float, RatingMix] = (math.inf, RatingMix())
        for ridge in RIDGE_GRID:
            cand = serving.with_rating_mix(RatingMix(ridge), RatingMix(ridge), 0)
            t, b, d, knn = _rating_parts(cand, rows, shrinks)
            for lam in shrinks:
                feats = np.stack([d, knn[lam]], 1) if serving.knn_index is not None else d[:, None]
                coef = _nonneg_lstsq(feats, t - b)
                rmse = float(np.sqrt(np.mean((np.clip(b + feats @ coef, lo, hi) - t) ** 2)))
                if rmse < best[0]:
                    kw = float(coef[1]) if coef.size > 1 else 0.0
                    best = (rmse, RatingMix(ridge, kw, lam, float(coef[0])))
        if t.size < MIN_TUNE_ROWS:  # too few scores to fit weights on: keep the plain head
            best = (best[0], RatingMix(best[1].ridge))
        mixes[name] = best
        log(f"rating mix for {name}: {best[1]} (val rmse {best[0]:.4f}, {t.size} rows)")
    many = mixes.get("split80", next(iter(mixes.values())))[1]
    few = mixes.get("reveal10", (0.0, many))[1]
    return serving.with_rating_mix(few, many, FEW_MAX)


def tune_blend(serving: ServingModel, val: Protocols, log: Log) -> ServingModel:
    """Pick the rating mix (validation RMSE), then one rank blend per validation protocol
    (validation NDCG@10), anchored at that protocol's median list length."""
    if serving.config.kind != "hybrid" or not val:
        return serving
    serving = tune_rating(serving, val, log)
    like = like_min(serving.score_range)
    anchors: dict[float, tuple[int, BlendWeights]] = {}
    for name, rows in val:
        if len(rows) < MIN_ANCHOR_USERS:
            continue
        length = float(np.median([idx.size for idx in rows.revealed_idx]))
        w, ndcg, coverage = _tune_anchor(serving, rows, like)
        log(
            f"blend for {name} (list length {length:g}): {w} "
            f"(val ndcg {ndcg:.4f}, coverage {coverage:.4f}, {len(rows)} users)"
        )
        if length not in anchors or len(rows) > anchors[length][0]:
            anchors[length] = (len(rows), w)
    if not anchors:
        return serving
    schedule = BlendSchedule(tuple((n, anchors[n][1]) for n in sorted(anchors)))
    return serving.with_blend(schedule)


def _tune_anchor(
    serving: ServingModel, rows: UserRows, like: float
) -> tuple[BlendWeights, float, float]:
    """Coordinate search for the best validation NDCG@10: rank x rating weights, then the
    popularity discount, then rank x rating again at that discount."""
    comp = components(serving, rows)
    task = RankingTask.of(serving, rows, like)
    w_ease = 1.0 if serving.ease_index is not None else 0.0
    seen: dict[tuple[float, float, float], tuple[float, float]] = {}

    def measure(wk: float, wr: float, wp: float) -> tuple[float, float]:
        key = (wk, wr, wp)
        if key not in seen:
            m = task.metrics(blend_rows(serving, comp, BlendWeights(w_ease, wk, wr, wp)))
            seen[key] = (m["ndcg_at_10"], m["coverage_at_10"])
        return seen[key]

    def best_grid(wp: float) -> tuple[float, float]:
        pairs = [(wk, wr) for wk in RANK_GRID for wr in RATING_GRID if w_ease or wk or wr]
        return max(pairs, key=lambda p: measure(p[0], p[1], wp)[0])

    wk, wr = best_grid(0.0)
    wp = max(POPULARITY_GRID, key=lambda p: measure(wk, wr, p)[0])
    if wp:
        best_grid(wp)
    wk, wr, wp = max(seen, key=lambda k: seen[k])
    return BlendWeights(w_ease, wk, wr, wp), seen[(wk, wr, wp)][0], seen[(wk, wr, wp)][1]
