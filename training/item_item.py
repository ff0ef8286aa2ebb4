"""Item-to-item parts of the model, solved in closed form on the list rows.

Two solvers, each one function from the training rows of some users to a top-k table per anime
(index int32 [n_items, k], value float32 [n_items, k]):

- :func:`solve_ease`: EASE (Steck 2019) and its EDLAE variant (Steck 2020): which anime having
  one anime on a list pushes up or down; it feeds the ranking blend;
- :func:`solve_knn`: KNNBaseline's pearson-baseline similarities; they feed the rating
  correction.

:class:`ItemItemSettings` gathers the settings of both from a :class:`ModelConfig`, and
:func:`solve_ease_for` and :func:`solve_knn_for` run each with those settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recommender.model import ModelConfig
from training import data as tdata

Table = tuple[np.ndarray, np.ndarray]  # (index int32 [n_items, k], value float32 [n_items, k])


@dataclass(frozen=True)
class ItemItemSettings:
    """What the two solvers need from a model configuration."""

    ease_lambda: float
    ease_dropout: float
    min_count: int
    ease_topk: int
    knn_topk: int
    knn_shrink: float
    user_bias_reg: float

    @classmethod
    def of(cls, cfg: ModelConfig) -> ItemItemSettings:
        return cls(
            cfg.ease_lambda if cfg.kind == "hybrid" else 0.0,
            cfg.ease_dropout,
            cfg.ease_min_count,
            cfg.ease_topk,
            cfg.knn_topk if cfg.kind == "hybrid" else 0,
            cfg.knn_shrink,
            cfg.user_bias_reg,
        )

    @property
    def ease_on(self) -> bool:
        return self.ease_lambda > 0

    @property
    def knn_on(self) -> bool:
        return self.knn_topk > 0


def _frame(
    items: np.ndarray, n_items: int, min_count: int, topk: int
) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, np.ndarray]:
    """What both solvers start from: the anime with at least ``min_count`` rows (``active``),
    their column in the solve (``col``, -1 elsewhere), the kept width ``k`` and empty top-k
    tables for inactive anime."""
    active = np.flatnonzero(np.bincount(items, minlength=n_items) >= min_count)
    k = int(min(topk, max(active.size - 1, 1)))
    col = np.full(n_items, -1, np.int64)
    col[active] = np.arange(active.size)
    return (active, col, k, np.zeros((n_items, k), np.int32), np.zeros((n_items, k), np.float32))


def solve_ease(
    data: tdata.TrainingData,
    users: np.ndarray,
    lam: float,
    min_count: int,
    topk: int,
    like: float,
    device: torch.device | None = None,
    dropout: float = 0.0,
) -> Table:
    """EASE's closed form on the weighted list matrix of ``users``; rows pruned to top-k.

    ``dropout`` > 0 makes it EDLAE (Steck 2020, "Autoencoders that don't overfit towards the
    identity"): each anime's own regulariser grows by dropout / (1 - dropout) times its Gram
    diagonal, so widely listed anime are shrunk harder than niche ones.

    Row j of the result holds the anime that having j on one's list pushes up, and by how much.
    Anime with fewer than ``min_count`` rows take no part (their rows are zeros).
    """
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"item-to-item dropout must be in [0, 1), got {dropout}")
    sel = np.isin(data.users, users)
    items = data.items[sel]
    active, col, k, index, value = _frame(items, data.n_items, min_count, topk)
    if active.size < 2:
        return index, value
    keep = col[items] >= 0
    u = np.searchsorted(users, data.users[sel][keep])
    c = col[items[keep]]
    s = data.scores[sel][keep]
    w = np.where(s >= like, 2.0, 1.0).astype(np.float32)
    dev = device or torch.device("cpu")
    x = torch.sparse_coo_tensor(
        torch.from_numpy(np.stack([c, u])),
        torch.from_numpy(w),
        (active.size, users.size),
        check_invariants=False,
    ).coalesce()
    dense = torch.zeros(users.size, active.size)
    dense[torch.from_numpy(u), torch.from_numpy(c)] = torch.from_numpy(w)
    gram = x.to(dev) @ dense.to(dev) if dev.type == "cuda" else torch.sparse.mm(x, dense)
    gram.diagonal().mul_(1.0 + dropout / (1.0 - dropout)).add_(lam)
    chol = torch.linalg.cholesky(gram)
    p = torch.cholesky_inverse(chol)
    b = -p / p.diagonal()[None, :]
    b.diagonal().zero_()
    # keep the k strongest entries by magnitude: the negative ones (alternatives people pick
    # instead) matter as much as the positive ones (pruning by value alone costs 0.06 NDCG)
    _, idx = torch.topk(b.abs(), k, dim=1)
    vals = torch.gather(b, 1, idx)
    index[active] = active[idx.cpu().numpy()].astype(np.int32)
    value[active] = vals.cpu().numpy()
    return index, value


def solve_knn(
    data: tdata.TrainingData,
    users: np.ndarray,
    mu: float,
    item_bias: np.ndarray,
    bias_reg: float,
    shrink: float = 100.0,
    min_count: int = 5,
    topk: int = 128,
    device: torch.device | None = None,
) -> Table:
    """Pearson-baseline item similarities (KNNBaseline's), pruned to the top-k per anime.

    Residuals are taken against the trained model's baseline (mean + anime bias + the same
    closed-form user bias the fold-in uses); similarities are shrunk by (n-1)/(n-1+shrink) where
    n counts the users who scored both.
    """
    sel = np.isin(data.users, users) & data.scored
    rows_u, it, sc = data.users[sel], data.items[sel], data.scores[sel]
    r0 = sc - mu - item_bias[it]
    ns = np.bincount(rows_u, minlength=data.n_users)
    bu = np.bincount(rows_u, r0, minlength=data.n_users) / (ns + bias_reg)
    resid = (r0 - bu[rows_u]).astype(np.float32)
    active, col, k, index, value = _frame(it, data.n_items, min_count, topk)
    if active.size < 2:
        return index, value
    keep = col[it] >= 0
    u = torch.from_numpy(np.searchsorted(users, rows_u[keep]))
    c = torch.from_numpy(col[it[keep]])
    r = torch.from_numpy(resid[keep])
    shape_t, shape_d = (active.size, users.size), (users.size, active.size)
    dev = device or torch.device("cpu")

    def sparse(values: torch.Tensor) -> torch.Tensor:
        return (
            torch.sparse_coo_tensor(torch.stack([c, u]), values, shape_t, check_invariants=False)
            .coalesce()
            .to(dev)
        )

    def dense(values: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(shape_d)
        out[u, c] = values
        return out.to(dev)

    ones = torch.ones_like(r)
    mask_d = dense(ones)
    num = torch.sparse.mm(sparse(r), dense(r))
    sq = torch.sparse.mm(sparse(r * r), mask_d)
    cnt = torch.sparse.mm(sparse(ones), mask_d)
    sim = num / torch.sqrt(sq * sq.T).clamp(min=1e-9)
    sim = sim * (cnt - 1).clamp(min=0) / (cnt - 1 + shrink)
    sim.diagonal().zero_()
    vals, idx = torch.topk(sim, k, dim=1)  # nearest neighbours: the most similar anime
    vals = vals.clamp(min=0)
    index[active] = active[idx.cpu().numpy()].astype(np.int32)
    value[active] = vals.cpu().numpy()
    return index, value


def solve_ease_for(
    data: tdata.TrainingData,
    users: np.ndarray,
    settings: ItemItemSettings,
    like: float,
    device: torch.device | None,
) -> Table:
    """:func:`solve_ease` with a configuration's settings."""
    return solve_ease(
        data,
        users,
        settings.ease_lambda,
        settings.min_count,
        settings.ease_topk,
        like,
        device,
        settings.ease_dropout,
    )


def solve_knn_for(
    data: tdata.TrainingData,
    users: np.ndarray,
    settings: ItemItemSettings,
    mu: float,
    item_bias: np.ndarray,
    device: torch.device | None,
) -> Table:
    """:func:`solve_knn` with a configuration's settings."""
    return solve_knn(
        data,
        users,
        mu,
        item_bias,
        settings.user_bias_reg,
        settings.knn_shrink,
        settings.min_count,
        settings.knn_topk,
        device,
    )
