"""How long a catalog refresh from a full-size anime-offline-database file takes, and its memory.

    python benchmarks/catalog_refresh.py [--data-dir ../shared/data] [--entries 38000]
        [--format jsonl|minified] [--out FILE]

The real database has about 38k entries; this writes a synthetic file of that size in the real
format (the published schema; tests/offline_db.py builds each entry): every title of the shared
catalog by its MyAnimeList id (so existing rows gain synonyms, tags, studios, seasons, pictures
and related-anime links), then new titles with MAL ids above the catalog's, and a share with no
MAL source at all (they get ids of their own). Sizes follow the real file's shape: ~5 synonyms,
~12 tags, 1-2 studios, ~3 related links per entry.

Each import runs the real CLI (`anirec import catalog FILE`) in a child process on a database
that already holds the shared catalog; wall time and the child's peak resident memory
(``VmHWM``) are reported for the first refresh (adds and updates) and a second, unchanged
one (idempotent: nothing written). Prints a table and writes JSON (default
benchmarks/out/catalog_refresh.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console
from rich.table import Table

from storage.importers import import_catalog
from storage.repository import Store
from tests.offline_db import entry, write_jsonl, write_minified

SEASONS = ("WINTER", "SPRING", "SUMMER", "FALL")
TYPES = ("TV", "MOVIE", "OVA", "ONA", "SPECIAL")
TAGS = [f"tag {i}" for i in range(400)]
STUDIOS = [f"studio {i}" for i in range(600)]


def synthetic_entries(catalog: list[tuple[int, str]], total: int, seed: int) -> list[dict]:
    """The shared catalog's titles first, then new ones (80% with a MAL id, 20% without)."""
    rng = random.Random(seed)
    known = [mal_id for mal_id, _ in catalog]
    next_id = max(known) + 1
    out: list[dict] = []
    titles = list(catalog)
    while len(titles) < total:
        if rng.random() < 0.8:
            titles.append((next_id, f"New Show {next_id}"))
            next_id += rng.randint(1, 3)
        else:
            titles.append((-1, f"Unlisted Show {len(titles)}"))
    for number, (mal_id, title) in enumerate(titles):
        related = rng.sample(known, k=rng.randint(0, 6))
        fields = {
            "type": rng.choice(TYPES),
            "episodes": rng.randint(1, 50),
            "status": rng.choice(("FINISHED", "FINISHED", "FINISHED", "ONGOING", "UPCOMING")),
            "animeSeason": {"season": rng.choice(SEASONS), "year": rng.randint(1970, 2026)},
            "synonyms": [f"{title} alt {k}" for k in range(rng.randint(0, 10))],
            "tags": rng.sample(TAGS, k=rng.randint(3, 20)),
            "studios": rng.sample(STUDIOS, k=rng.randint(1, 2)),
            "relatedAnime": [f"https://myanimelist.net/anime/{r}" for r in related],
        }
        other = (f"https://anilist.co/anime/{number + 1}",)
        out.append(entry(title, mal_id if mal_id > 0 else None, others=other, **fields))
    return out


# VmHWM (peak resident set of this process image) rather than ru_maxrss, which Linux carries
# over from the forking parent.
CHILD = """
import atexit, runpy, sys
def peak():
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
    print("MAXRSS_KB", kb, file=sys.stderr)
atexit.register(peak)
sys.argv = ["anirec", "import", "catalog", sys.argv[1]]
runpy.run_module("bot.cli", run_name="__main__")
"""


def run_cli(db: Path, path: Path) -> dict[str, float]:
    """One `anirec import catalog` in a child process: wall seconds and its own peak RSS (MB)."""
    env = {**os.environ, "ANIREC_DATABASE": str(db), "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"import failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    peak_kb = int(proc.stderr.rsplit("MAXRSS_KB", 1)[1].split()[0])
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(peak_kb / 1024, 1)}


def count_anime(db: Path) -> int:
    with Store(db) as store:
        return len(store.catalog.ids())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--entries", type=int, default=38_000)
    parser.add_argument("--format", choices=("jsonl", "minified"), default="jsonl")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/out/catalog_refresh.json")
    args = parser.parse_args(argv)
    csv = args.data_dir / "anime" / "catalog.csv"
    if not csv.exists():
        raise SystemExit(f"no catalog at {csv}: pass --data-dir")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        with Store(db) as store:
            import_catalog(store, csv)
            catalog = sorted((a.anime_id, a.title) for a in store.catalog.all())
        entries = synthetic_entries(catalog, args.entries, args.seed)
        suffix = ".jsonl" if args.format == "jsonl" else "-minified.json"
        path = Path(tmp) / f"anime-offline-database{suffix}"
        (write_jsonl if args.format == "jsonl" else write_minified)(path, entries)
        size_mb = path.stat().st_size / 2**20
        n_entries = len(entries)
        del entries, catalog
        before = count_anime(db)
        first = run_cli(db, path)
        after = count_anime(db)
        second = run_cli(db, path)
    report = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs",
        "load_average": round(os.getloadavg()[0], 2),
        "entries": n_entries,
        "format": args.format,
        "file_mb": round(size_mb, 1),
        "catalog_before": before,
        "catalog_after": after,
        "first_refresh": first,
        "unchanged_refresh": second,
    }
    table = Table(title=f"catalog refresh: {n_entries:,} entries ({args.format}, {size_mb:.0f} MB)")
    for col in ("run", "seconds", "peak RSS (MB)", "catalog titles"):
        table.add_column(col)
    table.add_row(
        "first (adds + updates)",
        str(first["seconds"]),
        str(first["peak_rss_mb"]),
        f"{before:,} -> {after:,}",
    )
    table.add_row(
        "again (unchanged)", str(second["seconds"]), str(second["peak_rss_mb"]), f"{after:,}"
    )
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
