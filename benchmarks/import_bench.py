"""How fast the shared data set imports into a fresh SQLite file, and how big the file gets.

    python benchmarks/import_bench.py [--data-dir ../shared/data] [--repeat 3] [--out FILE]

Prints a table and writes JSON (default benchmarks/out/import.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from storage.importers import import_catalog, import_ratings
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/import.json"))
    args = parser.parse_args()
    runs = [one_run(args.data_dir) for _ in range(args.repeat)]
    median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    result = {
        "machine": f"{platform.node()} {platform.machine()} ({platform.processor() or 'cpu'})",
        "runs": runs,
        "median": median,
        "ratings_rows_per_s": median["rating_rows"] / median["ratings_s"],
        "total_rows_per_s": (median["rating_rows"] + median["catalog_rows"]) / median["total_s"],
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
