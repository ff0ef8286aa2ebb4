"""``/recommend`` latency with a catalog of 20k+ titles, most of them content-only.

    python benchmarks/catalog_latency.py [--data-dir ../shared/data] [--titles 21000]
        [--users 4000] [--epochs 3] [--out benchmarks/out/catalog_latency.json]

Trains the default (content encoder) model on a random ``--users`` users of the shared anime
data (the real 12k catalog: titles without rows get content vectors), then adds synthetic
titles to the store's catalog up to ``--titles`` (genres, type and episodes drawn from real
rows, ids above every real one), so that loading the checkpoint extends the model to the whole
catalog (``recommender.growth``), exactly as a catalog refresh does. 60 held-out users with up
to 100 scored rows each are stored as console users. Timed like benchmarks/latency.py (each call
alone; wall and thread CPU time): ``recommend`` k=10 with the fold-in cached, and fresh (cache
invalidated first: stamp query, list read, fold-in, blend, top-k, explanations).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch
from latency import percentiles, store_users, timed

from recommender import Recommender
from recommender.scoring import ServingModel
from storage.importers import parse_catalog
from storage.repository import Store
from storage.rows import Anime
from training.splits import holdout_users, load_ratings_csv
from training.train import fit


def synthetic_titles(catalog: list[Anime], n: int, seed: int) -> list[Anime]:
    """``n`` new titles shaped like real ones (genres/type/episodes of a random real row)."""
    rng = np.random.default_rng(seed)
    top = max(a.anime_id for a in catalog)
    out = []
    for j, i in enumerate(rng.integers(0, len(catalog), n)):
        src = catalog[int(i)]
        out.append(
            replace(src, anime_id=top + 1 + j, title=f"Synthetic {j}", mal_score=None, members=0)
        )
    return out


def trained_model(
    args: argparse.Namespace, train_df: pd.DataFrame, catalog: list[Anime], tmp: Path
) -> tuple[Path, float | None, int]:
    """(checkpoint, training seconds or None when reused, trained titles): trained here, or
    the one an earlier run with the same settings left in ``--workdir``."""
    name = f"catalog-latency-u{args.users}-e{args.epochs}-s{args.seed}.safetensors"
    kept = args.workdir / name if args.workdir is not None else None
    if kept is not None and kept.is_file():
        return kept, None, int((ServingModel.load(kept).popularity > 0).sum())
    genres = {a.anime_id: a.genres for a in catalog}
    t0 = time.perf_counter()
    res = fit(train_df, genres, "default", epochs=args.epochs, seed=args.seed, catalog=catalog)
    train_s = time.perf_counter() - t0
    if kept is not None:
        kept.parent.mkdir(parents=True, exist_ok=True)
    path = res.serving.save(kept or tmp / "model.safetensors")
    return path, round(train_s, 1), int((res.serving.popularity > 0).sum())


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--titles", type=int, default=21000)
    p.add_argument("--users", type=int, default=4000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/out/catalog_latency.json")
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep the trained checkpoint here between runs (default: train into a temp dir)",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    catalog = parse_catalog(args.data_dir / "anime" / "catalog.csv")
    df = load_ratings_csv(args.data_dir / "anime" / "animelist.csv")
    train_df, held = holdout_users(df, n=60, seed=args.seed)
    users = train_df["user"].unique()
    keep = np.random.default_rng(args.seed).choice(users, min(args.users, users.size), False)
    train_df = train_df[train_df["user"].isin(keep)]
    full = catalog + synthetic_titles(catalog, max(0, args.titles - len(catalog)), args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        path, train_s, trained = trained_model(args, train_df, catalog, Path(tmp))
        with Store(Path(tmp) / "anirec.db") as store:
            store.catalog.upsert(full)
            lists = {str(u): rows[rows.score > 0].head(100) for u, rows in held.groupby("user")}
            ids = list(store_users(store, "lat", lists).values())
            t1 = time.perf_counter()
            rec = Recommender(store, path)
            load_s = time.perf_counter() - t1
            info = rec.info()
            assert info is not None
            for u in ids:
                rec.recommend(u, 10)
            cached = percentiles(timed(lambda i: rec.recommend(ids[i % len(ids)], 10), args.calls))
            fresh = percentiles(
                timed(
                    lambda i: rec.recommend(ids[i % len(ids)], 10),
                    args.calls // 2,
                    lambda i: rec.invalidate(ids[i % len(ids)]),
                )
            )
            new_picks = sum(
                bool(p.reason.startswith("New")) for u in ids for p in rec.recommend(u, 10)
            )
    result = {
        "machine": f"{platform.node()} {os.cpu_count()} cores",
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "catalog_titles": len(full),
        "model_titles": info.n_anime,
        "trained_titles": trained,
        "train_s": train_s,
        "load_and_extend_s": round(load_s, 2),
        "recommend_cached": cached,
        "recommend_fresh": fresh,
        "new_title_picks_in_top10": new_picks,
        "users": len(ids),
    }
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
