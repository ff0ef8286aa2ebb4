"""Evaluation of new titles (cold start): withhold N anime from training, rank them for users
the model never saw.

The protocol, on a frame (user, anime_id, score; 0 = on the list but unscored):
- withheld: the N newest anime (largest MyAnimeList ids) among those with at least ``min_rows``
  list rows, or a seeded random N of the same set; ALL their rows leave training;
- unseen users: a seeded share of users held out whole (``training.splits.holdout_users``); each
  reveals ``reveal`` scored rows drawn from non-withheld titles only (users with at least
  reveal + 10 such scored rows take part), the rest of their rows are hidden;
- relevant: a user's hidden rows on withheld titles scored at or above the "liked" line
  (``training.evaluate.like_min``).

A ranker gives every unseen user a score for any candidate anime. Metrics, per ranker:
- ``new_*``: only the withheld titles ranked: NDCG@10, recall@10 and coverage (share of the
  withheld titles in anyone's top 10);
- ``mixed_*``: every anime with a list row in the data (training titles and withheld ones)
  ranked together, the user's revealed rows excluded: ``hit_rate`` (share of users whose top 10
  holds a liked new title), ``recall_new`` (recall@10 of the liked new titles) and
  ``new_share`` (share of top-10 slots filled by new titles, liked or not); ``warm_ndcg`` is
  NDCG@10 of the same list against the liked non-withheld hidden titles.
The model's own warm numbers (RMSE, NDCG@10 as `anirec evaluate` computes them) come from
``training.evaluate.evaluate_rows`` on the non-withheld hidden rows (see cold_rankers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from training.evaluate import EvaluationError, like_min
from training.metrics import RankingAccumulator, top_k_rows
from training.splits import holdout_users, reveal_split

K = 10
CHOICES = ("newest", "random")

# candidate anime ids (int64 [C]) -> scores [users, C], users in ColdSplit.users order
ScoreFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ColdConfig:
    """The protocol's knobs; the defaults are the issue's measurement."""

    n: int = 300
    choose: str = "newest"  # or "random" (seeded)
    min_rows: int = 20
    holdout_frac: float = 0.1
    reveal: int = 10
    seed: int = 0
    max_users: int | None = None  # evaluate at most this many unseen users (seeded draw)


def choose_withheld(
    ratings: pd.DataFrame, n: int, min_rows: int = 20, choose: str = "newest", seed: int = 0
) -> np.ndarray:
    """The anime ids to withhold (sorted): the ``n`` largest ids, or a seeded random ``n``,
    among anime with at least ``min_rows`` list rows (scored or not)."""
    if choose not in CHOICES:
        raise EvaluationError(f"choose must be one of {', '.join(CHOICES)}, got {choose!r}")
    counts = ratings["anime_id"].value_counts()
    eligible = np.sort(counts.index[counts.to_numpy() >= min_rows].to_numpy(np.int64))
    if not 0 < n < eligible.size:
        raise EvaluationError(
            f"cannot withhold {n} titles: {eligible.size} anime have {min_rows}+ list rows "
            "(some must stay for training)"
        )
    if choose == "newest":
        picked = eligible[-n:]
    else:
        picked = np.random.default_rng(seed).choice(eligible, n, replace=False)
    return np.sort(picked).astype(np.int64)


@dataclass(frozen=True)
class ColdSplit:
    """The rows of one cold-start evaluation (frames sorted by user, anime_id)."""

    withheld: np.ndarray  # int64 anime ids, sorted
    train: pd.DataFrame  # training users' rows, every withheld title removed
    revealed: pd.DataFrame  # unseen users' revealed rows: never a withheld title
    hidden: pd.DataFrame  # unseen users' other rows, withheld titles included
    universe: np.ndarray  # int64 anime ids ranked in the mixed setting (every anime with a row)
    like: float
    users: np.ndarray = field(init=False)  # the unseen users, sorted

    def __post_init__(self) -> None:
        object.__setattr__(self, "users", np.sort(self.revealed["user"].unique()))

    @property
    def hidden_new(self) -> pd.DataFrame:
        return self.hidden[self.hidden["anime_id"].isin(self.withheld)]

    @property
    def hidden_warm(self) -> pd.DataFrame:
        return self.hidden[~self.hidden["anime_id"].isin(self.withheld)]

    def sizes(self) -> dict[str, int]:
        new = self.hidden_new
        liked = new[new["score"] >= self.like]
        return {
            "withheld_titles": int(self.withheld.size),
            "train_rows": len(self.train),
            "train_users": int(self.train["user"].nunique()),
            "unseen_users": int(self.users.size),
            "revealed_rows": len(self.revealed),
            "hidden_rows": len(self.hidden),
            "hidden_new_rows": len(new),
            "liked_new_rows": len(liked),
            "users_with_liked_new": int(liked["user"].nunique()),
            "universe_titles": int(self.universe.size),
        }


def cold_split(
    ratings: pd.DataFrame, cfg: ColdConfig, score_range: tuple[float, float] = (1.0, 10.0)
) -> ColdSplit:
    """Withhold titles, hold out users, reveal rows of non-withheld titles (see module doc)."""
    withheld = choose_withheld(ratings, cfg.n, cfg.min_rows, cfg.choose, cfg.seed)
    train_all, held = holdout_users(ratings, frac=cfg.holdout_frac, seed=cfg.seed)
    train = train_all[~train_all["anime_id"].isin(withheld)].reset_index(drop=True)
    is_new = held["anime_id"].isin(withheld).to_numpy()
    revealed, hidden_warm = reveal_split(
        held[~is_new], cfg.reveal, seed=cfg.seed, min_scored=cfg.reveal + 10
    )
    if revealed.empty:
        raise EvaluationError(
            f"no held-out user has {cfg.reveal + 10} scored rows of non-withheld titles"
        )
    users = np.sort(revealed["user"].unique())
    if cfg.max_users is not None and users.size > cfg.max_users:
        users = np.sort(np.random.default_rng(cfg.seed).permutation(users)[: cfg.max_users])
        revealed = revealed[revealed["user"].isin(users)].reset_index(drop=True)
        hidden_warm = hidden_warm[hidden_warm["user"].isin(users)]
    new = held[is_new & held["user"].isin(users).to_numpy()]
    hidden = pd.concat([hidden_warm, new]).sort_values(["user", "anime_id"], kind="mergesort")
    return ColdSplit(
        withheld,
        train,
        revealed,
        hidden.reset_index(drop=True),
        np.unique(ratings["anime_id"].to_numpy(np.int64)),
        like_min(score_range),
    )


def _positions(users: np.ndarray, rows: pd.DataFrame, candidates: np.ndarray) -> list[np.ndarray]:
    """Per user (in ``users`` order): positions in ``candidates`` of the user's ``rows``."""
    pos = np.searchsorted(candidates, rows["anime_id"].to_numpy(np.int64))
    pos = np.minimum(pos, candidates.size - 1)
    ok = candidates[pos] == rows["anime_id"].to_numpy(np.int64)
    frame = pd.DataFrame({"user": rows["user"].to_numpy()[ok], "pos": pos[ok]})
    groups = {u: g["pos"].to_numpy(np.int64) for u, g in frame.groupby("user", sort=False)}
    empty = np.zeros(0, np.int64)
    return [groups.get(u, empty) for u in users]


def _liked(split: ColdSplit, rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["score"] >= split.like]


def _checked(scores: np.ndarray, split: ColdSplit, candidates: np.ndarray) -> np.ndarray:
    out = np.asarray(scores, dtype=np.float32)
    if out.shape != (split.users.size, candidates.size):
        raise ValueError(
            f"a ranker returned shape {out.shape}, expected {(split.users.size, candidates.size)}"
        )
    return out


def new_title_metrics(split: ColdSplit, score: ScoreFn, k: int = K) -> dict[str, float]:
    """Only the withheld titles ranked: NDCG@k, recall@k, coverage over the withheld titles."""
    cands = split.withheld
    top = top_k_rows(_checked(score(cands), split, cands), None, k)
    relevant = _positions(split.users, _liked(split, split.hidden_new), cands)
    acc = RankingAccumulator(k)
    for r, rel in enumerate(relevant):
        acc.add(top[r], rel)
    res = acc.result(int(cands.size))
    return {
        "new_ndcg": res[f"ndcg_at_{k}"],
        "new_recall": res[f"recall_at_{k}"],
        "new_coverage": res[f"coverage_at_{k}"],
        "new_users": res["users"],
    }


def mixed_metrics(split: ColdSplit, score: ScoreFn, k: int = K) -> dict[str, float]:
    """Every anime of the universe ranked together, revealed rows excluded (see module doc)."""
    cands = split.universe
    scores = _checked(score(cands), split, cands)
    exclude = np.zeros(scores.shape, dtype=bool)
    for r, pos in enumerate(_positions(split.users, split.revealed, cands)):
        exclude[r, pos] = True
    top = top_k_rows(scores, exclude, k)
    is_new = np.isin(cands, split.withheld)
    new = RankingAccumulator(k)
    hits = 0
    for r, rel in enumerate(_positions(split.users, _liked(split, split.hidden_new), cands)):
        new.add(top[r], rel)
        hits += bool(np.isin(top[r], rel).any())
    new_res = new.result(int(cands.size))
    shown = top[top >= 0]
    warm = RankingAccumulator(k)
    for r, rel in enumerate(_positions(split.users, _liked(split, split.hidden_warm), cands)):
        warm.add(top[r], rel)
    return {
        "mixed_hit_rate": hits / new_res["users"] if new_res["users"] else 0.0,
        "mixed_recall_new": new_res[f"recall_at_{k}"],
        "mixed_new_share": float(is_new[shown].mean()) if shown.size else 0.0,
        "mixed_warm_ndcg": warm.result(int(cands.size))[f"ndcg_at_{k}"],
    }


def score_ranker(split: ColdSplit, score: ScoreFn, k: int = K) -> dict[str, float]:
    """Both settings' metrics for one ranker."""
    return {**new_title_metrics(split, score, k), **mixed_metrics(split, score, k)}


@dataclass
class ColdReport:
    """Every ranker's metrics on one split, the model's warm metrics and what was skipped."""

    config: ColdConfig
    sizes: dict[str, int]
    rankers: dict[str, dict[str, float]] = field(default_factory=dict)
    warm: dict[str, float] = field(default_factory=dict)  # the model, as `anirec evaluate`
    skipped: dict[str, str] = field(default_factory=dict)  # ranker -> why
    seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "sizes": self.sizes,
            "rankers": self.rankers,
            "warm": self.warm,
            "skipped": self.skipped,
            "seconds": self.seconds,
        }


COLUMNS: tuple[tuple[str, str], ...] = (
    ("new_ndcg", "new NDCG@10"),
    ("new_recall", "new recall@10"),
    ("new_coverage", "new coverage"),
    ("mixed_hit_rate", "mixed hit rate"),
    ("mixed_recall_new", "mixed recall@10 new"),
    ("mixed_new_share", "mixed new share"),
    ("mixed_warm_ndcg", "mixed warm NDCG@10"),
)


def format_table(report: ColdReport) -> str:
    """The report as a Markdown table plus lines for the warm metrics and skipped rankers."""
    s = report.sizes
    lines = [
        f"{s['withheld_titles']} titles withheld ({report.config.choose}), "
        f"{s['unseen_users']} unseen users with {report.config.reveal} revealed ratings, "
        f"{s['users_with_liked_new']} of them liked a withheld title",
        "",
        "| ranker | " + " | ".join(title for _, title in COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    for name, m in report.rankers.items():
        lines.append(f"| {name} | " + " | ".join(f"{m[key]:.4f}" for key, _ in COLUMNS) + " |")
    if report.warm:
        w = report.warm
        lines += [
            "",
            f"warm (the model on non-withheld titles, as `anirec evaluate`): RMSE {w['rmse']:.4f}, "
            f"NDCG@10 {w['ndcg_at_10']:.4f}, recall@10 {w['recall_at_10']:.4f}, "
            f"{int(w['users'])} users",
        ]
    for name, why in report.skipped.items():
        lines.append(f"skipped {name}: {why}")
    return "\n".join(lines)
