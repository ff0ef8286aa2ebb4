"""Accuracy benchmark: the project's model(s) beside classic baselines, on the same splits.

    python benchmarks/accuracy.py [--data-dir DIR] [--datasets anime,movielens] [--quick]
        [--protocols known,unseen,origin] [--models seed,default | --no-model]
        [--out benchmarks/out/accuracy.json]     (also writes accuracy.md and accuracy.png)

Protocols (every method sees exactly the same rows):
- known: users >= 40 rows and items >= 10 rows, each user's rows split 80/20 (seeded). RMSE /
  MAE / R2 on held-out scored rows; NDCG@10 / Recall@10 / coverage@10 with relevant = held-out
  rows scored >= like (8 on 1-10, 4.0 on MovieLens) and candidates = every known item the user
  has no training row for.
- unseen: 10% of those users held out whole; train on the rest; 10 scored rows revealed per
  held-out user (users with >= 20 scored rows), folded in; the rest predicted and ranked
  (candidates = every known item except the revealed ones).
- origin (anime only): the origin notebook's protocol on the known split, 0 = unscored rows kept
  as targets of value 0, RMSE / MAE / R2 on 0-10.
The model rows appear when ``training.train.fit`` imports. Threads are capped at 2.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import argparse
import json
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.baselines import (
    EASE,
    Baseline,
    BiasOnly,
    GlobalMean,
    ImplicitALS,
    MostPopular,
    Revealed,
    Scorer,
    SurpriseKNNBaseline,
    SurpriseSVD,
    TrainSet,
)
from training.metrics import RankingAccumulator, regression_metrics, top_k_rows
from training.splits import (
    filter_min_counts,
    holdout_users,
    load_ratings_csv,
    reveal_split,
    split_by_user,
)

K = 10
REVEAL = 10
HOLDOUT_FRAC = 0.1
MODEL_CONFIGS = ("seed", "default")


# -- data sets --------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataSet:
    name: str
    ratings: pd.DataFrame
    item_genres: dict[int, tuple[str, ...]]
    score_range: tuple[float, float]
    like_min: float
    origin_protocol: bool  # has 0 = unscored rows to keep as targets


def load_dataset(name: str, data_dir: Path) -> DataSet:
    if name == "anime":
        ratings = load_ratings_csv(data_dir / "anime" / "animelist.csv")
        cat = pd.read_csv(data_dir / "anime" / "catalog.csv", usecols=["anime_id", "genre"])
        genres = {
            int(a): tuple(g.strip() for g in str(gs).split(",") if g.strip())
            for a, gs in zip(cat.anime_id, cat.genre.fillna(""), strict=True)
        }
        return DataSet(name, ratings, genres, (1.0, 10.0), 8.0, True)
    if name == "movielens":
        base = data_dir / "movielens" / "ml-latest-small"
        ratings = load_ratings_csv(base / "ratings.csv")
        mov = pd.read_csv(base / "movies.csv", usecols=["movieId", "genres"])
        genres = {
            int(m): tuple(g for g in str(gs).split("|") if g and g != "(no genres listed)")
            for m, gs in zip(mov.movieId, mov.genres, strict=True)
        }
        return DataSet(name, ratings, genres, (0.5, 5.0), 4.0, False)
    raise SystemExit(f"error: unknown data set {name!r} (choose anime, movielens)")


def _subsample_users(df: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    users = np.sort(df["user"].unique())
    if users.size <= n:
        return df
    keep = np.random.default_rng(seed).choice(users, n, replace=False)
    return df[df["user"].isin(keep)].reset_index(drop=True)


# -- evaluation -------------------------------------------------------------------------------
@dataclass
class Task:
    """What to score: rows of ``scorer`` (users or fold-in positions) and their targets."""

    row_ids: np.ndarray  # the id each evaluated row has in the scorer's index space
    pair_rows: np.ndarray  # regression pairs: row position, item index, true score
    pair_items: np.ndarray
    pair_true: np.ndarray
    exclude: sp.csr_matrix  # [rows, items] True = not a candidate
    relevant: list[np.ndarray]
    n_items: int
    dropped_rows: int  # target rows for items the training rows do not know


def _item_index(train: TrainSet, ids: np.ndarray) -> np.ndarray:
    pos = np.minimum(np.searchsorted(train.item_ids, ids), train.n_items - 1)
    return np.where(train.item_ids[pos] == ids, pos, -1)


def make_task(
    train: TrainSet,
    row_users: np.ndarray,
    row_ids: np.ndarray,
    targets: pd.DataFrame,
    exclude_frame: pd.DataFrame,
    zero_is_score: bool = False,
) -> Task:
    """Rows = ``row_users`` (raw ids); targets and excluded items come from the two frames."""
    row_of = {int(u): r for r, u in enumerate(row_users)}
    t_items = _item_index(train, targets["anime_id"].to_numpy())
    t_rows = np.array([row_of.get(int(u), -1) for u in targets["user"].to_numpy()])
    ok = (t_items >= 0) & (t_rows >= 0)
    t_score = targets["score"].to_numpy(dtype=np.float64)
    reg = ok & ((t_score > 0) | zero_is_score)
    rel_mask = ok & (t_score >= train.like_min)
    relevant = [np.empty(0, np.int64) for _ in row_users]
    if rel_mask.any():
        rr, ri = t_rows[rel_mask], t_items[rel_mask]
        order = np.argsort(rr, kind="stable")
        rr, ri = rr[order], ri[order]
        bounds = np.searchsorted(rr, np.arange(len(row_users) + 1))
        relevant = [ri[bounds[r] : bounds[r + 1]] for r in range(len(row_users))]
    e_items = _item_index(train, exclude_frame["anime_id"].to_numpy())
    e_rows = np.array([row_of.get(int(u), -1) for u in exclude_frame["user"].to_numpy()])
    eok = (e_items >= 0) & (e_rows >= 0)
    exclude = sp.csr_matrix(
        (np.ones(int(eok.sum()), dtype=bool), (e_rows[eok], e_items[eok])),
        shape=(len(row_users), train.n_items),
    )
    return Task(
        row_ids,
        t_rows[reg],
        t_items[reg],
        t_score[reg],
        exclude,
        relevant,
        train.n_items,
        int((~ok).sum()),
    )


def evaluate(scorer: Scorer, task: Task, batch: int = 256) -> dict[str, float | None]:
    out: dict[str, float | None] = {
        "rmse": None,
        "mae": None,
        "r2": None,
        f"ndcg_at_{K}": None,
        f"recall_at_{K}": None,
        f"coverage_at_{K}": None,
    }
    if scorer.predicts and task.pair_true.size:
        pred = scorer.predict(task.row_ids[task.pair_rows], task.pair_items)
        out.update(regression_metrics(task.pair_true, pred))
    if scorer.ranks:
        acc = RankingAccumulator(K)
        n = task.row_ids.size
        for start in range(0, n, batch):
            rows = np.arange(start, min(start + batch, n))
            scores = np.asarray(scorer.rank_scores(task.row_ids[rows]), dtype=np.float32)
            top = top_k_rows(scores, task.exclude[rows].toarray(), K)
            for r, items in zip(rows, top, strict=True):
                acc.add(items, task.relevant[r])
        res = acc.result(task.n_items)
        out.update(
            {key: res[key] for key in (f"ndcg_at_{K}", f"recall_at_{K}", f"coverage_at_{K}")}
        )
        out["rank_users"] = res["users"]
    return out


# -- the project's model, when it exists --------------------------------------------------------
def _model_fit() -> Callable | None:
    try:
        from training.train import fit
    except ImportError as exc:
        print(f"[model] training.train.fit not available yet ({exc}); baselines only")
        return None
    return fit


class ModelScorer(Scorer):
    """Adapts a ServingModel (+ per-user states) to the Scorer interface in TrainSet indices."""

    predicts = ranks = True

    def __init__(self, serving, states: Callable[[int], object], train: TrainSet) -> None:
        self.serving, self.states, self.train = serving, states, train
        self.map = np.array([serving.index_of.get(int(a), -1) for a in train.item_ids])
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _both(self, row_id: int) -> tuple[np.ndarray, np.ndarray]:
        got = self._cache.get(row_id)
        if got is None:
            state = self.states(row_id)
            known = self.map >= 0
            pred = np.full(self.map.size, np.nan, dtype=np.float32)
            rank = np.full(self.map.size, -np.inf, dtype=np.float32)
            pred[known] = np.asarray(self.serving.predict(state))[self.map[known]]
            rank[known] = np.asarray(self.serving.rank(state))[self.map[known]]
            got = (pred, rank)
            if len(self._cache) < 4096:
                self._cache[row_id] = got
        return got

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        out = np.empty(len(items), dtype=np.float64)
        for u in np.unique(users):
            m = users == u
            out[m] = self._both(int(u))[0][items[m]]
        fallback = float(np.nanmean(out)) if np.isfinite(out).any() else 0.0
        return np.where(np.isnan(out), fallback, out)

    def rank_scores(self, users: np.ndarray) -> np.ndarray:
        return np.stack([self._both(int(u))[1] for u in users])


class _Shifted(Scorer):
    """Predictions of another scorer plus a constant (regression only)."""

    predicts = True

    def __init__(self, inner: Scorer, shift: float) -> None:
        self.inner, self.shift = inner, shift

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.inner.predict(users, items) + self.shift


def fit_model(
    fit: Callable,
    config: str,
    train_df: pd.DataFrame,
    ds: DataSet,
    seed: int,
    quick: bool,
    score_range: tuple[float, float],
):
    """Train one config (2 threads), then leave torch on 1 thread for per-user serving calls:
    tiny ops on 2 threads of a loaded 2-core machine ran 10x slower (thread oversubscription)."""
    import torch

    kwargs = {"config": config, "seed": seed, "device": "cpu", "score_range": score_range}
    if quick:
        kwargs["epochs"] = 1
    torch.set_num_threads(2)
    try:
        return fit(train_df, ds.item_genres, **kwargs)
    finally:
        torch.set_num_threads(1)


# -- protocols --------------------------------------------------------------------------------
def _timed(fn: Callable[[], object]) -> tuple[object, float]:
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def _baselines(seed: int) -> list[Baseline]:
    return [
        GlobalMean(),
        MostPopular(),
        BiasOnly(),
        SurpriseSVD(seed=seed),
        SurpriseKNNBaseline(),
        ImplicitALS(seed=seed),
        EASE(),
    ]


def _record(results: dict, name: str, metrics: dict, seconds: float, log: Callable) -> None:
    metrics = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()}
    metrics["train_s"] = round(seconds, 2)
    results[name] = metrics
    shown = " ".join(f"{k}={v}" for k, v in metrics.items() if v is not None)
    log(f"  {name:<24} {shown}")


def run_known(
    ds: DataSet,
    df: pd.DataFrame,
    seed: int,
    quick: bool,
    fit: Callable | None,
    configs: tuple[str, ...],
    log: Callable,
) -> dict:
    train_df, test_df = split_by_user(df, 0.2, seed)
    train = TrainSet.from_frame(train_df, ds.score_range, ds.like_min)
    task = make_task(train, train.user_ids, np.arange(train.n_users), test_df, train_df)
    results: dict = {}
    for b in _baselines(seed):
        try:
            _, secs = _timed(lambda b=b: b.fit(train))
            _record(results, b.name, evaluate(b, task), secs, log)
        except Exception as exc:
            log(f"  {b.name}: failed: {exc}")
            traceback.print_exc()
    for config in configs if fit else ():
        try:
            res, secs = _timed(
                lambda c=config: fit_model(fit, c, train_df, ds, seed, quick, ds.score_range)
            )
            scorer = ModelScorer(
                res.serving, lambda r, res=res: res.state_for(train.user_ids[r]), train
            )
            _record(results, f"model:{config}", evaluate(scorer, task), secs, log)
        except Exception as exc:
            log(f"  model:{config}: failed: {exc}")
            traceback.print_exc()
    info = {
        "users": train.n_users,
        "items": train.n_items,
        "train_rows": len(train_df),
        "test_rows": len(test_df),
        "test_scored": int((test_df.score > 0).sum()),
        "test_rows_unknown_item": task.dropped_rows,
    }
    return {"info": info, "methods": results}


def run_unseen(
    ds: DataSet,
    df: pd.DataFrame,
    seed: int,
    quick: bool,
    fit: Callable | None,
    configs: tuple[str, ...],
    log: Callable,
) -> dict:
    train_df, held = holdout_users(df, frac=HOLDOUT_FRAC, seed=seed)
    revealed_df, hidden_df = reveal_split(held, REVEAL, seed)
    train = TrainSet.from_frame(train_df, ds.score_range, ds.like_min)
    revealed, dropped = Revealed.from_frame(revealed_df, train)
    users = np.sort(revealed_df["user"].unique())
    # rows = positions in `revealed` (users with every revealed item unknown would be missing)
    users = users[np.isin(users, revealed.user_ids)]
    task = make_task(train, users, np.arange(users.size), hidden_df, revealed_df)
    results: dict = {}
    for b in _baselines(seed):
        try:
            _, secs = _timed(lambda b=b: b.fit(train))
            folded, fsecs = _timed(lambda b=b: b.fold_in(revealed))
            m = evaluate(folded, task)
            m["fold_in_ms_per_user"] = round(1000 * fsecs / max(users.size, 1), 3)
            _record(results, b.name, m, secs, log)
        except Exception as exc:
            log(f"  {b.name}: failed: {exc}")
            traceback.print_exc()
    for config in configs if fit else ():
        try:
            res, secs = _timed(
                lambda c=config: fit_model(fit, c, train_df, ds, seed, quick, ds.score_range)
            )
            serving = res.serving
            states = {}
            t0 = time.perf_counter()
            for p in range(revealed.n_users):
                items, scores = revealed.rows(p)
                states[p] = serving.fold_in(
                    [int(a) for a in train.item_ids[items]],
                    [None if s <= 0 else (float(s) if s != int(s) else int(s)) for s in scores],
                )
            fsecs = time.perf_counter() - t0
            scorer = ModelScorer(serving, states.__getitem__, train)
            m = evaluate(scorer, task)
            m["fold_in_ms_per_user"] = round(1000 * fsecs / max(users.size, 1), 3)
            _record(results, f"model:{config}", m, secs, log)
        except Exception as exc:
            log(f"  model:{config}: failed: {exc}")
            traceback.print_exc()
    info = {
        "train_users": train.n_users,
        "heldout_users": int(held.user.nunique()),
        "evaluated_users": int(users.size),
        "items": train.n_items,
        "revealed_rows": len(revealed_df),
        "revealed_rows_unknown_item": dropped,
        "hidden_rows": len(hidden_df),
        "hidden_rows_unknown_item": task.dropped_rows,
    }
    return {"info": info, "methods": results}


def run_origin(
    ds: DataSet,
    df: pd.DataFrame,
    seed: int,
    quick: bool,
    fit: Callable | None,
    configs: tuple[str, ...],
    log: Callable,
) -> dict:
    """0 rows kept as targets: every method sees scores 0-10 (0 = a real value here)."""
    train_df, test_df = split_by_user(df, 0.2, seed)
    train = TrainSet.from_frame(train_df, (0.0, ds.score_range[1]), ds.like_min)
    train = replace(train, zero_is_score=True)
    task = make_task(
        train, train.user_ids, np.arange(train.n_users), test_df, train_df, zero_is_score=True
    )
    results: dict = {}
    for b in (GlobalMean(), BiasOnly(), SurpriseSVD(seed=seed)):
        try:
            _, secs = _timed(lambda b=b: b.fit(train))
            b.ranks = False  # the origin protocol reports regression only
            _record(results, b.name, evaluate(b, task), secs, log)
        except Exception as exc:
            log(f"  {b.name}: failed: {exc}")
            traceback.print_exc()
    # The model treats 0 as "unscored", so it trains on score + 1 (every row scored, 1-11)
    # and its predictions are shifted back to 0-10.
    shifted = train_df.assign(score=train_df["score"] + 1.0)
    for config in configs if fit else ():
        try:
            res, secs = _timed(
                lambda c=config: fit_model(
                    fit, c, shifted, ds, seed, quick, (1.0, ds.score_range[1] + 1.0)
                )
            )
            scorer = _Shifted(
                ModelScorer(
                    res.serving, lambda r, res=res: res.state_for(train.user_ids[r]), train
                ),
                -1.0,
            )
            _record(results, f"model:{config}", evaluate(scorer, task), secs, log)
        except Exception as exc:
            log(f"  model:{config}: failed: {exc}")
            traceback.print_exc()
    info = {
        "users": train.n_users,
        "items": train.n_items,
        "test_rows": len(test_df),
        "origin_reported": {"rmse": 2.79, "mae": 2.02, "r2": 0.49},
    }
    return {"info": info, "methods": results}


# -- output -----------------------------------------------------------------------------------
COLUMNS = (
    ("rmse", "RMSE"),
    ("mae", "MAE"),
    ("r2", "R2"),
    (f"ndcg_at_{K}", f"NDCG@{K}"),
    (f"recall_at_{K}", f"Recall@{K}"),
    (f"coverage_at_{K}", f"Cov@{K}"),
    ("train_s", "train s"),
    ("fold_in_ms_per_user", "fold-in ms/user"),
)


def print_tables(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=170)
    for ds_name, protos in report["datasets"].items():
        for proto, body in protos.items():
            methods = body["methods"]
            cols = [(k, t) for k, t in COLUMNS if any(k in m for m in methods.values())]
            table = Table(
                title=f"{ds_name} / {proto}  ({json.dumps(body['info'])})", title_justify="left"
            )
            table.add_column("method")
            for _, title in cols:
                table.add_column(title, justify="right")
            for name, m in methods.items():
                cells = []
                for key, _ in cols:
                    v = m.get(key)
                    cells.append(
                        "None" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))
                    )
                table.add_row(name, *cells)
            console.print(table)


def markdown_tables(report: dict) -> str:
    lines = []
    for ds_name, protos in report["datasets"].items():
        for proto, body in protos.items():
            methods = body["methods"]
            cols = [(k, t) for k, t in COLUMNS if any(k in m for m in methods.values())]
            lines.append(f"\n**{ds_name} / {proto}** — {json.dumps(body['info'])}\n")
            lines.append("| method | " + " | ".join(t for _, t in cols) + " |")
            lines.append("|---" * (len(cols) + 1) + "|")
            for name, m in methods.items():
                cells = []
                for key, _ in cols:
                    v = m.get(key)
                    cells.append(
                        "None" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))
                    )
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        (ds, proto, key)
        for ds, protos in report["datasets"].items()
        for proto in protos
        for key in ("rmse", f"ndcg_at_{K}")
        if proto != "origin" or key == "rmse"
    ]
    if not panels:
        return
    cols = 2
    rows = (len(panels) + 1) // 2
    fig, axes = plt.subplots(rows, cols, figsize=(12, 3.2 * rows), squeeze=False)
    for ax, (ds, proto, key) in zip(axes.ravel(), panels, strict=False):
        methods = report["datasets"][ds][proto]["methods"]
        names = [n for n, m in methods.items() if m.get(key) is not None]
        vals = [methods[n][key] for n in names]
        colors = ["tab:red" if n.startswith("model:") else "tab:blue" for n in names]
        ax.barh(names, vals, color=colors)
        ax.set_title(f"{ds} / {proto}: {key}")
        ax.invert_yaxis()
        for y, v in enumerate(vals):
            ax.text(v, y, f" {v:.3f}", va="center", fontsize=8)
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("ANIREC_DATA_DIR", ROOT.parent / "shared" / "data")),
    )
    ap.add_argument("--datasets", default="anime,movielens")
    ap.add_argument("--protocols", default="known,unseen,origin")
    ap.add_argument("--quick", action="store_true", help="a small subset, for smoke checks")
    ap.add_argument("--no-model", action="store_true", help="baselines only")
    ap.add_argument(
        "--models",
        default=",".join(MODEL_CONFIGS),
        help="model configs to train beside the baselines (comma-separated)",
    )
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "accuracy.json")
    args = ap.parse_args(argv)

    try:
        import torch

        torch.set_num_threads(2)
    except ImportError:
        pass
    if not (args.data_dir / "anime").is_dir() and not (args.data_dir / "movielens").is_dir():
        print(f"error: no data in {args.data_dir} (set --data-dir or ANIREC_DATA_DIR)")
        return 2
    configs = tuple(m.strip() for m in args.models.split(",") if m.strip())
    fit = None if args.no_model or not configs else _model_fit()
    report: dict = {
        "command": " ".join(["python", "benchmarks/accuracy.py", *sys.argv[1:]]),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
        "seed": args.seed,
        "quick": args.quick,
        "datasets": {},
    }
    runners = {"known": run_known, "unseen": run_unseen, "origin": run_origin}
    t_all = time.perf_counter()
    for name in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        ds = load_dataset(name, args.data_dir)
        df = filter_min_counts(ds.ratings, 40, 10)
        if args.quick:
            df = filter_min_counts(_subsample_users(df, 200, args.seed), 1, 5)
        report["datasets"][name] = {}
        for proto in [p.strip() for p in args.protocols.split(",") if p.strip()]:
            if proto == "origin" and not ds.origin_protocol:
                continue
            if proto not in runners:
                print(f"error: unknown protocol {proto!r}")
                return 2
            print(f"[{name} / {proto}]", flush=True)
            report["datasets"][name][proto] = runners[proto](
                ds, df, args.seed, args.quick, fit, configs, lambda s: print(s, flush=True)
            )
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=1))  # partial results survive a kill
    report["total_s"] = round(time.perf_counter() - t_all, 1)
    print_tables(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    args.out.with_suffix(".md").write_text(markdown_tables(report))
    plot(report, args.out.with_suffix(".png"))
    print(
        f"wrote {args.out}, {args.out.with_suffix('.md')} and {args.out.with_suffix('.png')}"
        f" in {report['total_s']} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
