"""Onboarding benchmark: does answering the onboarding deck tell more than random popular titles?

    python benchmarks/onboarding.py [--data-dir DIR] [--out benchmarks/out/onboarding.json]
        [--tune]  (grid-search the deck's shape on the validation users, then test)

Protocol (anime data set): users >= 40 rows, items >= 10 rows; 20% of users held out whole and
never trained on, split in half: validation users (to tune the deck) and test users (reported).
A default model is trained on the rest (cached under benchmarks/out/). Each held-out user is
shown ten titles, in order, and "answers" those they scored (their held-out score); a title
they do not have, or have without a score, is skipped. The first five answers are folded in,
and the model ranks every anime except the answered ones; NDCG@10 against the user's other rows
scored >= 8. Two ways to choose the ten titles: the onboarding deck (one list for everyone) and
ten random titles from the 100 most popular (a fresh draw per user, seeded).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import argparse
import itertools
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from recommender.onboarding import DeckShape, deck_impact, score_spread, select_deck
from recommender.scoring import ServingModel
from training.metrics import ndcg_at_k
from training.splits import filter_min_counts, holdout_users, load_ratings_csv

ANSWERS = 5
SHOWN = 10
#: A longer list, shown until five are answered (about a fifth of popular titles are).
UNTIL_FIVE = 30
RANDOM_POOL = 100
LIKE = 8
SEED = 13


def _z(x: np.ndarray) -> np.ndarray:
    std = float(x.std())
    return (x - x.mean()) / (std if std > 1e-9 else 1.0)


class Bench:
    """The trained model, its cold-start prior and the held-out users' rows."""

    def __init__(self, model: ServingModel, heldout: pd.DataFrame, spread: np.ndarray) -> None:
        self.model, self.spread = model, spread
        predicted = model.predict(model.fold_in([], []))
        self.prior = _z(_z(np.log1p(model.popularity)) + _z(predicted))
        self.users: list[tuple[dict[int, float], set[int]]] = []
        for _, rows in heldout.groupby("user", sort=True):
            idx = [model.index_of.get(int(a)) for a in rows.anime_id]
            scores = {
                i: float(s) for i, s in zip(idx, rows.score, strict=True) if i is not None and s > 0
            }
            listed = {i for i in idx if i is not None}
            if sum(s >= LIKE for s in scores.values()) >= 1:
                self.users.append((scores, listed))
        self.popular = np.argsort(-model.popularity, kind="stable")[:RANDOM_POOL]

    def ndcg(self, shown: list[int], scores: dict[int, float], listed: set[int]) -> float:
        answered = [i for i in shown if i in scores][:ANSWERS]
        state = self.model.fold_in_indices(
            np.array(answered, np.int64), np.array([scores[i] for i in answered], np.float32)
        )
        n = len(answered)
        if n:
            w = n / (n + 1.0)
            rank = w * _z(self.model.rank(state)) + (1 - w) * self.prior
        else:
            rank = self.prior.copy()
        rank = rank.astype(np.float64)
        rank[answered] = -np.inf
        top = np.argsort(-rank, kind="stable")[:10]
        relevant = {i for i, s in scores.items() if s >= LIKE and i not in answered}
        return ndcg_at_k(top.tolist(), relevant, 10)

    def deck(self, shape: DeckShape, shown: int) -> list[int]:
        return select_deck(
            self.model.item_vectors,
            self.model.popularity,
            self.spread,
            np.ones(self.model.n_items, bool),
            replace(shape, size=shown),
            deck_impact(self.model),
        )

    def deck_only(self, users: list[int], shape: DeckShape) -> float:
        """Mean NDCG@10 after the deck (for tuning: the random side does not depend on it)."""
        deck = self.deck(shape, SHOWN)
        return float(np.mean([self.ndcg(deck, *self.users[u]) for u in users]))

    def run(
        self, users: list[int], shape: DeckShape, shown: int = SHOWN, draws: int = 5
    ) -> dict[str, float]:
        """Deck against random popular titles (``draws`` random lists per user, averaged)."""
        deck = self.deck(shape, shown)
        rng = np.random.default_rng(SEED)
        deck_nd, rand_nd, deck_ans, rand_ans = [], [], [], []
        for u in users:
            scores, listed = self.users[u]
            deck_nd.append(self.ndcg(deck, scores, listed))
            deck_ans.append(min(ANSWERS, sum(i in scores for i in deck)))
            nd, ans = [], []
            for _ in range(draws):
                randoms = rng.permutation(self.popular)[:shown].tolist()
                nd.append(self.ndcg(randoms, scores, listed))
                ans.append(min(ANSWERS, sum(i in scores for i in randoms)))
            rand_nd.append(float(np.mean(nd)))
            rand_ans.append(float(np.mean(ans)))
        d, r = float(np.mean(deck_nd)), float(np.mean(rand_nd))
        diff = np.asarray(deck_nd) - np.asarray(rand_nd)
        return {
            "users": len(users),
            "shown": shown,
            "deck_ndcg10": round(d, 4),
            "random_ndcg10": round(r, 4),
            "gain_pct": round(100 * (d / r - 1), 1) if r > 0 else float("nan"),
            "gain_pct_se": round(100 * float(diff.std(ddof=1)) / np.sqrt(diff.size) / r, 1),
            "deck_answers": round(float(np.mean(deck_ans)), 2),
            "random_answers": round(float(np.mean(rand_ans)), 2),
        }


def _model(train: pd.DataFrame, genres: dict[int, tuple[str, ...]], cache: Path) -> ServingModel:
    if cache.is_file():
        return ServingModel.load(cache)
    from training.train import fit

    result = fit(train, genres, "default", seed=0, device="cpu")
    result.serving.save(cache)
    return result.serving


def _grid() -> list[DeckShape]:
    pools = (100, 150, 300)
    spreads = (0.0, 1.0, 2.0, 4.0)
    pops = (0.0, 0.5, 1.0, 2.0)
    dists = (0.0, 1.0, 2.0)
    impacts = (0.0, 1.0)
    grid = itertools.product(pools, spreads, pops, dists, impacts)
    return [DeckShape(SHOWN, *p) for p in grid]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "onboarding.json")
    ap.add_argument("--tune", action="store_true")
    args = ap.parse_args(argv)
    ratings = load_ratings_csv(args.data_dir / "anime" / "animelist.csv")
    cat = pd.read_csv(args.data_dir / "anime" / "catalog.csv", usecols=["anime_id", "genre"])
    genres = {
        int(a): tuple(g.strip() for g in str(gs).split(",") if g.strip())
        for a, gs in zip(cat.anime_id, cat.genre.fillna(""), strict=True)
    }
    df = filter_min_counts(ratings, 40, 10)
    train, heldout = holdout_users(df, frac=0.2, seed=SEED)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model = _model(train, genres, args.out.parent / "onboarding_model.pt")
    scored = train[train.score > 0]
    idx = scored.anime_id.map(model.index_of)
    keep = idx.notna().to_numpy()
    spread = score_spread(idx[keep].astype(int).to_numpy(), scored.score[keep], model.n_items)
    bench = Bench(model, heldout, spread)
    order = np.random.default_rng(SEED).permutation(len(bench.users))
    val, test = order[: len(order) // 2].tolist(), order[len(order) // 2 :].tolist()
    shape, tuned = DeckShape(), []
    if args.tune:
        for s in _grid():
            tuned.append((round(bench.deck_only(val, s), 4), s))
        tuned.sort(key=lambda t: -t[0])
        shape = tuned[0][1]
        print("best on validation:", shape, tuned[0][0])
    report = {
        "shape": asdict(shape),
        "validation_top": [{"ndcg10": v, **asdict(s)} for v, s in tuned[:8]],
        "validation": bench.run(val, shape),
        "test": bench.run(test, shape),
        "test_until_5_answers": bench.run(test, shape, shown=UNTIL_FIVE),
        "spread_weighted_test": bench.run(test, replace(shape, spread_power=1.0)),
    }
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
