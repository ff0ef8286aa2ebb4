"""How much a retrain disturbs the bot: event-loop lag while the trainer process runs.

A heartbeat task sleeps 10 ms at a time on the bot's loop and records how late it wakes, while
``RetrainService`` runs a real retrain (trainer subprocess, gate, promotion, hot swap into a
live Recommender) and ``/model``-style status calls come in every 0.5 s. Prints a table and
writes JSON.

    python -m benchmarks.retrain_loop                          # a small synthetic world
    python -m benchmarks.retrain_loop --database anirec.db --model-dir models   # your data
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from recommender import Recommender
from storage.repository import Store
from training.registry import Registry
from training.retrain import JobOptions, RetrainService


def small_world(folder: Path) -> Path:
    """The tests' small world (planted genre tastes), written into ``folder``."""
    from tests.retrain_helpers import make_world

    db, _ = make_world(folder)
    return db


async def measure(db: Path, models: Path, options: JobOptions) -> dict:
    store = Store(db)
    reg = Registry(models)
    path = reg.serving_path()
    rec = Recommender(store, path) if path else Recommender(store, None)
    service = RetrainService(store, models, db, swap=rec.swap, options=options, follow_interval=0)
    await service.start()
    lags: list[float] = []
    stop = asyncio.Event()

    async def heartbeat() -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            t = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - t - 0.01)

    async def status_calls() -> int:
        n = 0
        while not stop.is_set():
            await service.status()
            n += 1
            await asyncio.sleep(0.5)
        return n

    beat = asyncio.create_task(heartbeat())
    calls = asyncio.create_task(status_calls())
    t0 = time.perf_counter()
    ticket = await service.request("admin", "benchmark")
    record = await service.wait(ticket.run_id)
    wall = time.perf_counter() - t0
    stop.set()
    await beat
    n_status = await calls
    await service.stop()
    store.close()
    lag_ms = np.asarray(lags) * 1000
    return {
        "run_wall_s": round(wall, 2),
        "decision": record["decision"],
        "reason": record["reason"],
        "candidate": record["candidate"],
        "serving": record["serving"],
        "serving_after": rec.info().version if rec.ready else None,
        "device": record["device"],
        "epochs": record["epochs"],
        "train_seconds": record["train_seconds"],
        "heartbeats": int(lag_ms.size),
        "status_calls": n_status,
        "loop_lag_ms": {
            "p50": round(float(np.percentile(lag_ms, 50)), 2),
            "p99": round(float(np.percentile(lag_ms, 99)), 2),
            "max": round(float(lag_ms.max()), 2),
        },
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--database", type=Path)
    p.add_argument("--model-dir", type=Path)
    p.add_argument("--device", default="cpu")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/retrain_loop.json"))
    args = p.parse_args()
    tmp = None
    if args.database is None:
        tmp = Path(tempfile.mkdtemp(prefix="anirec-bench-"))
        db, models = small_world(tmp), tmp / "models"
        extra = ["--holdout-reveal", "3", "--holdout-min-scored", "8", "--set", "batch_size=16"]
    else:
        db, models, extra = args.database, args.model_dir or Path("models"), []
    options = JobOptions(
        device=args.device, epochs=args.epochs, threads=args.threads, extra_args=extra
    )
    try:
        result = asyncio.run(measure(db, models, options))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}"
    result["data"] = "small synthetic world" if tmp else str(args.database)
    lag = result["loop_lag_ms"]
    print(f"{'data':<24}{'wall s':>8}{'decision':>10}{'lag p50':>9}{'p99':>8}{'max ms':>8}")
    print(
        f"{result['data'][-24:]:<24}{result['run_wall_s']:>8}{result['decision']:>10}"
        f"{lag['p50']:>9}{lag['p99']:>8}{lag['max']:>8}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
