"""Item-to-item parts of the model, solved in closed form on the list rows.

Two solvers, each one function from the training rows of some users to a top-k table per anime
(index int32 [n_items, k], value float32 [n_items, k]):

- :func:`solve_ease`: EASE (Steck 2019) and its EDLAE variant (Steck 2020): which anime having
  one anime on a list pushes up or down; it feeds the ranking blend;
- :func:`solve_knn`: KNNBaseline's pearson-baseline similarities; they feed the rating
  correction.

:class:`ItemItemSettings` gathers the settings of both from a :class:`ModelConfig`, and
:func:`solve_ease_for` and :func:`solve_knn_for` run each with those settings.

Scale (chosen by measurement, ``benchmarks/item_item_scale.py``, numbers in RESULTS.md): the
catalog may hold 20k+ anime, so neither solve may hold more than one ``n x n`` float32 matrix.
The Gram matrix is built from the sparse list matrix one row block at a time (never a dense
users x anime copy: that alone was 4 GB at 50k people x 20k anime), inverted in its own buffer
by float32 LAPACK ``potrf``/``potri`` (torch's ``cholesky(out=)`` still copies; float32 is what
the solve always used, within 2e-6 of float64 on the shared data), and pruned to the top-k one
row block at a time. Past ``exact_max`` anime the n^3 inversion gives way to one small ridge
regression per anime over its ``candidates`` most co-occurring anime (exact when they cover
everyone; on the shared data the item-to-item ranking alone scores no worse than the exact
solve). The KNN similarities likewise come one row block at a time from sparse products.
Helpers: :mod:`training.item_item_blocks`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recommender.model import ModelConfig
from training import data as tdata
from training import item_item_blocks as blk

Table = blk.Table  # (index int32 [n_items, k], value float32 [n_items, k])


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
    exact_max: int | None = None
    candidates: int = 256

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
            cfg.ease_exact_max,
            cfg.ease_candidates,
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


def _list_rows(
    data: tdata.TrainingData, users: np.ndarray, sel: np.ndarray, col: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row in ``users``, column in the solve, position in the selected rows) of every selected
    row whose anime takes part."""
    keep = np.flatnonzero(col[data.items[sel]] >= 0)
    return np.searchsorted(users, data.users[sel][keep]), col[data.items[sel][keep]], keep


def solve_ease(
    data: tdata.TrainingData,
    users: np.ndarray,
    lam: float,
    min_count: int,
    topk: int,
    like: float,
    device: torch.device | None = None,
    dropout: float = 0.0,
    *,
    exact_max: int | None = None,
    candidates: int = 512,
    block: int = blk.BLOCK,
) -> Table:
    """EASE's closed form on the weighted list matrix of ``users``; rows pruned to top-k.

    ``dropout`` > 0 makes it EDLAE (Steck 2020, "Autoencoders that don't overfit towards the
    identity"): each anime's own regulariser grows by dropout / (1 - dropout) times its Gram
    diagonal, so widely listed anime are shrunk harder than niche ones.

    Row j of the result holds the anime that having j on one's list pushes up, and by how much.
    Anime with fewer than ``min_count`` rows take no part (their rows are zeros).

    Up to ``exact_max`` taking part (None: any number) the solve is exact (one in-place
    inversion); past it each anime's column is regressed on its ``candidates`` most co-occurring
    anime only. ``block`` bounds the scratch memory and never changes the result.
    """
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"item-to-item dropout must be in [0, 1), got {dropout}")
    sel = np.isin(data.users, users)
    active, col, k, index, value = _frame(data.items[sel], data.n_items, min_count, topk)
    if active.size < 2:
        return index, value
    u, c, keep = _list_rows(data, users, sel, col)
    w = np.where(data.scores[sel][keep] >= like, 2.0, 1.0)
    g = blk.gram(blk.list_matrix(u, c, w, users.size, active.size), block)
    reg = (lam + dropout / (1.0 - dropout) * np.diagonal(g)).astype(np.float32)
    if exact_max is not None and active.size > exact_max:
        cand = blk.candidates(g, min(candidates, active.size - 1), block)
        local, vals = blk.local_regressions(g, reg, cand, k)
    elif device is not None and device.type != "cpu":
        local, vals = _ease_exact_on(device, g, reg, k, block)
    else:
        g[np.diag_indices_from(g)] += reg
        local, vals = blk.rows_topk(
            blk.ease_rows(blk.invert_spd_in_place(g, block)), g.shape[0], k, block
        )
    # rows keep the k strongest entries by magnitude: the negative ones (alternatives people
    # pick instead) matter as much as the positive ones (pruning by value alone costs 0.06 NDCG)
    index[active] = active[local].astype(np.int32)
    value[active] = vals
    return index, value


def _ease_exact_on(
    device: torch.device, g: np.ndarray, reg: np.ndarray, k: int, block: int
) -> Table:
    """The exact solve on an accelerator (its memory, not the host's, holds the dense copies)."""
    gram = torch.from_numpy(g).to(device)
    gram.diagonal().add_(torch.from_numpy(reg).to(device))
    p = torch.cholesky_inverse(torch.linalg.cholesky(gram))
    del gram
    inv_diag = -1.0 / p.diagonal()
    n = p.shape[0]
    index = np.zeros((n, k), np.int32)
    value = np.zeros((n, k), np.float32)
    for start, stop in blk.blocks(n, block):
        rows = p[start:stop] * inv_diag[None, :]
        rows[torch.arange(stop - start), torch.arange(start, stop)] = 0.0
        _, idx = torch.topk(rows.abs(), k, dim=1)
        index[start:stop] = idx.cpu().numpy()
        value[start:stop] = torch.gather(rows, 1, idx).cpu().numpy()
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
    *,
    block: int = blk.BLOCK,
) -> Table:
    """Pearson-baseline item similarities (KNNBaseline's), pruned to the top-k per anime.

    Residuals are taken against the trained model's baseline (mean + anime bias + the same
    closed-form user bias the fold-in uses); similarities are shrunk by (n-1)/(n-1+shrink) where
    n counts the users who scored both. Solved on the host one row block at a time (sparse
    products; ``device`` is accepted for symmetry and unused).
    """
    del device
    sel = np.isin(data.users, users) & data.scored
    rows_u, it, sc = data.users[sel], data.items[sel], data.scores[sel]
    r0 = sc - mu - item_bias[it]
    ns = np.bincount(rows_u, minlength=data.n_users)
    bu = np.bincount(rows_u, r0, minlength=data.n_users) / (ns + bias_reg)
    resid = (r0 - bu[rows_u]).astype(np.float32)
    active, col, k, index, value = _frame(it, data.n_items, min_count, topk)
    if active.size < 2:
        return index, value
    u, c, keep = _list_rows(data, users, sel, col)
    shape = (users.size, active.size)
    rows = blk.pearson_rows(
        blk.list_matrix(u, c, resid[keep], *shape),
        blk.list_matrix(u, c, np.ones(keep.size, np.float32), *shape),
        shrink,
    )
    # nearest neighbours: the most similar anime
    local, vals = blk.rows_topk(rows, active.size, k, block, by_magnitude=False)
    index[active] = active[local].astype(np.int32)
    value[active] = np.maximum(vals, 0.0)
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
        exact_max=settings.exact_max,
        candidates=settings.candidates,
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
