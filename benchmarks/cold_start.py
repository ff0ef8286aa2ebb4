"""New titles: NDCG@10 on anime withheld from training, for users the model never saw.

    python benchmarks/cold_start.py [--data-dir DIR] [--n 300] [--choose newest|random]
        [--seed 0] [--epochs E] [--device cpu] [--quick] [--out benchmarks/out/cold_start.json]

The protocol is ``training.cold`` (the same as ``anirec evaluate --cold N``): the N newest anime
(largest MyAnimeList ids among those with >= 20 list rows; ``--choose random`` for a seeded random
N) lose every row from training; 10% of users are held out whole and reveal 10 ratings of
non-withheld titles; their liked (score >= 8) withheld titles are relevant. Rankers, on the same
users: random, the user's genre profile, LightFM (WARP, item features identity + genres + type +
length bucket) and the Anirec model (trained with the catalog's franchise relatives, as the
product trains). Prints a Markdown table and writes the JSON report.

LightFM is optional and NOT in any install extra: 1.17 does not build from PyPI on current
Python (its setup.py sets ``__builtins__.__LIGHTFM_SETUP__``, and ``__builtins__`` is a dict
when pip's build backend runs setup.py). To install it by hand (done this way on 2026-12-07,
into the dev ``.venv``, which already has numpy, scipy and setuptools)::

    curl -sLO "$(curl -s https://pypi.org/simple/lightfm/ \\
        | grep -o 'https://[^"#]*lightfm-1.17.tar.gz' | head -1)"
    tar xzf lightfm-1.17.tar.gz
    sed -i '11s/.*/import builtins; builtins.__LIGHTFM_SETUP__ = True/' lightfm-1.17/setup.py
    pip wheel --no-build-isolation --no-deps -w wheels/ ./lightfm-1.17
    pip install --no-deps wheels/lightfm-*.whl

(only ``lightfm.LightFM`` is used, so scikit-learn is not needed). Without it the LightFM row
is skipped with a message. ``--quick`` is a smoke run (60 titles, 150 users, 2 epochs each).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.report import save
from storage.importers.catalog import parse_catalog
from training.cold import ColdConfig, format_table
from training.cold_rankers import evaluate_cold
from training.splits import load_ratings_csv


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--n", type=int, default=300, help="titles to withhold")
    p.add_argument("--choose", choices=("newest", "random"), default="newest")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="model epochs (default: config's)")
    p.add_argument("--lightfm-epochs", type=int, default=20)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="smoke run: small N, few users/epochs")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "cold_start.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    anime = args.data_dir / "anime"
    if not (anime / "animelist.csv").is_file():
        print(f"error: no {anime / 'animelist.csv'} (give --data-dir)", file=sys.stderr)
        return 2
    ratings = load_ratings_csv(anime / "animelist.csv")
    catalog = parse_catalog(anime / "catalog.csv")
    cfg = ColdConfig(
        n=60 if args.quick else args.n,
        choose=args.choose,
        seed=args.seed,
        max_users=150 if args.quick else None,
    )
    epochs = 2 if args.quick else args.epochs
    load_start = os.getloadavg()
    started = time.perf_counter()
    report = evaluate_cold(
        ratings,
        catalog,
        cfg,
        epochs=epochs,
        device=args.device,
        lightfm_epochs=2 if args.quick else args.lightfm_epochs,
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    seconds = time.perf_counter() - started
    print(format_table(report))
    save(report.to_json(), args, load_start, seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
