"""What each stage costs as the data grows: import, train, evaluate, recommend, retrain.

    python -m benchmarks.scale --factor 10
    python -m benchmarks.scale --factors 1,5,10 [--stages import,train,evaluate,recommend,retrain]
        [--workdir /tmp/anirec-scale] [--seed 0] [--checkpoint MODEL] [--out FILE]

For each factor N it writes an N-times ratings file from the shared data (the seeded expansion
of :mod:`benchmarks.scale_data`: copy 0 is the real file, every other copy resamples each real
user's list as a new user) and a 500-user evaluation file of people no copy contains. Then it
runs each stage as its own child process, the way a person would:

- ``import``: ``anirec import catalog`` (not timed), then ``anirec import ratings FILE``;
- ``train``: ``anirec train --device cpu`` (default config), written where the registry serves
  it (``serving.safetensors``), so that the retrain below has a model to be gated against;
- ``evaluate``: ``anirec evaluate`` on the evaluation file (fold-in of people never seen);
- ``recommend``: the ``Recommender`` API on the trained checkpoint, for the same 200 real
  data-set users at every factor: a fresh call (fold-in from the database) and a cached one;
  without a model of its own the factor uses ``--checkpoint`` or the last trained factor's;
- ``retrain``: ``anirec retrain --device cpu`` (the real job: train, gate, promote).

Wall time is measured around the child; peak memory is the child's ``ru_maxrss`` from
``os.wait4`` (the largest resident set of that process tree: with ``retrain``, the trainer
subprocess too); CPU time is its user + system time. The table is printed, the JSON goes to
``benchmarks/out/scale.json`` (merged with earlier runs by factor and stage) and a log-log plot
of wall time and peak memory against rows to ``benchmarks/out/scale.png`` (when matplotlib is
installed; otherwise a message says it was skipped).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("import", "train", "evaluate", "recommend", "retrain")
#: The real data-set users whose /recommend is timed at every factor.
RECOMMEND_USERS = 200


def _env(work: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ANIREC_DATABASE": str(work / "anirec.db"),
        "ANIREC_MODEL_DIR": str(work / "models"),
        "ANIREC_DEVICE": "cpu",
    }


def measure(cmd: list[str], work: Path, log_name: str) -> dict[str, Any]:
    """Run ``cmd`` as a child; its wall time, CPU time, peak RSS, exit code and stdout."""
    log = work / f"{log_name}.log"
    t0 = time.perf_counter()
    with log.open("w") as err, (work / f"{log_name}.out").open("w") as out:
        child = subprocess.Popen(cmd, env=_env(work), stdout=out, stderr=err, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - t0
    child.returncode = os.waitstatus_to_exitcode(status)
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "exit_code": child.returncode,
        "stdout": (work / f"{log_name}.out").read_text()[-4000:],
    }


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "bot.cli", *args]


def _json_tail(text: str) -> Any:
    start = text.find("{")
    try:
        return json.loads(text[start:]) if start >= 0 else None
    except ValueError:
        return None


def prepare(work: Path, data_dir: Path, factor: int, seed: int) -> int:
    """The N-times ratings file and the evaluation file (in a child: keeps this process small)."""
    work.mkdir(parents=True, exist_ok=True)
    ratings, holdout = work / "ratings.csv", work / "holdout.csv"
    meta = work / "ratings.json"
    if ratings.exists() and meta.exists():
        doc = json.loads(meta.read_text())
        if doc.get("factor") == factor and doc.get("seed") == seed:
            return int(doc["rows"])
    code = (
        "import json, sys; from pathlib import Path; from benchmarks import scale_data as s;"
        "src, out, hold = map(Path, sys.argv[1:4]); f, seed = int(sys.argv[4]), int(sys.argv[5]);"
        "rows = s.write_expansion(src, out, f, seed); s.write_holdout(src, hold, seed);"
        "print(json.dumps({'rows': rows}))"
    )
    source = data_dir / "anime" / "animelist.csv"
    args = [str(source), str(ratings), str(holdout), str(factor), str(seed)]
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=_env(work),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = int(json.loads(done.stdout)["rows"])
    meta.write_text(json.dumps({"factor": factor, "seed": seed, "rows": rows}))
    return rows


def run_stage(stage: str, work: Path, data_dir: Path, checkpoint: Path | None) -> dict[str, Any]:
    """One stage in a child process; the measurement plus what the stage reported."""
    model = work / "models" / "serving.safetensors"
    if stage == "import":
        for stale in work.glob("anirec.db*"):
            stale.unlink()
        subprocess.run(
            cli("import", "catalog", str(data_dir / "anime" / "catalog.csv")),
            env=_env(work),
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        result = measure(cli("import", "ratings", str(work / "ratings.csv"), "--json"), work, stage)
    elif stage == "train":
        for stale in (work / "models").glob("**/*"):
            if stale.is_file():
                stale.unlink()
        args = ("train", "--device", "cpu", "--out", str(model), "--json")
        result = measure(cli(*args), work, stage)
    elif stage == "evaluate":
        args = ("evaluate", "--checkpoint", str(model), "--ratings", str(work / "holdout.csv"))
        result = measure(cli(*args, "--max-users", "500", "--json"), work, stage)
    elif stage == "recommend":
        used = model if model.exists() else checkpoint
        if used is None or not used.exists():
            return {"skipped": "no trained model (train first, or pass --checkpoint)"}
        cmd = [sys.executable, "-m", "benchmarks.scale", "--child-recommend", str(used)]
        result = measure(cmd, work, stage)
        result["checkpoint"] = str(used)
    elif stage == "retrain":
        result = measure(cli("retrain", "--device", "cpu", "--json"), work, stage)
    else:
        raise SystemExit(f"unknown stage {stage!r}; expected some of {', '.join(STAGES)}")
    result["report"] = _json_tail(result.pop("stdout"))
    return result


def child_recommend(checkpoint: Path) -> None:
    """In a child: load the Recommender, then time fresh and cached /recommend for the same
    real data-set users at every factor; prints JSON."""
    sys.path.insert(0, str(ROOT))
    from recommender import Recommender
    from storage.repository import Store

    with Store(os.environ["ANIREC_DATABASE"]) as store:
        t0 = time.perf_counter()
        rec = Recommender(store, checkpoint)
        load_s = time.perf_counter() - t0
        users = [store.users.find("dataset", str(u)) for u in range(1, 20 * RECOMMEND_USERS)]
        found = [u.id for u in users if u is not None]
        ids = found[:RECOMMEND_USERS]
        # the first request of a process pays one-time set-up (lazy tables, allocator, caches):
        # timed on its own, on a user outside the timed set, so the percentiles are steady state
        t = time.perf_counter()
        rec.recommend(found[RECOMMEND_USERS] if len(found) > RECOMMEND_USERS else ids[0])
        first_ms = (time.perf_counter() - t) * 1000
        wall: dict[str, list[float]] = {"fresh": [], "cached": []}
        cpu: dict[str, list[float]] = {"fresh": [], "cached": []}
        for uid in ids:
            for kind in ("fresh", "cached"):  # the first call folds the user in
                t, c = time.perf_counter(), time.thread_time()
                rec.recommend(uid)
                wall[kind].append(time.perf_counter() - t)
                cpu[kind].append(time.thread_time() - c)
    print(
        json.dumps(
            {
                "users": len(ids),
                "load_s": round(load_s, 2),
                "first_call_ms": round(first_ms, 2),
                "fresh_ms": _percentiles(wall["fresh"]),
                "cached_ms": _percentiles(wall["cached"]),
                "fresh_cpu_ms": _percentiles(cpu["fresh"]),
                "cached_cpu_ms": _percentiles(cpu["cached"]),
            }
        )
    )


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    if not ms:
        return {}
    return {
        "p50": round(statistics.median(ms), 2),
        "p99": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 2),
    }


def machine() -> dict[str, Any]:
    return {
        "node": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "memory_measure": "os.wait4 ru_maxrss of each stage's child process tree",
    }


def table(results: list[dict[str, Any]]) -> str:
    """A Markdown table: one row per (factor, stage)."""
    lines = [
        "| factor | rows | stage | wall s | CPU s | peak RSS MB | rows/s | note |",
        "|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in results:
        if "skipped" in r:
            note = r["skipped"]
            lines.append(f"| {r['factor']}x | {r['rows']:,} | {r['stage']} | | | | | {note} |")
            continue
        rate = f"{r['rows'] / r['wall_s']:,.0f}" if r["stage"] in ("import", "train") else ""
        lines.append(
            f"| {r['factor']}x | {r['rows']:,} | {r['stage']} | {r['wall_s']:.1f} | "
            f"{r['cpu_s']:.1f} | {r['peak_rss_mb']:,.0f} | {rate} | {note_of(r)} |"
        )
    return "\n".join(lines)


def note_of(r: dict[str, Any]) -> str:
    report = r.get("report") or {}
    if r.get("exit_code"):
        return f"exit code {r['exit_code']}"
    if r["stage"] == "recommend":
        f, c = report.get("fresh_cpu_ms", {}), report.get("cached_cpu_ms", {})
        fw, cw = report.get("fresh_ms", {}), report.get("cached_ms", {})
        return (
            f"CPU ms p50/p99: fresh {f.get('p50')}/{f.get('p99')}, cached {c.get('p50')}/"
            f"{c.get('p99')}; wall fresh {fw.get('p50')}/{fw.get('p99')}, cached "
            f"{cw.get('p50')}/{cw.get('p99')}; model load {report.get('load_s')} s, first call "
            f"{report.get('first_call_ms')} ms"
        )
    if r["stage"] == "evaluate":
        return f"{report.get('users')} users, NDCG@10 {report.get('ndcg_at_10', 0):.4f}"
    if r["stage"] == "retrain":
        return f"{report.get('decision')}: {str(report.get('reason', ''))[:60]}"
    if r["stage"] == "train":
        return f"{report.get('epochs')} epochs, fit {report.get('train_seconds', 0):.0f} s"
    return ""


def plot(results: list[dict[str, Any]], path: Path) -> str:
    """Log-log wall time and peak memory against rows, one line per stage."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: plot skipped"
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for stage in STAGES:
        pts = sorted(
            (r["rows"], r["wall_s"], r["peak_rss_mb"])
            for r in results
            if r["stage"] == stage and "wall_s" in r and not r.get("exit_code")
        )
        if not pts:
            continue
        rows = [p[0] for p in pts]
        left.plot(rows, [p[1] for p in pts], "o-", label=stage)
        right.plot(rows, [p[2] for p in pts], "o-", label=stage)
    for ax, label in ((left, "wall time (s)"), (right, "peak RSS (MB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("rating rows")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle("Anirec: cost per stage against rows (2 shared vCPUs)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"plot: {path}"


def merge(path: Path, new: list[dict[str, Any]], info: dict[str, Any]) -> list[dict[str, Any]]:
    """Earlier results for other (factor, stage) pairs, then these."""
    old: list[dict[str, Any]] = []
    if path.exists():
        old = json.loads(path.read_text()).get("results", [])
    done = {(r["factor"], r["stage"]) for r in new}
    merged = [r for r in old if (r["factor"], r["stage"]) not in done] + new
    merged.sort(key=lambda r: (r["factor"], STAGES.index(r["stage"])))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": info, "results": merged}, indent=1))
    return merged


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child-recommend":
        child_recommend(Path(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factor", type=int, help="one factor, e.g. 10")
    parser.add_argument("--factors", default="", help="several, e.g. 1,5,10,25")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/anirec-scale"))
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("ANIREC_DATA_DIR", "../shared/data"))
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", type=Path, help="model for recommend when not trained")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "scale.json")
    args = parser.parse_args()
    factors = [int(f) for f in args.factors.split(",") if f] or [args.factor or 1]
    stages = [s for s in args.stages.split(",") if s]
    info, results = machine(), []
    checkpoint = args.checkpoint
    for factor in factors:
        work = (args.workdir / f"x{factor}").resolve()
        rows = prepare(work, args.data_dir.resolve(), factor, args.seed)
        for stage in stages:
            print(f"{factor}x ({rows:,} rows): {stage} ...", flush=True)
            result = {"factor": factor, "rows": rows, "stage": stage}
            result |= run_stage(stage, work, args.data_dir.resolve(), checkpoint)
            results.append(result)
            print(f"  {json.dumps(result)[:400]}", flush=True)
            merge(args.out, [result], info)  # saved as it goes: a stopped run keeps its stages
            if stage == "train" and not result.get("exit_code"):
                checkpoint = work / "models" / "serving.safetensors"
    info["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    merged = merge(args.out, results, info)
    print(table(merged))
    print(plot(merged, args.out.with_suffix(".png")))


if __name__ == "__main__":
    main()
