"""Quick probe of the content encoder: can the model rank titles it never saw rows for?

    python benchmarks/content_probe.py [--data-dir DIR] [--seed 42] [--configs default,nocontent]
        [--relatives | --franchise FILE] [--epochs N]

Protocol (close to benchmarks/cold_start.py's): the 300 newest anime (largest MyAnimeList ids
among those with >= 20 list rows) are withheld from training but stay in the catalog (so the
content-encoder model gives them content-only vectors); 10% of users are held out whole; each
held-out user reveals 10 scored rows of other titles, is folded in, and the withheld titles
are ranked; relevant = withheld titles the user scored >= 8. Users without a liked withheld
title are skipped. Beside it the warm numbers of the same users: NDCG@10 over every trained
title (revealed ones excluded, relevant = other rows scored >= 8) and RMSE on their scored
rows of trained titles. The catalog rows carry genres, type and episodes only (never members
or the mean score). ``--relatives`` links titles whose names share their first two words (a
stand-in for franchise links, which the shared data lacks).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import argparse
import json
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from recommender.model import get_config
from storage.rows import Anime
from training.splits import filter_min_counts, holdout_users, load_ratings_csv
from training.train import fit

K, REVEAL, N_NEW, LIKE = 10, 10, 300, 8.0


def catalog(data_dir: Path) -> list[Anime]:
    cat = pd.read_csv(data_dir / "anime" / "catalog.csv")
    out = []
    for row in cat.itertuples():
        eps = pd.to_numeric(row.episodes, errors="coerce")
        out.append(
            Anime(
                int(row.anime_id),
                str(row.name),
                tuple(g.strip() for g in str(row.genre).split(",") if g.strip() and row.genre),
                None if pd.isna(row.type) else str(row.type),
                None if pd.isna(eps) else int(eps),
                None,  # never the mean score
                0,  # never the member count
                False,
            )
        )
    return out


def title_relatives(anime: list[Anime]) -> dict[int, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for a in anime:
        words = re.findall(r"[a-z0-9]+", a.title.casefold())
        if len(words) >= 2:
            groups[" ".join(words[:2])].append(a.anime_id)
    return {i: [j for j in ids if j != i] for ids in groups.values() if len(ids) > 1 for i in ids}


def relatives_of(anime: list[Anime], args: argparse.Namespace) -> dict[int, list[int]] | None:
    """Trained-relative links: a franchise module's (``--franchise FILE``, any module with
    ``FranchiseGraph.build(animes).relatives(id)``), else shared first words, else none."""
    if args.franchise:
        import importlib.util

        spec = importlib.util.spec_from_file_location("probe_franchise", args.franchise)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        graph = module.FranchiseGraph.build(anime)
        return {a.anime_id: list(graph.relatives(a.anime_id)) for a in anime}
    return title_relatives(anime) if args.relatives else None


def ndcg(order: np.ndarray, relevant: set[int], k: int = K) -> float:
    gains = [1.0 / np.log2(r + 2) for r, i in enumerate(order[:k]) if int(i) in relevant]
    ideal = sum(1.0 / np.log2(r + 2) for r in range(min(k, len(relevant))))
    return float(sum(gains) / ideal) if ideal else 0.0


def run(args: argparse.Namespace, config: str) -> dict[str, float]:
    df = filter_min_counts(load_ratings_csv(args.data_dir / "anime" / "animelist.csv"))
    counts = df.groupby("anime_id").size()
    new_ids = np.sort(counts[counts >= 20].index.to_numpy())[-N_NEW:]
    train_df, held = holdout_users(df, frac=0.1, seed=args.seed)
    train_df = train_df[~train_df.anime_id.isin(new_ids)]
    anime = catalog(args.data_dir)
    genres = {a.anime_id: a.genres for a in anime}
    rel = relatives_of(anime, args)
    cfg = get_config("default")
    if config == "nocontent":
        cfg = cfg.with_(content=False)
    elif config.startswith("weight"):
        cfg = cfg.with_(content_weight=float(config[6:]))
    if args.epochs:
        cfg = cfg.with_(epochs=args.epochs)
    t0 = time.perf_counter()
    use_catalog = anime if config != "nocontent" else None
    res = fit(train_df, genres, cfg, seed=args.seed, catalog=use_catalog, relatives=rel)
    secs = time.perf_counter() - t0
    model = res.serving
    rng = np.random.default_rng(args.seed)
    new_idx = np.array([model.index_of.get(int(a), -1) for a in new_ids])
    cold, warm, sq = [], [], []
    genre_cols = sorted({g for a in anime for g in a.genres})
    gmat = {a.anime_id: np.isin(genre_cols, a.genres).astype(np.float32) for a in anime}
    base_profile, base_random = [], []
    for _u, rows in held.groupby("user"):
        old = rows[~rows.anime_id.isin(new_ids)]
        scored_old = old[old.score > 0]
        if len(scored_old) < REVEAL + 5:
            continue
        shown = scored_old.sample(REVEAL, random_state=int(rng.integers(1 << 30)))
        rest = old.drop(shown.index)
        state = model.fold_in(shown.anime_id.tolist(), shown.score.tolist())
        rank = model.rank(state)
        pred = model.predict(state)
        liked_new = set(rows[rows.anime_id.isin(new_ids) & (rows.score >= LIKE)].anime_id)
        if liked_new and (new_idx >= 0).all():
            order = new_ids[np.argsort(-rank[new_idx], kind="stable")]
            cold.append(ndcg(order, liked_new))
            mean = shown.score.mean()
            prof = sum(
                (s - mean + 0.5) * gmat[a] for a, s in zip(shown.anime_id, shown.score, strict=True)
            )
            g_order = new_ids[np.argsort(-np.array([gmat[a] @ prof for a in new_ids]))]
            base_profile.append(ndcg(g_order, liked_new))
            base_random.append(ndcg(rng.permutation(new_ids), liked_new))
        trained = ~model.is_new_mask
        cand = trained.copy()
        cand[[model.index_of[a] for a in shown.anime_id if a in model.index_of]] = False
        liked_old = {
            model.index_of[a] for a in rest[rest.score >= LIKE].anime_id if a in model.index_of
        }
        if liked_old:
            masked = np.where(cand, rank, -np.inf)
            warm.append(ndcg(np.argsort(-masked, kind="stable"), liked_old))
        for a, s in rest[rest.score > 0][["anime_id", "score"]].values:
            if a in model.index_of:
                sq.append((pred[model.index_of[a]] - s) ** 2)
    return {
        "config": config,
        "seed": args.seed,
        "relatives": "franchise" if args.franchise else bool(args.relatives),
        "train_seconds": round(secs, 1),
        "cold_users": len(cold),
        "cold_ndcg10": round(float(np.mean(cold)), 4) if cold else float("nan"),
        "genre_profile_ndcg10": round(float(np.mean(base_profile)), 4) if cold else float("nan"),
        "random_ndcg10": round(float(np.mean(base_random)), 4) if cold else float("nan"),
        "warm_users": len(warm),
        "warm_ndcg10": round(float(np.mean(warm)), 4),
        "warm_rmse": round(float(np.sqrt(np.mean(sq))), 4),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--configs", default="default")
    p.add_argument("--relatives", action="store_true")
    p.add_argument("--franchise", type=Path, help="a franchise module file to link relatives")
    p.add_argument("--epochs", type=int, default=0)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    for config in args.configs.split(","):
        print(json.dumps(run(args, config)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
