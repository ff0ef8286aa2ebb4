"""How fast the shared data set imports into a fresh SQLite file, and how big the file gets.

    python benchmarks/import_bench.py [--data-dir ../shared/data] [--repeat 3] [--out FILE]
        [--synthetic-mb 50,150] [--busy]

Prints a table and writes JSON (default benchmarks/out/import.json). ``--synthetic-mb`` also
imports generated ratings files of those sizes, each in a fresh subprocess, and reports its peak
resident memory (``ru_maxrss``). ``--busy`` imports the shared ratings in a subprocess while
this process writes one chat-style rating every 50 ms, and reports the longest write.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from storage.importers import import_catalog, import_ratings, parse_catalog
from storage.repository import Store


def one_run(data_dir: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "bench.db"
        with Store(db_path) as store:
            t0 = time.perf_counter()
            catalog = import_catalog(store, data_dir / "anime" / "catalog.csv")
            t1 = time.perf_counter()
            ratings = import_ratings(store, data_dir / "anime" / "animelist.csv")
            t2 = time.perf_counter()
            again = import_ratings(store, data_dir / "anime" / "animelist.csv")
            t3 = time.perf_counter()
            store.db.checkpoint()
        size = sum(p.stat().st_size for p in Path(tmp).glob("bench.db*"))
    return {
        "catalog_rows": catalog.rows,
        "catalog_s": t1 - t0,
        "rating_rows": ratings.rows,
        "ratings_s": t2 - t1,
        "reimport_s": t3 - t2,
        "reimport_written": again.written,
        "total_s": t2 - t0,
        "db_mb": size / 2**20,
    }


def write_synthetic(path: Path, megabytes: float, anime_ids: list[int]) -> int:
    """A ``user_id,anime_id,score`` file of about ``megabytes`` MB; returns its row count."""
    rows, user = 0, 0
    with path.open("w") as handle:
        handle.write("user_id,anime_id,score\n")
        while handle.tell() < megabytes * 1e6:
            user += 1
            start = (user * 37) % len(anime_ids)
            picks = anime_ids[start : start + 200] or anime_ids[:200]
            handle.write("".join(f"{user},{a},{(user + a) % 11}\n" for a in picks))
            rows += len(picks)
    return rows


def child_import(db: Path, catalog: Path, ratings: Path) -> None:
    """Runs in a fresh process: import, then print the peak resident memory as JSON."""
    with Store(db) as store:
        import_catalog(store, catalog)
        t0 = time.perf_counter()
        report = import_ratings(store, ratings)
        seconds = time.perf_counter() - t0
    print(
        json.dumps({"rows": report.rows, "seconds": seconds, "peak_rss_mb": peak_rss_kb() / 1024})
    )


def peak_rss_kb() -> int:
    """This process's own peak resident set: VmHWM where Linux has it (``ru_maxrss`` also
    counts the parent's memory at fork), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _child(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child", *args]


def synthetic_memory(data_dir: Path, sizes: list[float]) -> list[dict[str, float]]:
    catalog = data_dir / "anime" / "catalog.csv"
    anime_ids = [a.anime_id for a in parse_catalog(catalog)]
    results = []
    for megabytes in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            ratings = Path(tmp) / "ratings.csv"
            write_synthetic(ratings, megabytes, anime_ids)
            done = subprocess.run(
                _child(str(Path(tmp) / "m.db"), str(catalog), str(ratings)),
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(done.stdout)
            result["file_mb"] = ratings.stat().st_size / 1e6
            results.append(result)
    return results


def busy_wait(data_dir: Path, ratings: Path | None = None) -> dict[str, float]:
    """Longest chat-style rating write while a subprocess imports ``ratings`` (default: the
    shared ratings)."""
    ratings = ratings or data_dir / "anime" / "animelist.csv"
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "busy.db"
        with Store(db) as store:
            import_catalog(store, data_dir / "anime" / "catalog.csv")
            user = store.users.ensure("telegram", "1")
            env = {**os.environ, "ANIREC_DATABASE": str(db)}
            importer = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "import", "ratings", str(ratings)],
                env=env,
                stdout=subprocess.DEVNULL,
            )
            waits, t_start = [], time.perf_counter()
            while importer.poll() is None:
                t0 = time.perf_counter()
                store.ratings.upsert(user.id, 1, 1 + len(waits) % 10)
                waits.append(time.perf_counter() - t0)
                time.sleep(0.05)
            total = time.perf_counter() - t_start
            if importer.returncode != 0:
                raise SystemExit(f"import failed with exit code {importer.returncode}")
    return {
        "file": str(ratings),
        "writes": len(waits),
        "import_s": total,
        "longest_write_s": max(waits),
    }


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child_import(*map(Path, sys.argv[2:]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/import.json"))
    parser.add_argument("--synthetic-mb", default="", help="e.g. 50,150: peak memory per size")
    parser.add_argument("--busy", action="store_true", help="longest rating write during import")
    parser.add_argument("--busy-ratings", type=Path, help="the file --busy imports")
    args = parser.parse_args()
    extra = {}
    if args.synthetic_mb:
        sizes = [float(x) for x in args.synthetic_mb.split(",")]
        extra["synthetic"] = synthetic_memory(args.data_dir, sizes)
        for r in extra["synthetic"]:
            Console().print(
                f"{r['file_mb']:.0f} MB, {r['rows']:,} rows: {r['seconds']:.1f} s, "
                f"peak RSS {r['peak_rss_mb']:.0f} MB"
            )
    if args.busy:
        extra["busy"] = busy_wait(args.data_dir, args.busy_ratings)
        Console().print(f"busy: {extra['busy']}")
    runs = [one_run(args.data_dir) for _ in range(args.repeat)]
    median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    result = {
        "machine": f"{platform.node()} {platform.machine()} ({platform.processor() or 'cpu'})",
        "runs": runs,
        "median": median,
        "ratings_rows_per_s": median["rating_rows"] / median["ratings_s"],
        "total_rows_per_s": (median["rating_rows"] + median["catalog_rows"]) / median["total_s"],
        **extra,
    }
    table = Table(title=f"Import of the shared data (median of {args.repeat} runs)")
    for column in ("step", "rows", "seconds", "rows/s"):
        table.add_column(column, justify="right")
    table.add_row(
        "catalog",
        f"{median['catalog_rows']:,.0f}",
        f"{median['catalog_s']:.2f}",
        f"{median['catalog_rows'] / median['catalog_s']:,.0f}",
    )
    table.add_row(
        "ratings",
        f"{median['rating_rows']:,.0f}",
        f"{median['ratings_s']:.2f}",
        f"{result['ratings_rows_per_s']:,.0f}",
    )
    table.add_row(
        "re-import (no change)",
        f"{median['rating_rows']:,.0f}",
        f"{median['reimport_s']:.2f}",
        f"{median['rating_rows'] / median['reimport_s']:,.0f}",
    )
    table.add_row("total", "", f"{median['total_s']:.2f}", f"{result['total_rows_per_s']:,.0f}")
    Console().print(table)
    Console().print(f"database size: {median['db_mb']:.1f} MB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
