"""Franchise benchmark: do discovery lists begin series where they begin, once each?

    nice python benchmarks/franchise.py [--data-dir DIR] [--workdir benchmarks/out/franchise_work]
        [--out benchmarks/out/franchise.json] [--known-users 1000]

Protocol (anime data set): users >= 40 rows, items >= 10 rows; 10% of users held out whole
(unseen users: 10 scored rows revealed and folded in, the rest hidden); the others split per
user 80/20 (known users: the 80% folded in, the 20% hidden). One default model is trained on
the known users' 80% and cached in the work folder (a second run reuses it). Franchises come
from the catalog's titles (the shared catalog has no related-anime links).

Each person gets the serving path's top 10 (fold-in, cold-start blend, NSFW hidden, their
list excluded) twice: as before (plain ranking) and after the franchise rules. Reported per
list, averaged: the share of picks that are a later entry of a series the person has not
started, the share from a series they are in, the share that repeat a series higher in the
list, NDCG@10 against hidden rows scored >= 8, and franchise-level NDCG@10 (each liked hidden
title stands for its whole series; a series counts once however many of its titles are
listed), both over every liked series and over the series not yet started.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import argparse
import json
import platform
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from recommender.filters import top_k
from recommender.franchise import FranchiseGraph
from recommender.franchise_picks import NONE, Aligned
from recommender.scoring import ServingModel
from recommender.types import Filters, ModelInfo
from recommender.user_entry import Serving, build_serving, compute_entry
from storage.importers.catalog import iter_catalog
from storage.rows import Anime, Rating
from training.metrics import ndcg_at_k
from training.splits import (
    filter_min_counts,
    holdout_users,
    load_ratings_csv,
    reveal_split,
    split_by_user,
)

K = 10
LIKE = 8
REVEAL = 10
SEED = 13
METRICS = (
    "later_unstarted",
    "from_started",
    "repeats",
    "ndcg10",
    "ndcg10_franchise",
    "ndcg10_new",
    "ndcg10_franchise_new",
)
#: before: the plain ranking; after: the franchise rules as served; after_next: the rules, but
#: each started series may show its next unseen entry (what /next would add), for comparison.
SIDES = ("before", "after", "after_next")


def _ratings(rows: pd.DataFrame) -> list[Rating]:
    return [
        Rating(int(a), int(s) if s > 0 else None, None, "dataset", "")
        for a, s in zip(rows.anime_id, rows.score, strict=True)
    ]


def _franchise_ndcg(top: Iterable[int], keys: np.ndarray, relevant: set[int]) -> float:
    """NDCG@10 where an item stands for its series and each series is credited once."""
    wanted = {int(keys[i]) for i in relevant}
    if not wanted:
        return 0.0
    credited: set[int] = set()
    dcg = 0.0
    for r, i in enumerate(list(top)[:K]):
        key = int(keys[i])
        if key in wanted and key not in credited:
            credited.add(key)
            dcg += 1.0 / np.log2(r + 2)
    ideal = sum(1.0 / np.log2(r + 2) for r in range(min(K, len(wanted))))
    return dcg / ideal


class Bench:
    """One model, its franchise alignment, and the metrics of one top-10 list."""

    def __init__(self, serving: Serving, graph: FranchiseGraph) -> None:
        self.serving = serving
        self.aligned = Aligned(serving, graph)
        n = len(serving.model.anime_ids)
        # series key per model index: the franchise number, or a unique key of its own
        self.keys = np.where(
            self.aligned.fid != NONE, self.aligned.fid, self.aligned.n + np.arange(n)
        )
        self.mask = serving.items.mask(Filters())

    def lists(self, ratings: list[Rating]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        entry = compute_entry(self.serving, (len(ratings), None, 0.0), ratings, 1.0)
        allowed = self.mask.copy()
        allowed[entry.listed] = False
        rank, after_allowed = self.aligned.discovery(entry.rank, allowed, entry.listed)
        keep = self.aligned.next_entries(entry.listed)
        rank_n, next_allowed = self.aligned.discovery(entry.rank, allowed, entry.listed, keep)
        tops = {
            "before": top_k(entry.rank, allowed, K),
            "after": top_k(rank, after_allowed, K),
            "after_next": top_k(rank_n, next_allowed, K),
        }
        return tops, entry.listed

    def metrics(self, top: np.ndarray, listed: np.ndarray, relevant: set[int]) -> dict[str, float]:
        fid, entry = self.aligned.fid, self.aligned.entry
        started = set(self.aligned.franchises_of(listed).tolist())
        later = started_n = repeats = 0
        shown: set[int] = set()
        for i in top.tolist():
            f = int(fid[i])
            if f == NONE:
                continue
            if f in started:
                started_n += 1
            elif i != entry[f]:
                later += 1
            repeats += f in shown
            shown.add(f)
        n = max(len(top), 1)
        new = {i for i in relevant if int(fid[i]) == NONE or int(fid[i]) not in started}
        return {
            "later_unstarted": later / n,
            "from_started": started_n / n,
            "repeats": repeats / n,
            "ndcg10": ndcg_at_k(top.tolist(), relevant, K),
            "ndcg10_new": ndcg_at_k(top.tolist(), new, K),
            "ndcg10_franchise": _franchise_ndcg(top, self.keys, relevant),
            "ndcg10_franchise_new": _franchise_ndcg(top, self.keys, new),
        }

    def run(self, people: list[tuple[list[Rating], set[int]]]) -> dict[str, dict[str, float]]:
        sums = {side: dict.fromkeys(METRICS, 0.0) for side in SIDES}
        index_of = self.serving.model.index_of
        for ratings, liked_ids in people:
            tops, listed = self.lists(ratings)
            relevant = {index_of[a] for a in liked_ids if a in index_of}
            for side, top in tops.items():
                for name, value in self.metrics(top, listed, relevant).items():
                    sums[side][name] += value
        n = max(len(people), 1)
        out = {s: {m: round(v / n, 5) for m, v in vals.items()} for s, vals in sums.items()}
        for side in SIDES[1:]:
            out[f"{side}_change_pct"] = {
                m: round(100 * (out[side][m] / out["before"][m] - 1), 2)
                if out["before"][m]
                else 0.0
                for m in METRICS
            }
        out["users"] = {"n": len(people)}
        return out


def _people(listed: pd.DataFrame, hidden: pd.DataFrame) -> list[tuple[list[Rating], set[int]]]:
    liked = hidden[hidden.score >= LIKE].groupby("user").anime_id.apply(set).to_dict()
    return [
        (_ratings(rows), {int(a) for a in liked.get(user, set())})
        for user, rows in listed.groupby("user", sort=True)
        if liked.get(user)
    ]


def _model(train: pd.DataFrame, genres: dict[int, tuple[str, ...]], path: Path) -> ServingModel:
    if path.is_file():
        return ServingModel.load(path)
    from training.train import fit

    started = time.time()
    result = fit(train, genres, "default", seed=0, device="cpu")
    result.serving.save(path)
    print(f"trained in {time.time() - started:.0f} s -> {path}", flush=True)
    return result.serving


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--workdir", type=Path, default=ROOT / "benchmarks" / "out" / "franchise_work")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "franchise.json")
    ap.add_argument("--known-users", type=int, default=1000)
    args = ap.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    catalog: list[Anime] = [a for _, a in iter_catalog(args.data_dir / "anime" / "catalog.csv")]
    genres = {a.anime_id: a.genres for a in catalog}
    df = filter_min_counts(load_ratings_csv(args.data_dir / "anime" / "animelist.csv"), 40, 10)
    known_all, unseen = holdout_users(df, frac=0.1, seed=SEED)
    train, known_hidden = split_by_user(known_all, 0.2, seed=SEED)
    model = _model(train, genres, args.workdir / "model.pt")
    serving = build_serving(model, catalog, ModelInfo("bench", "bench", None))
    started = time.time()
    graph = FranchiseGraph.build(catalog, [])
    graph_s = time.time() - started
    bench = Bench(serving, graph)
    users = np.sort(train.user.unique())
    chosen = np.random.default_rng(SEED).permutation(users)[: args.known_users]
    known = _people(train[train.user.isin(chosen)], known_hidden[known_hidden.user.isin(chosen)])
    revealed, hidden = reveal_split(unseen, REVEAL, seed=SEED)
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), "
        f"load average {os.getloadavg()[0]:.1f}",
        "graph": {
            "franchises": len(graph),
            "titles_in_a_franchise": sum(len(f.members) for f in graph.franchises),
            "catalog": len(catalog),
            "build_seconds": round(graph_s, 3),
        },
        "known": bench.run(known),
        "unseen_10_revealed": bench.run(_people(revealed, hidden)),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print_table(report)
    return 0


def print_table(report: dict) -> None:
    head = f"{'users':<22}{'metric':<22}" + "".join(f"{x:>12}" for x in SIDES)
    print(head + f"{'after %':>10}{'a_next %':>10}")
    for group in ("known", "unseen_10_revealed"):
        r = report[group]
        for m in METRICS:
            cells = "".join(f"{r[side][m]:>12.4f}" for side in SIDES)
            changes = f"{r['after_change_pct'][m]:>10.2f}{r['after_next_change_pct'][m]:>10.2f}"
            print(f"{group[:12] + ' (' + str(r['users']['n']) + ')':<22}{m:<22}{cells}{changes}")
    print(json.dumps(report["graph"]))


if __name__ == "__main__":
    raise SystemExit(main())
