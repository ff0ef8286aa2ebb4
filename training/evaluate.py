"""Evaluation of a serving model on users it never saw (the `anirec evaluate` protocol).

For every user: fold in the revealed rows, predict the hidden scored rows (RMSE, MAE, R2) and
rank every anime the model knows except the revealed ones (NDCG@10, Recall@10 with relevant =
hidden rows scored at or above the "liked" line, coverage@10). The same code scores validation
users during training (to tune the serving blend) and candidates in the retraining gate.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recommender.blend import BlendWeights, blend_scores
from recommender.scoring import ServingModel, UserState
from training.metrics import RankingAccumulator, regression_metrics, top_k_rows
from training.splits import reveal_split


class EvaluationError(ValueError):
    """Nothing to evaluate (no eligible users), or a bad argument."""


@dataclass
class UserRows:
    """Revealed and hidden rows of evaluation users, in model indices (one entry per user)."""

    users: list[object]
    revealed_idx: list[np.ndarray]
    revealed_scores: list[np.ndarray]  # float32, NaN = unscored
    hidden_idx: list[np.ndarray]
    hidden_scores: list[np.ndarray]  # float32, 0 = unscored
    dropped_rows: int = 0

    def __len__(self) -> int:
        return len(self.users)


def like_min(score_range: tuple[float, float]) -> float:
    """The "liked" line: 8 on 1-10, 4.0 on MovieLens' 0.5-5 (70% up the scale, rounded up)."""
    lo, hi = score_range
    raw = lo + 0.7 * (hi - lo)
    step = 1.0 if hi - lo > 5 else 0.5
    return float(np.ceil(raw / step) * step)


def user_rows(model: ServingModel, revealed: pd.DataFrame, hidden: pd.DataFrame) -> UserRows:
    """Group frames (user, anime_id, score) by user; rows for unknown anime are dropped."""
    known_r = revealed["anime_id"].map(model.index_of)
    known_h = hidden["anime_id"].map(model.index_of)
    rev = revealed.assign(idx=known_r).dropna(subset=["idx"])
    hid = hidden.assign(idx=known_h).dropna(subset=["idx"])
    out = group_rows(rev, hid, "idx")
    out.dropped_rows = int(known_r.isna().sum() + known_h.isna().sum())
    return out


def group_rows(shown: pd.DataFrame, hidden: pd.DataFrame, index_column: str) -> UserRows:
    """Per user (sorted) with hidden rows: shown indices and scores (NaN = unscored), hidden
    indices and scores. ``index_column`` holds model indices."""
    out = UserRows([], [], [], [], [])
    hid_groups = dict(tuple(hidden.groupby("user", sort=True)))
    for user, g in shown.groupby("user", sort=True):
        h = hid_groups.get(user)
        if h is None:
            continue
        s = g["score"].to_numpy(np.float32)
        out.users.append(user)
        out.revealed_idx.append(g[index_column].to_numpy(np.int64))
        out.revealed_scores.append(np.where(s > 0, s, np.nan).astype(np.float32))
        out.hidden_idx.append(h[index_column].to_numpy(np.int64))
        out.hidden_scores.append(h["score"].to_numpy(np.float32))
    return out


def fold_all(model: ServingModel, rows: UserRows) -> Iterator[UserState]:
    for idx, sc in zip(rows.revealed_idx, rows.revealed_scores, strict=True):
        yield model.fold_in_indices(idx, sc)


@dataclass
class Components:
    """Per-user score components as [users, n_items] matrices, for blend tuning."""

    rating: np.ndarray  # predicted scores
    watch: np.ndarray | None  # log P(watch)
    ease: np.ndarray | None  # item-to-item scores


def components(
    model: ServingModel, rows: UserRows, states: list[UserState] | None = None
) -> Components:
    states = list(fold_all(model, rows)) if states is None else states
    rating = np.stack([model.predict(s) for s in states]) if states else np.zeros((0, 0))
    hybrid = model.config.kind == "hybrid"
    watch = np.stack([model.watch_logits(s) for s in states]) if hybrid and states else None
    ease = (
        np.stack([model.ease_scores(s) for s in states])
        if hybrid and model.ease_index is not None and states
        else None
    )
    return Components(rating, watch, ease)


def rank_rows(model: ServingModel, comp: Components, rows: UserRows) -> np.ndarray:
    """Rank scores per user with the blend for that user's list length (as ServingModel.rank)."""
    if model.config.kind == "seed":
        return comp.rating
    out = np.empty(comp.rating.shape, dtype=np.float32)
    lengths = np.array([idx.size for idx in rows.revealed_idx])
    for n in np.unique(lengths):
        sel = np.flatnonzero(lengths == n)
        out[sel] = blend_rows(model, comp, model.blend.at(int(n)), sel)
    return out


def blend_rows(
    model: ServingModel, comp: Components, w: BlendWeights, sel: np.ndarray | None = None
) -> np.ndarray:
    """Rank scores of the users ``sel`` (default: all) under one set of blend weights."""

    def pick(m: np.ndarray | None) -> np.ndarray | None:
        return m if m is None or sel is None else m[sel]

    return blend_scores(
        w,
        comp.rating if sel is None else comp.rating[sel],
        pick(comp.watch),
        pick(comp.ease),
        model.mu,
        model.score_scale,
        model.log_popularity,
        model.borrowed.new,
    )


@dataclass
class RankingTask:
    """What ranking metrics need of evaluation users, prepared once: the anime each user may
    not be recommended (their revealed rows) and the ones they liked among the hidden."""

    exclude: np.ndarray  # bool [users, n_items]
    relevant: list[np.ndarray]
    n_items: int

    @classmethod
    def of(cls, model: ServingModel, rows: UserRows, like: float) -> RankingTask:
        exclude = np.zeros((len(rows), model.n_items), dtype=bool)
        for r, idx in enumerate(rows.revealed_idx):
            exclude[r, idx] = True
        relevant = [rows.hidden_idx[r][rows.hidden_scores[r] >= like] for r in range(len(rows))]
        return cls(exclude, relevant, model.n_items)

    def metrics(self, rank_matrix: np.ndarray, k: int = 10) -> dict[str, float]:
        top = top_k_rows(rank_matrix, self.exclude, k)
        acc = RankingAccumulator(k)
        for r, rel in enumerate(self.relevant):
            acc.add(top[r], rel)
        return acc.result(self.n_items)


def regression(rows: UserRows, rating: np.ndarray) -> dict[str, float]:
    truth, pred = [], []
    for r in range(len(rows)):
        scored = rows.hidden_scores[r] > 0
        truth.append(rows.hidden_scores[r][scored])
        pred.append(rating[r, rows.hidden_idx[r][scored]])
    return regression_metrics(np.concatenate(truth), np.concatenate(pred))


def evaluate_rows(
    model: ServingModel, rows: UserRows, like: float | None = None, batch: int = 256
) -> dict[str, float]:
    """All metrics for prepared rows (scored in batches of users to bound memory)."""
    if len(rows) == 0:
        raise EvaluationError("no users to evaluate")
    like = like_min(model.score_range) if like is None else like
    acc = RankingAccumulator(10)
    truth, pred = [], []
    for start in range(0, len(rows), batch):
        part = _slice(rows, start, start + batch)
        comp = components(model, part)
        task = RankingTask.of(model, part, like)
        top = top_k_rows(rank_rows(model, comp, part), task.exclude, 10)
        for r in range(len(part)):
            acc.add(top[r], task.relevant[r])
            scored = part.hidden_scores[r] > 0
            truth.append(part.hidden_scores[r][scored])
            pred.append(comp.rating[r, part.hidden_idx[r][scored]])
    out = regression_metrics(np.concatenate(truth), np.concatenate(pred))
    out.update(acc.result(model.n_items))
    out["users"] = len(rows)
    out["dropped_rows"] = rows.dropped_rows
    return out


def _slice(rows: UserRows, a: int, b: int) -> UserRows:
    return UserRows(
        rows.users[a:b],
        rows.revealed_idx[a:b],
        rows.revealed_scores[a:b],
        rows.hidden_idx[a:b],
        rows.hidden_scores[a:b],
        rows.dropped_rows,
    )


def evaluate_unseen(
    model: ServingModel,
    ratings: pd.DataFrame,
    reveal: int,
    seed: int = 0,
    max_users: int | None = None,
    exclude_users: set[str] | None = None,
) -> dict[str, float]:
    """The `anirec evaluate` protocol on a frame (user, anime_id, score).

    Users listed in ``exclude_users`` (those the checkpoint was trained on) are left out; of the
    rest, users with at least reveal+10 scored rows (rows of anime the model knows) take part.
    """
    if reveal < 1:
        raise EvaluationError(f"--reveal must be at least 1, got {reveal}")
    df = ratings
    if exclude_users:
        df = df[~df["user"].isin(exclude_users)]
    known = df["anime_id"].isin(model.index_of.keys())
    dropped = int((~known).sum())
    df = df[known]
    if max_users is not None:
        users = np.sort(df["user"].unique())
        chosen = np.random.default_rng(seed).permutation(users)[:max_users]
        df = df[df["user"].isin(chosen)]
    revealed, hidden = reveal_split(df, reveal, seed=seed, min_scored=reveal + 10)
    if revealed.empty:
        raise EvaluationError(
            f"no user (outside the checkpoint) has {reveal + 10} scored rows "
            "of anime the checkpoint knows"
        )
    rows = user_rows(model, revealed, hidden)
    rows.dropped_rows = dropped
    return evaluate_rows(model, rows)
