"""Speed of the model on the shared anime data: training, fold-in, and `anirec evaluate`.

Trains the default config (``training.train.fit``) on the shared ``animelist.csv`` minus 500
held-out users (seeded), then times ``ServingModel.fold_in`` for 100 ratings and the unseen-user
evaluation (reveal 10) of the 500 held-out users, and prints one JSON document.

    .venv/bin/python -m benchmarks.model_speed [--data-dir ../shared/data] [--config default]
        [--device cpu|cuda|xla] [--layout rows|dense] [--phases]

``--phases`` prints each training phase with its time (epochs, item-to-item solves, blend
tuning, refit). ``--layout`` forces the training step's data layout (default: packed rows on
the CPU, dense matrices on accelerators; see ``training/steps.py``). The report carries the
process CPU seconds and the load average, because the development machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from training import data as tdata
from training.devices import training_threads
from training.evaluate import evaluate_unseen
from training.splits import holdout_users, load_ratings_csv
from training.train import train_model

ROOT = Path(__file__).resolve().parents[1]


def catalog_genres(path: Path) -> dict[int, tuple[str, ...]]:
    cat = pd.read_csv(path)
    return {
        int(a): tuple(g.strip() for g in str(s).split(",") if g.strip())
        if isinstance(s, str)
        else ()
        for a, s in zip(cat["anime_id"], cat["genre"], strict=True)
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--config", default="default")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--heldout", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layout", choices=("rows", "dense"), default=None)
    ap.add_argument("--phases", action="store_true", help="print each training phase's time")
    ap.add_argument("--threads", type=int, default=None, help="default: the product's choice")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "model_speed.json")
    args = ap.parse_args(argv)
    if args.layout:
        os.environ["ANIREC_TRAIN_LAYOUT"] = args.layout
    torch.set_num_threads(training_threads(args.threads))
    df = load_ratings_csv(args.data_dir / "anime" / "animelist.csv")
    genres = catalog_genres(args.data_dir / "anime" / "catalog.csv")
    train, held = holdout_users(df, n=args.heldout, seed=args.seed)
    t0, c0 = time.perf_counter(), time.process_time()

    def phase(msg: str) -> None:
        if args.phases:
            print(f"[{time.perf_counter() - t0:8.2f} s] {msg}", flush=True)

    data = tdata.from_frame(train, genres, (1.0, 10.0))
    res = train_model(
        data, args.config, args.epochs, args.seed, args.device, log=phase, threads=args.threads
    )
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    s = res.serving
    # fold-in of 100 ratings (held-out users with at least 100 rows)
    lists = [g for _, g in held.groupby("user") if len(g) >= 100][:200]
    times = []
    for g in lists:
        ids = g["anime_id"].to_numpy()[:100].tolist()
        scores = [None if x == 0 else int(x) for x in g["score"].to_numpy()[:100]]
        t = time.perf_counter()
        s.fold_in(ids, scores)
        times.append(1000 * (time.perf_counter() - t))
    t = time.perf_counter()
    ev = evaluate_unseen(s, held, reveal=10, seed=args.seed)
    ev_seconds = time.perf_counter() - t
    report = {
        "config": args.config,
        "device": res.device,
        "threads": torch.get_num_threads(),
        "train_rows": len(train),
        "epochs": res.epochs_run,
        "layout": os.environ.get("ANIREC_TRAIN_LAYOUT", "auto"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "fit_wall_seconds": round(wall, 2),
        "fit_process_cpu_seconds": round(cpu, 2),
        "train_seconds": round(res.train_seconds, 2),
        "samples_per_second": round(res.samples_per_second),
        "fold_in_100_ms": {
            "p50": round(float(np.median(times)), 3),
            "p95": round(float(np.percentile(times, 95)), 3),
            "n": len(times),
        },
        "evaluate_seconds": round(ev_seconds, 2),
        "evaluate": ev,
        "val_metrics": res.val_metrics,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
