"""The quality gate: a candidate replaces the serving model only if it is not worse.

Both models are scored on the SAME holdout, built from the database before training:

- recent chat ratings: for every chat user with at least ``chat_min_scored`` scores, their most
  recent scored rows (``chat_recent_fraction`` of them, at least one) are held back; the rest of
  their list is folded in, as the bot does, and the held-back rows are predicted and ranked;
- a fixed holdout of data-set users: users whose (seeded) hash falls lowest, among those with at
  least ``min_scored`` scores, are never trained on; for each, ``reveal`` scored rows are folded
  in and the rest predicted (the `anirec evaluate` unseen-user protocol). The hash makes the
  set the same run after run, so a serving model trained by an earlier run never saw them.

Every model the project writes (``anirec demo``, ``anirec train``, a retrain) keeps the same
data-set holdout out of training (:func:`dataset_holdout_users`), so a candidate can always be
compared with the serving model on users neither has seen. A checkpoint records the users it
was trained on; holdout users that the serving model was nevertheless trained on (an older
checkpoint, another gate configuration) are left out of the comparison.

Decision: promote when NDCG@10 is not lower than the serving model's by more than
``ndcg_tolerance`` AND RMSE is not higher by more than ``rmse_tolerance``. With nothing serving,
a candidate is promoted if it is sane: finite metrics, RMSE not worse than always predicting
the training mean, NDCG@10 at least half of the most-popular list's.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recommender.scoring import ServingModel
from storage.rows import InteractionArrays
from storage.schema import DATASET_PLATFORM
from training.evaluate import evaluate_rows, like_min, user_rows
from training.metrics import RankingAccumulator, regression_metrics
from training.splits import reveal_split

GATE_KEYS = ("rmse", "mae", "r2", "ndcg_at_10", "recall_at_10", "coverage_at_10", "users")


@dataclass(frozen=True)
class GateConfig:
    """How the holdout is drawn and how strict the comparison is."""

    ndcg_tolerance: float = 0.01  # absolute NDCG@10 a candidate may lose
    rmse_tolerance: float = 0.02  # absolute RMSE a candidate may gain
    reveal: int = 10  # data-set holdout users: scored rows folded in
    min_scored: int | None = None  # default reveal + 10
    dataset_fraction: float = 0.1  # share of eligible data-set users held out ...
    dataset_max_users: int = 400  # ... at most this many
    chat_min_scored: int = 5
    chat_recent_fraction: float = 0.2
    seed: int = 1729  # fixed: the holdout must not move between runs

    @property
    def eligible_scored(self) -> int:
        return self.reveal + 10 if self.min_scored is None else self.min_scored

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Holdout:
    """Rows folded in (``revealed``) and rows to predict (``hidden``), plus the training mask.

    Frames have columns user (the user's key: data-set id or PLATFORM:ID), anime_id, score
    (0 = on the list, unscored). ``train_mask`` selects the interaction rows to train on.
    """

    revealed: pd.DataFrame
    hidden: pd.DataFrame
    train_mask: np.ndarray
    dataset_users: list[str] = field(default_factory=list)
    chat_users: list[str] = field(default_factory=list)
    train_mean: float = float("nan")
    popularity: dict[int, int] = field(default_factory=dict)  # training rows per anime

    @property
    def users(self) -> set[str]:
        return set(self.dataset_users) | set(self.chat_users)

    def describe(self) -> dict[str, int]:
        return {
            "holdout_dataset_users": len(self.dataset_users),
            "holdout_chat_users": len(self.chat_users),
            "holdout_rows": len(self.hidden),
            "holdout_scored_rows": int((self.hidden["score"] > 0).sum()) if len(self.hidden) else 0,
        }

    def restricted(self, drop_users: Iterable[str]) -> Holdout:
        """The same holdout without some users (those a model was trained on)."""
        drop = set(drop_users)
        if not drop:
            return self
        keep_r = ~self.revealed["user"].isin(drop)
        keep_h = ~self.hidden["user"].isin(drop)
        return Holdout(
            self.revealed[keep_r].reset_index(drop=True),
            self.hidden[keep_h].reset_index(drop=True),
            self.train_mask,
            [u for u in self.dataset_users if u not in drop],
            [u for u in self.chat_users if u not in drop],
            self.train_mean,
            self.popularity,
        )


def _stable_fraction(seed: int, key: str) -> float:
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def row_keys(arrays: InteractionArrays, key_of: dict[int, str]) -> np.ndarray:
    """Per row: the user's key as checkpoints record it in ``train_users`` (data-set id, or
    PLATFORM:PLATFORM_USER_ID); ``key_of`` maps users.id -> key (``training.data.user_keys``).
    """
    return np.array([key_of.get(u, str(u)) for u in arrays.user_ids.tolist()], dtype=object)


def dataset_holdout_users(
    users: np.ndarray, scores: np.ndarray, dataset: np.ndarray, config: GateConfig
) -> list[str]:
    """The fixed holdout of data-set users: among those with at least ``eligible_scored``
    scores, the ``dataset_fraction`` (at most ``dataset_max_users``) whose seeded hash of the
    user key is lowest. Every model the project trains leaves these users out, so the gate
    can always compare two models on people neither has seen."""
    keys = np.asarray(users, dtype=object)[np.asarray(dataset, bool) & (np.asarray(scores) > 0)]
    if keys.size == 0:
        return []
    names, counts = np.unique(keys.astype(str), return_counts=True)
    eligible = sorted(str(u) for u in names[counts >= config.eligible_scored])
    ranked = sorted(eligible, key=lambda u: _stable_fraction(config.seed, u))
    n_pick = min(config.dataset_max_users, math.floor(len(eligible) * config.dataset_fraction))
    return ranked[:n_pick]


def _chat_holdout(
    chat: pd.DataFrame, config: GateConfig, train_mask: np.ndarray
) -> tuple[list[pd.DataFrame], list[pd.DataFrame], list[str]]:
    """Chat users: their most recent scored rows are held back, the rest is what the bot knows
    (clears those rows in ``train_mask``); returns (revealed parts, hidden parts, users)."""
    revealed: list[pd.DataFrame] = []
    hidden: list[pd.DataFrame] = []
    users: list[str] = []
    for user, g in chat.groupby("user", sort=True):
        scored = g[g["score"] > 0].sort_values(["updated_at", "anime_id"], kind="mergesort")
        if len(scored) < config.chat_min_scored:
            continue
        n_back = max(1, round(len(scored) * config.chat_recent_fraction))
        back = scored.iloc[-n_back:]
        train_mask[back["row"].to_numpy()] = False
        hidden.append(back[["user", "anime_id", "score"]])
        revealed.append(g[~g["row"].isin(back["row"])][["user", "anime_id", "score"]])
        users.append(str(user))
    return revealed, hidden, users


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    cols = ["user", "anime_id", "score"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


def build_holdout(arrays: InteractionArrays, keys: np.ndarray, config: GateConfig) -> Holdout:
    """Split every interaction row into training, folded-in evaluation and predicted rows."""
    n = arrays.user_ids.size
    keys = np.asarray(keys, dtype=object)
    scores = arrays.scores.astype(np.float32)
    frame = pd.DataFrame(
        {
            "user": keys,
            "anime_id": arrays.anime_ids.astype(np.int64),
            "score": scores,
            "row": np.arange(n),
            "dataset": arrays.platforms == DATASET_PLATFORM,
            "updated_at": arrays.updated_at,
        }
    )
    train_mask = np.ones(n, dtype=bool)
    revealed_parts: list[pd.DataFrame] = []
    hidden_parts: list[pd.DataFrame] = []
    ds = frame[frame["dataset"]]
    chosen = dataset_holdout_users(keys, scores, frame["dataset"].to_numpy(), config)
    if chosen:
        rows = ds[ds["user"].astype(str).isin(chosen)]
        train_mask[rows["row"].to_numpy()] = False
        rev, hid = reveal_split(
            rows[["user", "anime_id", "score"]],
            config.reveal,
            seed=config.seed,
            min_scored=config.eligible_scored,
        )
        revealed_parts.append(rev)
        hidden_parts.append(hid)
    chat_rev, chat_hid, chat_users = _chat_holdout(frame[~frame["dataset"]], config, train_mask)
    revealed = _concat(revealed_parts + chat_rev)
    hidden = _concat(hidden_parts + chat_hid)
    train_scores = scores[train_mask]
    scored_train = train_scores[train_scores > 0]
    counts_by_anime = pd.Series(arrays.anime_ids[train_mask]).value_counts()
    popularity = {int(a): int(c) for a, c in counts_by_anime.items()}
    kept_ds = sorted(set(revealed["user"]) & set(chosen)) if chosen else []
    return Holdout(
        revealed,
        hidden,
        train_mask,
        kept_ds,
        chat_users,
        float(scored_train.mean()) if scored_train.size else float("nan"),
        popularity,
    )


def evaluate(model: ServingModel, holdout: Holdout) -> dict[str, float]:
    """The gate's metrics for one model on the holdout ({} when nothing can be scored)."""
    if len(holdout.hidden) == 0 or not (holdout.hidden["score"] > 0).any():
        return {}
    rows = user_rows(model, holdout.revealed, holdout.hidden)
    if len(rows) == 0 or not any((h > 0).any() for h in rows.hidden_scores):
        return {}
    metrics = evaluate_rows(model, rows)
    out = {k: float(metrics[k]) for k in GATE_KEYS if k in metrics}
    out["users"] = int(metrics["users"])
    return out


def baseline(holdout: Holdout, anime_ids: np.ndarray) -> dict[str, float]:
    """What "no model" scores: the training mean as the prediction, most-popular as the list."""
    hidden = holdout.hidden
    scored = hidden[hidden["score"] > 0]
    if scored.empty or not math.isfinite(holdout.train_mean):
        return {}
    out = regression_metrics(scored["score"].to_numpy(), np.full(len(scored), holdout.train_mean))
    known = np.asarray(anime_ids, np.int64)
    pop = np.array([holdout.popularity.get(int(a), 0) for a in known], np.float64)
    order = known[np.lexsort((known, -pop))]
    like = like_min((1.0, 10.0))
    acc = RankingAccumulator(10)
    seen = holdout.revealed.groupby("user")["anime_id"].apply(set).to_dict()
    for user, g in hidden.groupby("user"):
        exclude = seen.get(user, set())
        top = [int(a) for a in order[: 10 + len(exclude)] if a not in exclude][:10]
        acc.add(top, g.loc[g["score"] >= like, "anime_id"].astype(int).tolist())
    out.update(acc.result(known.size))
    return {k: float(out[k]) for k in GATE_KEYS if k in out}


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def _finite(metrics: dict[str, float], *keys: str) -> bool:
    return all(k in metrics and math.isfinite(float(metrics[k])) for k in keys)


def sane(candidate: dict[str, float], base: dict[str, float], config: GateConfig) -> Decision:
    """Is a model with nothing to compare against fit to serve at all?"""
    if not candidate:
        return Decision(True, "no holdout rows to score on; the checkpoint loads and is served")
    if not _finite(candidate, "rmse", "ndcg_at_10"):
        return Decision(False, "metrics are not finite")
    if base and candidate["rmse"] > base["rmse"] + config.rmse_tolerance:
        return Decision(
            False,
            f"RMSE {candidate['rmse']:.3f} is worse than always predicting "
            f"the mean ({base['rmse']:.3f})",
        )
    if base and candidate["ndcg_at_10"] < 0.5 * base["ndcg_at_10"]:
        return Decision(
            False,
            f"NDCG@10 {candidate['ndcg_at_10']:.3f} is below half of "
            f"most-popular's ({base['ndcg_at_10']:.3f})",
        )
    return Decision(
        True, f"sane: RMSE {candidate['rmse']:.3f}, NDCG@10 {candidate['ndcg_at_10']:.3f}"
    )


def decide(
    candidate: dict[str, float],
    serving: dict[str, float] | None,
    base: dict[str, float],
    config: GateConfig,
) -> Decision:
    """Promote or reject (see the module docstring)."""
    if serving is None:
        first = sane(candidate, base, config)
        return Decision(first.promote, f"first model, {first.reason}")
    if not serving or not candidate:
        if not candidate and not serving:
            return Decision(
                False, "no holdout users both models are unseen on; keeping the serving model"
            )
        check = sane(candidate, base, config)
        return Decision(
            check.promote, f"serving model cannot be scored on the holdout; {check.reason}"
        )
    if not _finite(candidate, "rmse", "ndcg_at_10"):
        return Decision(False, "candidate metrics are not finite")
    problems = []
    if candidate["ndcg_at_10"] < serving["ndcg_at_10"] - config.ndcg_tolerance:
        problems.append(f"NDCG@10 {serving['ndcg_at_10']:.3f} -> {candidate['ndcg_at_10']:.3f}")
    if candidate["rmse"] > serving["rmse"] + config.rmse_tolerance:
        problems.append(f"RMSE {serving['rmse']:.3f} -> {candidate['rmse']:.3f}")
    summary = (
        f"NDCG@10 {serving['ndcg_at_10']:.3f} -> {candidate['ndcg_at_10']:.3f}, "
        f"RMSE {serving['rmse']:.3f} -> {candidate['rmse']:.3f}"
    )
    if problems:
        return Decision(
            False,
            "worse beyond tolerance: "
            + "; ".join(problems)
            + f" (tolerance NDCG {config.ndcg_tolerance}, RMSE "
            f"{config.rmse_tolerance})",
        )
    return Decision(True, summary)
