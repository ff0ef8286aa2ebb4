"""Item-to-item solves at catalog scale: time and peak memory against the number of anime.

    python benchmarks/item_item_scale.py [--sizes 5000,10000,20000] [--users 50000]
        [--methods exact,local,knn] [--before-max 10000] [--data-dir DIR] [--seed 7]
        [--out benchmarks/out/item_item_scale.json]      (also writes item_item_scale.md)
    python benchmarks/item_item_scale.py --shared [--seed 42] [--out ...]

``--shared``: on the shared data (each person's rows split 80/20, seeded), the exact solve and
the local regressions (256 and 512 candidates): CPU time, NDCG@10 of ranking by the item-to-item
part alone, and the share of each exact row's kept magnitude the local rows keep.

Synthetic data, seeded: ``--users`` people whose list lengths are resampled from the shared
data's real lists (avg ~100 rows), each list drawn from ``n`` anime with the shared data's
rank-popularity curve stretched to ``n`` ranks (log-count interpolated: the same head and tail
shape, so the Gram matrix has the real data's density profile), scores resampled from the real
scores (0 = unscored kept); anime left with fewer than five rows get rows from random people,
so every one of the ``n`` takes part in the solve. 50k people ~ the 10x expansion of issue 14
(44.7k people, 4M rows).

Each (size, method) runs in its own child process: the data is built, the peak-RSS mark is reset
(``/proc/self/clear_refs`` 5), then the solve runs; reported are wall and CPU seconds (user +
system, ``resource.getrusage``: the machine is shared, wall times are inflated by other work),
the RSS before the solve and the peak during it. Methods: ``exact`` (the in-place dense solve),
``local`` (``candidates`` local regressions), ``knn`` (blockwise pearson similarities),
``before`` (the dense solve as it was before: five n x n copies and a dense users x anime copy;
only up to ``--before-max`` anime).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from training import data as tdata
from training import item_item_blocks as blk
from training.item_item import solve_ease, solve_knn
from training.splits import load_ratings_csv

LAMBDA, DROPOUT, MIN_COUNT, TOPK, LIKE = 200.0, 0.33, 5, 256, 8.0  # ModelConfig defaults


def synthetic(n_anime: int, n_users: int, seed: int, data_dir: Path) -> tdata.TrainingData:
    """The seeded synthetic data set described in the module docstring."""
    real = load_ratings_csv(data_dir / "anime" / "animelist.csv")
    lengths = real.groupby("user").size().to_numpy()
    counts = np.sort(real.groupby("anime_id").size().to_numpy())[::-1].astype(np.float64)
    rng = np.random.default_rng(seed)
    ranks = np.linspace(0.0, 1.0, n_anime)
    pop = np.exp(np.interp(ranks, np.linspace(0.0, 1.0, counts.size), np.log(counts)))
    pop /= pop.sum()
    want = np.minimum(rng.choice(lengths, n_users), n_anime)
    draws = np.ceil(want * 1.1).astype(np.int64)  # a few extra: repeats are dropped
    users = np.repeat(np.arange(n_users), draws)
    items = rng.choice(n_anime, size=users.size, p=pop)
    short = np.flatnonzero(np.bincount(items, minlength=n_anime) < MIN_COUNT)
    users = np.concatenate([users, rng.integers(0, n_users, short.size * 2 * MIN_COUNT)])
    items = np.concatenate([items, np.repeat(short, 2 * MIN_COUNT)])
    scores = rng.choice(real["score"].to_numpy(np.float32), users.size)
    return tdata.from_arrays(users, items, scores, {}, (1.0, 10.0))


def _before(d: tdata.TrainingData, users: np.ndarray) -> None:
    """The dense solve this module replaced (for the before/after rows)."""
    sel = np.isin(d.users, users)
    act = np.flatnonzero(np.bincount(d.items[sel], minlength=d.n_items) >= MIN_COUNT)
    col = np.full(d.n_items, -1)
    col[act] = np.arange(act.size)
    keep = col[d.items[sel]] >= 0
    u, c = d.users[sel][keep], col[d.items[sel][keep]]
    w = torch.from_numpy(np.where(d.scores[sel][keep] >= LIKE, 2.0, 1.0).astype(np.float32))
    x = torch.sparse_coo_tensor(torch.from_numpy(np.stack([c, u])), w, (act.size, users.size))
    dense = torch.zeros(users.size, act.size)
    dense[torch.from_numpy(u), torch.from_numpy(c)] = w
    gram = torch.sparse.mm(x.coalesce(), dense)
    gram.diagonal().mul_(1.0 + DROPOUT / (1.0 - DROPOUT)).add_(LAMBDA)
    p = torch.cholesky_inverse(torch.linalg.cholesky(gram))
    b = -p / p.diagonal()[None, :]
    b.diagonal().zero_()
    torch.topk(b.abs(), TOPK, dim=1)


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def child(spec: dict) -> dict:
    """One measurement (runs in its own process)."""
    d = synthetic(spec["size"], spec["users"], spec["seed"], Path(spec["data_dir"]))
    users = np.arange(d.n_users)
    rss_before = _status_mb("VmRSS")
    reset = _reset_peak()
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    method = spec["method"]
    if method == "before":
        _before(d, users)
    elif method == "knn":
        bias = np.random.default_rng(0).normal(0.0, 0.3, d.n_items)
        solve_knn(d, users, 7.5, bias, 3.0, 100.0, MIN_COUNT, 128)
    else:
        limit = 0 if method == "local" else None
        solve_ease(
            d, users, LAMBDA, MIN_COUNT, TOPK, LIKE, None, DROPOUT,
            exact_max=limit, candidates=spec["candidates"],
        )  # fmt: skip
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    peak = _status_mb("VmHWM") if reset else r1.ru_maxrss / 1024.0
    return {
        **spec,
        "rows": int(d.n_rows),
        "wall_s": round(wall, 1),
        "cpu_s": round(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime, 1),
        "rss_before_mb": round(rss_before),
        "peak_mb": round(peak),
        "peak_is_solve_only": reset,
    }


def _split(d: tdata.TrainingData, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Each person's rows split 80/20 (seeded): a mask of the training rows and the users."""
    rng = np.random.default_rng(seed)
    return rng.random(d.n_rows) >= 0.2, np.arange(d.n_users)


def _ndcg_at_10(d: tdata.TrainingData, train: np.ndarray, table: tuple) -> float:
    """NDCG@10 of ranking by the item-to-item part alone: held-out rows scored >= 8 relevant,
    candidates = every anime without a training row for the person."""
    n = d.n_items
    index, value = table
    b = sp.csr_matrix((value.ravel(), (np.repeat(np.arange(n), index.shape[1]), index.ravel())),
                      shape=(n, n))  # fmt: skip
    w = np.where(d.scores[train] >= LIKE, 2.0, 1.0)
    x = sp.csr_matrix((w, (d.users[train], d.items[train])), shape=(d.n_users, n))
    test = ~train & (d.scores >= LIKE)
    rel = sp.csr_matrix((np.ones(test.sum()), (d.users[test], d.items[test])), (d.n_users, n))
    disc = 1.0 / np.log2(np.arange(2, 12))
    total, count = 0.0, 0
    for start, stop in blk.blocks(d.n_users, 512):
        scores = np.asarray((x[start:stop] @ b).todense())
        scores[x[start:stop].toarray() > 0] = -np.inf
        top = np.argsort(-scores, axis=1)[:, :10]
        r = rel[start:stop].toarray()
        gain = (np.take_along_axis(r, top, 1) * disc).sum(1)
        n_rel = r.sum(1).astype(int)
        ideal = np.array([disc[: min(k, 10)].sum() for k in n_rel])
        has = n_rel > 0
        total += float((gain[has] / ideal[has]).sum())
        count += int(has.sum())
    return total / max(count, 1)


def shared_check(data_dir: Path, seed: int, candidates: list[int]) -> list[dict]:
    """The exact solve and the local regressions on the shared data: time and NDCG@10 of the
    item-to-item part alone, and how much of each exact row's kept magnitude the local one
    keeps."""
    real = load_ratings_csv(data_dir / "anime" / "animelist.csv")
    d = tdata.from_frame(real, {}, (1.0, 10.0))
    train, users = _split(d, seed)
    sub = tdata.from_arrays(
        d.user_ids[d.users[train]], d.anime_ids[d.items[train]], d.scores[train], {}, (1.0, 10.0)
    )
    out, exact = [], None
    for m in [0, *candidates]:
        t0, c0 = time.perf_counter(), time.process_time()
        kw = {"exact_max": 0, "candidates": m} if m else {}
        t = solve_ease(sub, users, LAMBDA, MIN_COUNT, TOPK, LIKE, None, DROPOUT, **kw)
        # sub's anime are the ones with training rows: map back to d's indices
        table = (np.zeros((d.n_items, TOPK), np.int32), np.zeros((d.n_items, TOPK), np.float32))
        pos = np.searchsorted(d.anime_ids, sub.anime_ids)
        table[0][pos] = pos[t[0]]
        table[1][pos] = t[1]
        row = {"method": "local" if m else "exact", "candidates": m or None,
               "wall_s": round(time.perf_counter() - t0, 1),
               "cpu_s": round(time.process_time() - c0, 1),
               "ndcg10_item_item_alone": round(_ndcg_at_10(d, train, table), 4)}  # fmt: skip
        if exact is None:
            exact = table
        else:
            row["kept_magnitude"] = round(_kept_magnitude(exact, table), 4)
        out.append(row)
        print(json.dumps(row), flush=True)
    return out


def _kept_magnitude(exact: tuple, approx: tuple) -> float:
    """Share of the exact rows' total |B| that sits on anime the approximate rows also keep."""
    kept = total = 0.0
    for i in range(exact[0].shape[0]):
        mag = np.abs(exact[1][i])
        total += float(mag.sum())
        kept += float(mag[np.isin(exact[0][i], approx[0][i][approx[1][i] != 0])].sum())
    return kept / max(total, 1e-12)


def run_child(spec: dict, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--child", json.dumps(spec)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"timed out after {timeout:.0f}s"}
    if done.returncode != 0:
        return {**spec, "error": done.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown(rows: list[dict]) -> str:
    head = "| anime | method | rows | wall s | CPU s | RSS before MB | peak MB |\n"
    head += "|---:|---|---:|---:|---:|---:|---:|\n"
    for r in rows:
        if "error" in r:
            head += f"| {r['size']} | {r['method']} | – | {r['error']} | | | |\n"
            continue
        name = r["method"] + (f" (m={r['candidates']})" if r["method"] == "local" else "")
        head += (
            f"| {r['size']} | {name} | {r['rows']:,} | {r['wall_s']} | {r['cpu_s']} | "
            f"{r['rss_before_mb']} | {r['peak_mb']} |\n"
        )
    return head


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--sizes", default="5000,10000,20000")
    ap.add_argument("--users", type=int, default=50_000)
    ap.add_argument("--methods", default="exact,local,knn")
    ap.add_argument("--candidates", type=int, default=512)
    ap.add_argument("--before-max", type=int, default=10_000)
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("ANIREC_DATA_DIR", "")))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--shared", action="store_true", help="exact vs local on the shared data")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "out" / "item_item_scale.json"
    )
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    if args.shared:
        found = shared_check(args.data_dir, args.seed, [256, 512])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"load_average": os.getloadavg(), "rows": found}, indent=1))
        return 0
    rows: list[dict] = []
    for size in (int(s) for s in args.sizes.split(",")):
        for method in args.methods.split(","):
            if method == "before" and size > args.before_max:
                continue
            spec = {"size": size, "users": args.users, "method": method, "seed": args.seed,
                    "candidates": args.candidates, "data_dir": str(args.data_dir)}  # fmt: skip
            rows.append(run_child(spec, args.timeout))
            print(json.dumps(rows[-1]), flush=True)
    report = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.platform()}",
        "load_average": os.getloadavg(),
        "torch_threads": torch.get_num_threads(),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    args.out.with_suffix(".md").write_text(markdown(rows))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
