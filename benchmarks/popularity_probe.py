"""How well does a title's content predict its popularity? A probe for issue 11's new titles.

    python benchmarks/popularity_probe.py [--data-dir DIR] [--seed 0]

Within the withheld titles of ``benchmarks/cold_start.py`` most of NDCG@10 is popularity (their
true list counts alone score about 0.41), and a brand-new title has no list count. So this asks
how well the content features the model's stand-in sees (``recommender.content``: genres, type,
length; here from ``catalog.csv``) and the mean log count of its earlier trained relatives
predict it: a linear model (what the stand-in's content bias is) and a small MLP, each fitted
to log(1 + list count) of the titles left in training, scored by the Spearman correlation of
its predictions with the withheld titles' true counts. Both splits of the cold benchmark
(newest, random) so that nothing is read off one split. Prints one table; no output file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recommender.content import content_inputs
from storage.importers.catalog import parse_catalog
from training.cold import choose_withheld
from training.cold_rankers import catalog_relatives

ROOT = Path(__file__).resolve().parents[1]
STEPS = 400  # full-batch Adam steps: the training loss has flattened by then


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(pd.Series(a).rank(), pd.Series(b).rank())[0, 1])


def fit_predict(x: torch.Tensor, y: torch.Tensor, fit: torch.Tensor, hidden: int) -> np.ndarray:
    """Fit ``y`` on the rows ``fit`` (MSE, Adam, light weight decay); predict every row."""
    net: torch.nn.Module = (
        torch.nn.Sequential(
            torch.nn.Linear(x.shape[1], hidden), torch.nn.GELU(), torch.nn.Linear(hidden, 1)
        )
        if hidden
        else torch.nn.Linear(x.shape[1], 1)
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(STEPS):
        opt.zero_grad()
        loss = ((net(x[fit]).squeeze(-1) - y[fit]) ** 2).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return np.asarray(net(x).squeeze(-1).numpy())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    catalog = parse_catalog(args.data_dir / "anime" / "catalog.csv")
    ratings = pd.read_csv(args.data_dir / "anime" / "animelist.csv")
    every_count = ratings["anime_id"].value_counts()
    ids = np.array([a.anime_id for a in catalog], np.int64)
    relatives = catalog_relatives(catalog)
    print("| split | inputs | linear | MLP (64 hidden) |")
    print("|---|---|---:|---:|")
    for choose in ("newest", "random"):
        withheld = choose_withheld(ratings, 300, 20, choose, args.seed)
        left = ratings[~ratings["anime_id"].isin(withheld)]["anime_id"].value_counts()
        count = np.array([left.get(i, 0) for i in ids], np.float64)
        trained = count > 0
        inputs = content_inputs(ids, catalog, trained, relatives)
        log_count = np.log1p(count)
        rel = inputs.relatives
        live = (rel >= 0) & trained[np.clip(rel, 0, None)]
        rel_mean = np.where(live, log_count[np.clip(rel, 0, None)], 0.0).sum(1)
        rel_mean = rel_mean / np.maximum(live.sum(1), 1)
        features = torch.tensor(inputs.features, dtype=torch.float32)
        with_rel = torch.cat(
            [features, torch.tensor(np.c_[rel_mean, live.any(1)], dtype=torch.float32)], 1
        )
        y = torch.tensor(log_count, dtype=torch.float32)
        fit = torch.from_numpy(trained)
        test = np.isin(ids, withheld)
        truth = np.array([every_count.get(i, 0) for i in ids[test]])
        for name, x in (("content", features), ("content + relatives' log count", with_rel)):
            cells = []
            for hidden in (0, 64):
                torch.manual_seed(args.seed)
                cells.append(spearman(fit_predict(x, y, fit, hidden)[test], truth))
            print(f"| {choose} | {name} | {cells[0]:.3f} | {cells[1]:.3f} |")


if __name__ == "__main__":
    main()
