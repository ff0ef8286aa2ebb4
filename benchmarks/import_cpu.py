"""CPU time and peak memory of ``anirec import ratings FILE``, then of the same import again.

On a shared machine wall time says little; the CPU time (user + system) and peak RSS of the
CLI child come from ``os.wait4``. The database starts as a copy of ``--template`` (a file
with the catalog imported), so each run measures the same fresh import, then an unchanged
re-import (idempotent: nothing written).

    python -m bot.cli import catalog CATALOG   # with ANIREC_DATABASE=/tmp/t.db, once
    nice python benchmarks/import_cpu.py FILE --template /tmp/t.db --workdir /tmp/imp
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(ratings: Path, db: Path) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ANIREC_DATABASE": str(db)}
    cmd = [sys.executable, "-m", "bot.cli", "import", "ratings", str(ratings), "--json"]
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE)
    out = child.stdout.read() if child.stdout else b""
    _, status, usage = os.wait4(child.pid, 0)
    report = json.loads(out[out.find(b"{") :] or b"{}")
    cpu = usage.ru_utime + usage.ru_stime
    return {
        "wall_s": round(time.perf_counter() - t0, 1),
        "cpu_s": round(cpu, 1),
        "rows_per_cpu_s": round(report.get("rows", 0) / cpu),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "written": report.get("written"),
        "exit_code": os.waitstatus_to_exitcode(status),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ratings", type=Path)
    parser.add_argument("--template", type=Path, required=True, help="database with the catalog")
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    db = args.workdir / "anirec.db"
    for stale in args.workdir.glob("anirec.db*"):
        stale.unlink()
    shutil.copy(args.template, db)
    for name in ("import", "re-import"):
        print(name, json.dumps(run(args.ratings, db)), flush=True)


if __name__ == "__main__":
    main()
