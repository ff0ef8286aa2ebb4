"""Training: the loops for both architectures, the item-to-item solve, blend tuning, checkpoints.

Entry points:
- :func:`fit` trains on a DataFrame (the benchmark's entry) and returns a :class:`FitResult`
  with an in-memory :class:`ServingModel`;
- :func:`train_from_store` trains on the database, writes the checkpoint and the loss-curve
  PNG beside it and returns a :class:`TrainSummary` (the CLI and the retraining job use it).

The hybrid loop works on batches of users: each epoch shows the encoder a random part of every
user's list (a fraction drawn per user, so both "10 ratings" and "most of the list" are seen)
and asks it to predict the rest: the scores (MSE) and which anime are on the list (softmax over
every anime, the shown ones masked out). That is exactly what a fold-in of a new user does, so
what is learned transfers to people who are not in the checkpoint. Batches have a fixed shape
(the last one is padded with empty users), the step never calls ``.item()``, and on XLA each
step ends with ``xm.optimizer_step`` + ``torch_xla.sync()``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from recommender.blend import BlendSchedule, BlendWeights
from recommender.model import HybridRecommender, ModelConfig, ModelShape, get_config
from recommender.scoring import RatingMix, ServingModel, UserState
from training import data as tdata
from training import devices
from training.evaluate import (
    RankingTask,
    UserRows,
    blend_rows,
    components,
    evaluate_rows,
    group_rows,
    like_min,
)
from training.splits import reveal_split, split_by_user

Progress = Callable[[int, int], None]

RANK_GRID = (0.0, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
RATING_GRID = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0)
POPULARITY_GRID = (0.0, 0.01, 0.03, 0.1, 0.3)
BLEND_REVEALS = (5, 10, 20)  # blend anchors: these list lengths, plus 80% of a whole list
MIN_ANCHOR_USERS = 20  # a validation protocol with fewer users sets no blend anchor
REPORTED_PROTOCOLS = ("split80", "reveal10")  # validation metrics kept in the checkpoint
RIDGE_GRID = (0.0, 3.0, 10.0, 30.0)
KNN_SHRINK_GRID = (0.3, 1.0, 3.0)
MIN_TUNE_ROWS = 300  # fewer hidden scores than this: no weights are fitted
FEW_MAX = 20  # users with at most this many scores use the mix tuned on "10 revealed"


@dataclass
class FitResult:
    serving: ServingModel
    train_seconds: float
    history: dict[str, list[float]]
    data: tdata.TrainingData
    user_vectors: np.ndarray | None = None  # seed: trained user embeddings
    user_biases: np.ndarray | None = None
    val_metrics: dict[str, float] = field(default_factory=dict)
    samples_per_second: float = 0.0
    epochs_run: int = 0
    device: str = "cpu"

    def state_for(self, user: object) -> UserState:
        """The state of a user seen in training (their trained vector, or their whole list)."""
        index = self.data.index_of_user().get(tdata._key(user))
        if index is None:
            raise KeyError(f"user {user!r} was not in the training data")
        rows = self.data.user_rows(index)
        hist = self.data.items[rows]
        s = self.data.scores[rows]
        hs = np.where(s > 0, s, np.nan).astype(np.float32)
        if self.user_vectors is not None:
            return self.serving.state_from_vector(
                self.user_vectors[index], float(self.user_biases[index]), hist, hs
            )
        return self.serving.fold_in_indices(hist, hs)


@dataclass
class TrainSummary:
    checkpoint: Path
    plot: Path | None
    config: str
    device: str
    epochs: int
    train_seconds: float
    samples_per_second: float
    rows: int
    users: int
    anime: int
    fingerprint: str
    metrics: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {
            "checkpoint": str(self.checkpoint),
            "plot": str(self.plot) if self.plot else None,
            "config": self.config,
            "device": self.device,
            "epochs": self.epochs,
            "train_seconds": round(self.train_seconds, 2),
            "samples_per_second": round(self.samples_per_second),
            "rows": self.rows,
            "users": self.users,
            "anime": self.anime,
            "fingerprint": self.fingerprint,
            "metrics": self.metrics,
        }


# -- batches -------------------------------------------------------------------------------------
def rows_capacity(data: tdata.TrainingData, users_per_batch: int) -> int:
    """Fixed row capacity of a packed batch: room for a typical batch, and for the longest list
    (rounded up to 1024 so that a few sizes of data share one XLA graph shape)."""
    lens = np.diff(data.indptr)
    typical = int(np.ceil(users_per_batch * (lens.mean() if lens.size else 1) * 1.25))
    return int(np.ceil(max(typical, int(lens.max(initial=1)), 1024) / 1024) * 1024)


class RowBatches:
    """Host-side packed batches for one epoch, all of one shape.

    Each batch is (slot, item, score, visible, valid), five [capacity] tensors: users are packed
    in (shuffled) order until ``users_per_batch`` users or ``capacity`` rows are reached, and the
    rest is padding (valid 0).
    """

    def __init__(
        self,
        data: tdata.TrainingData,
        users: np.ndarray,
        users_per_batch: int,
        capacity: int,
        visible: np.ndarray,
        rng: np.random.Generator | None,
    ) -> None:
        self.data, self.cap, self.visible = data, capacity, visible
        order = rng.permutation(users) if rng is not None else np.asarray(users)
        lens = data.indptr[order + 1] - data.indptr[order]
        self.groups: list[np.ndarray] = []
        start, rows = 0, 0
        for pos, n in enumerate(lens):
            if pos > start and (pos - start == users_per_batch or rows + n > capacity):
                self.groups.append(order[start:pos])
                start, rows = pos, 0
            rows += n
        if order.size > start or not self.groups:
            self.groups.append(order[start:])

    def __len__(self) -> int:
        return len(self.groups)

    def __iter__(self):
        d, cap = self.data, self.cap
        for group in self.groups:
            starts, ends = d.indptr[group], d.indptr[group + 1]
            idx = np.concatenate(
                [np.arange(a, b) for a, b in zip(starts, ends, strict=True)]
                + [np.empty(0, np.int64)]
            )[:cap]
            slot = np.repeat(np.arange(group.size), ends - starts)[:cap]
            n = idx.size
            out_slot = np.zeros(cap, np.int64)
            out_item = np.zeros(cap, np.int64)
            out_score = np.zeros(cap, np.float32)
            out_vis = np.zeros(cap, np.float32)
            out_valid = np.zeros(cap, np.float32)
            out_slot[:n], out_item[:n], out_score[:n] = slot, d.items[idx], d.scores[idx]
            out_vis[:n] = self.visible[idx]
            out_valid[:n] = 1.0
            yield tuple(
                torch.from_numpy(a) for a in (out_slot, out_item, out_score, out_vis, out_valid)
            )


class DenseBatches:
    """Host-side dense batches for one epoch: five float [users_per_batch, n_items] tensors per
    batch (score of the shown rows, shown scored rows, shown rows, score of the hidden scored
    rows, softmax weight of the hidden rows); the last batch is padded with empty users.

    Dense matrices turn the encoder and both heads into matrix products (no gathers or
    scatter-adds, one fixed shape for XLA) and make the full softmax over every anime cheap;
    everything that depends on the data alone is built here by scattering the rows.
    """

    def __init__(
        self,
        data: tdata.TrainingData,
        users: np.ndarray,
        users_per_batch: int,
        visible: np.ndarray,
        like: float,
        rng: np.random.Generator | None,
    ) -> None:
        self.data, self.visible, self.b, self.like = data, visible, users_per_batch, like
        order = rng.permutation(users) if rng is not None else np.asarray(users)
        self.groups = [
            order[i : i + users_per_batch] for i in range(0, max(order.size, 1), users_per_batch)
        ]

    def __len__(self) -> int:
        return len(self.groups)

    def __iter__(self):
        d, n = self.data, self.data.n_items
        for group in self.groups:
            starts, lens = d.indptr[group], d.indptr[group + 1] - d.indptr[group]
            idx = np.repeat(starts - np.cumsum(lens) + lens, lens) + np.arange(int(lens.sum()))
            flat = np.repeat(np.arange(group.size) * n, lens) + d.items[idx]
            s, vis = d.scores[idx], self.visible[idx]
            sv, sh = flat[vis], flat[~vis]  # shown / hidden rows
            s_sh = s[~vis]
            out = [np.zeros(self.b * n, np.float32) for _ in range(5)]
            out[0][sv] = s[vis]
            out[1][sv] = s[vis] > 0
            out[2][sv] = 1.0
            out[3][sh] = s_sh
            out[4][sh] = np.where(s_sh >= self.like, 2.0, 1.0)
            yield tuple(torch.from_numpy(a.reshape(self.b, n)) for a in out)


def _dense_loss(
    model: HybridRecommender, batch: tuple[torch.Tensor, ...], scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """MSE on the hidden scored rows, full softmax cross-entropy over every anime (the shown
    ones masked out) on the hidden list rows; dense batches (see :class:`DenseBatches`).

    Biases ride along as extra columns of the matrix products, and the mask is folded into
    the logits (the weight is 0 on shown anime), so few full [B, n_items] passes remain.
    """
    score, scored, visible, t_score, weight = batch
    z, bu = model.encode_dense(score, scored, visible, scale)
    table = model.item_table()
    n = table.shape[0]
    ones = torch.ones_like(bu)[:, None]
    base = (model.global_mean + model.item_bias.weight.squeeze(-1))[:, None]
    # rating - target at every anime: [z, bu, 1] . [q, 1, mu + b_i] - t
    err = torch.addmm(
        t_score,
        torch.cat([z, bu[:, None], ones], 1),
        torch.cat([table, torch.ones(n, 1, device=table.device), base], 1).T,
        beta=-1.0,
    )
    t_scored = (t_score > 0).float()
    mse = (err * t_scored).square().sum() / t_scored.sum().clamp(min=1.0)
    logits = torch.addmm(
        visible,
        torch.cat([model.rank_proj(z), ones], 1),
        torch.cat([table, model.rank_bias.weight], 1).T,
        beta=-1e4,
    )
    lse = torch.logsumexp(logits, dim=-1)
    w_user = weight.sum(1)
    ce = -((weight * logits).sum() - (lse * w_user).sum()) / w_user.sum().clamp(min=1.0)
    return mse, ce


def _visible_mask(
    data: tdata.TrainingData, cfg: ModelConfig, rng: np.random.Generator
) -> np.ndarray:
    keep = rng.uniform(cfg.keep_min, cfg.keep_max, data.n_users)
    return rng.random(data.n_rows) < keep[data.users]


def _hybrid_loss(
    model: HybridRecommender,
    batch: tuple[torch.Tensor, ...],
    n_users: int,
    scale: float,
    like: float,
    negatives: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MSE on the hidden scored rows, softmax cross-entropy on the hidden list rows.

    With ``negatives`` (a fixed-size uniform sample of anime) the softmax normaliser of each
    user is estimated from the sample (log-Q corrected) plus the row's own logit; without, it
    is the full softmax over every anime with the shown anime masked out.
    """
    slot, item, score, visible, valid = batch
    rating, row_logit, logits, _ = model.forward_rows(
        slot, item, score, visible, n_users, scale, negatives
    )
    target = valid * (1.0 - visible)
    t_scored = target * (score > 0).float()
    mse = (((rating - score) ** 2) * t_scored).sum() / t_scored.sum().clamp(min=1.0)
    weight = target * (1.0 + (score >= like).float())
    if negatives is None:
        masked = logits.index_put((slot, item), -1e4 * visible, accumulate=True)
        logp = row_logit - torch.logsumexp(masked, dim=-1)[slot]
    else:
        n_items = model.shape.n_items
        lse = torch.logsumexp(logits, dim=-1) + math.log(n_items / logits.shape[1])
        logp = row_logit - torch.logaddexp(row_logit, lse[slot])
    ce = -(logp * weight).sum() / weight.sum().clamp(min=1.0)
    return mse, ce


def _negatives(cfg: ModelConfig, n_items: int, gen: torch.Generator) -> torch.Tensor | None:
    if not cfg.negatives or cfg.negatives >= n_items:
        return None
    return torch.randint(0, n_items, (cfg.negatives,), generator=gen)


# -- the two loops -------------------------------------------------------------------------------
def _train_hybrid(
    model, data, train_users, val_users, cfg, dev, epochs, seed, progress, history, log
):
    scale = (data.score_range[1] - data.score_range[0]) / 2.0
    like = like_min(data.score_range)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    # validation: every val user's rows split 80/20 once (seeded) -- shown / to predict
    val_visible = _val_mask(data, val_users, seed)
    dense = not cfg.negatives or cfg.negatives >= data.n_items
    cap = rows_capacity(data, cfg.batch_size)

    def epoch_batches(users, vis, order_rng):
        if dense:
            return DenseBatches(data, users, cfg.batch_size, vis, like, order_rng)
        return RowBatches(data, users, cfg.batch_size, cap, vis, order_rng)

    def loss_of(batch, neg):
        if dense:
            return _dense_loss(model, batch, scale)
        return _hybrid_loss(model, batch, cfg.batch_size, scale, like, neg)

    best, best_state, bad, samples = math.inf, None, 0, 0
    t_loop = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        visible = _visible_mask(data, cfg, rng)
        batches = epoch_batches(train_users, visible, rng)
        tot_mse = torch.zeros((), device=dev.device)
        tot_ce = torch.zeros((), device=dev.device)
        for batch in devices.device_loader(dev, batches):
            opt.zero_grad(set_to_none=True)
            neg = None if dense else _negatives(cfg, data.n_items, gen)
            neg = neg.to(dev.device) if neg is not None else None
            mse, ce = loss_of(batch, neg)
            (mse + cfg.rank_weight * ce).backward()
            devices.optimizer_step(dev, opt)
            devices.sync(dev)
            tot_mse = tot_mse + mse.detach()
            tot_ce = tot_ce + ce.detach()
        samples += int(data.indptr[train_users + 1].sum() - data.indptr[train_users].sum())
        n = len(batches)
        history["train_mse"].append(float(tot_mse.cpu()) / n)
        history["train_ce"].append(float(tot_ce.cpu()) / n)
        if val_users.size:
            model.eval()
            with torch.no_grad():
                v_mse = torch.zeros((), device=dev.device)
                v_ce = torch.zeros((), device=dev.device)
                vb = epoch_batches(val_users, val_visible, None)
                for batch in devices.device_loader(dev, vb):
                    mse, ce = loss_of(batch, None)
                    v_mse, v_ce = v_mse + mse, v_ce + ce
                    devices.sync(dev)
            vm, vc = float(v_mse.cpu()) / len(vb), float(v_ce.cpu()) / len(vb)
            history["val_mse"].append(vm)
            history["val_ce"].append(vc)
            val_loss = vm + cfg.rank_weight * vc
            sched.step(val_loss)
            if val_loss < best - 1e-4:
                best, bad = val_loss, 0
                best_state = copy.deepcopy(
                    {k: v.detach().cpu() for k, v in model.state_dict().items()}
                )
            else:
                bad += 1
            log(
                f"epoch {epoch + 1}: train mse {history['train_mse'][-1]:.4f} ce "
                f"{history['train_ce'][-1]:.4f} | val mse {vm:.4f} ce {vc:.4f}"
            )
        if progress:
            progress(epoch + 1, epochs)
        if bad >= cfg.patience:
            break
    seconds = time.perf_counter() - t_loop
    if best_state is not None:
        model.load_state_dict(best_state)
    return epoch + 1, samples / max(seconds, 1e-9)


def _val_mask(data: tdata.TrainingData, val_users: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 7)
    mask = np.ones(data.n_rows, dtype=bool)
    sel = np.isin(data.users, val_users)
    mask[sel] = rng.random(int(sel.sum())) >= 0.2
    return mask


def _train_seed(
    model, data, train_users, val_users, cfg, dev, epochs, seed, progress, history, log
):
    """The origin loop: (user, anime) -> score pairs, MSE, fixed-size padded batches. Every
    user is trained (each has its own embedding), so there is no validation split here."""
    rows = np.flatnonzero(np.isin(data.users, train_users) & data.scored)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(seed)
    b = cfg.batch_size
    samples = 0
    t_loop = time.perf_counter()

    def batches(sel: np.ndarray):
        for start in range(0, sel.size, b):
            chunk = sel[start : start + b]
            pad = b - chunk.size
            w = np.r_[np.ones(chunk.size, np.float32), np.zeros(pad, np.float32)]
            chunk = np.r_[chunk, np.zeros(pad, np.int64)] if pad else chunk
            yield (
                torch.from_numpy(data.users[chunk]),
                torch.from_numpy(data.items[chunk]),
                torch.from_numpy(data.scores[chunk]),
                torch.from_numpy(w),
            )

    for epoch in range(epochs):
        model.train()
        tot = torch.zeros((), device=dev.device)
        n = 0
        for u, i, s, w in devices.device_loader(dev, list(batches(rng.permutation(rows)))):
            opt.zero_grad(set_to_none=True)
            pred = model.forward_pairs(u, i)
            loss = (((pred - s) ** 2) * w).sum() / w.sum()
            loss.backward()
            devices.optimizer_step(dev, opt)
            devices.sync(dev)
            tot, n = tot + loss.detach(), n + 1
        samples += rows.size
        history["train_mse"].append(float(tot.cpu()) / max(n, 1))
        if progress:
            progress(epoch + 1, epochs)
        log(f"epoch {epoch + 1}: train mse {history['train_mse'][-1]:.4f}")
    seconds = time.perf_counter() - t_loop
    return epoch + 1, samples / max(seconds, 1e-9)


# -- item-to-item (EASE) ---------------------------------------------------------------------------
def _item_item_frame(items: np.ndarray, n_items: int, min_count: int, topk: int):
    """What both item-to-item solvers start from: the anime with at least ``min_count`` rows
    (``active``), their column in the solve (``col``, -1 elsewhere), the kept width ``k`` and
    empty top-k tables (index int32, value float32 [n_items, k]) for inactive anime."""
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
) -> tuple[np.ndarray, np.ndarray]:
    """EASE's closed form on the weighted list matrix of ``users``; rows pruned to top-k.

    ``dropout`` > 0 makes it EDLAE (Steck 2020, "Autoencoders that don't overfit towards the
    identity"): each anime's own regulariser grows by dropout / (1 - dropout) times its Gram
    diagonal, so widely listed anime are shrunk harder than niche ones.

    Returns (index int32 [n_items, k], value float32 [n_items, k]): row j holds the anime that
    having j on one's list pushes up, and by how much. Anime with fewer than ``min_count`` rows
    take no part (their rows are zeros).
    """
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"item-to-item dropout must be in [0, 1), got {dropout}")
    sel = np.isin(data.users, users)
    items = data.items[sel]
    active, col, k, index, value = _item_item_frame(items, data.n_items, min_count, topk)
    if active.size < 2:
        return index, value
    keep = col[items] >= 0
    u = np.searchsorted(users, data.users[sel][keep])
    c = col[items[keep]]
    s = data.scores[sel][keep]
    w = np.where(s >= like, 2.0, 1.0).astype(np.float32)
    dev = device or torch.device("cpu")
    x = torch.sparse_coo_tensor(
        np.stack([c, u]), torch.from_numpy(w), (active.size, users.size), check_invariants=False
    ).coalesce()
    dense = torch.zeros(users.size, active.size)
    dense[torch.from_numpy(u), torch.from_numpy(c)] = torch.from_numpy(w)
    if dev.type == "cuda":
        gram = x.to(dev) @ dense.to(dev)
    else:
        gram = torch.sparse.mm(x, dense)
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
) -> tuple[np.ndarray, np.ndarray]:
    """Pearson-baseline item similarities (KNNBaseline's), pruned to the top-k per anime.

    Residuals are taken against the trained model's baseline (mean + anime bias + the same
    closed-form user bias the fold-in uses); similarities are shrunk by (n-1)/(n-1+shrink) where
    n counts the users who scored both. Returns (index int32 [n_items, k], value float32).
    """
    sel = np.isin(data.users, users) & data.scored
    rows_u, it, sc = data.users[sel], data.items[sel], data.scores[sel]
    r0 = sc - mu - item_bias[it]
    ns = np.bincount(rows_u, minlength=data.n_users)
    bu = np.bincount(rows_u, r0, minlength=data.n_users) / (ns + bias_reg)
    resid = (r0 - bu[rows_u]).astype(np.float32)
    active, col, k, index, value = _item_item_frame(it, data.n_items, min_count, topk)
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


# -- blend tuning --------------------------------------------------------------------------------
def _val_rows(
    data: tdata.TrainingData, val_users: np.ndarray, seed: int
) -> list[tuple[str, UserRows]]:
    """Validation protocols on the held-out users: 80% of each list shown ("split80"), and K
    scored rows shown for each K in BLEND_REVEALS ("revealK")."""
    if val_users.size == 0:
        return []
    sel = np.isin(data.users, val_users)
    df = pd.DataFrame(
        {"user": data.users[sel], "anime_id": data.items[sel], "score": data.scores[sel]}
    )
    out = []
    shown, hidden = split_by_user(df, 0.2, seed)
    out.append(("split80", group_rows(shown, hidden, "anime_id")))
    for k in BLEND_REVEALS:
        rev, hid = reveal_split(df, k, seed=seed)
        if len(rev):
            out.append((f"reveal{k}", group_rows(rev, hid, "anime_id")))
    return out


def _rating_parts(model: ServingModel, rows: UserRows, shrinks: Sequence[float]):
    """At every hidden scored row: truth, baseline, dot part, KNN part (per shrink)."""
    truth, base, dot = [], [], []
    knn: dict[float, list[np.ndarray]] = {lam: [] for lam in shrinks}
    for r, state in enumerate(_states(model, rows)):
        scored = rows.hidden_scores[r] > 0
        idx = rows.hidden_idx[r][scored]
        truth.append(rows.hidden_scores[r][scored])
        base.append(model.baseline(state)[idx])
        dot.append(model.dot_part(state)[idx])
        for lam in shrinks:
            knn[lam].append(model.knn_residual(state, lam)[idx])
    cat = np.concatenate
    return cat(truth), cat(base), cat(dot), {lam: cat(v) for lam, v in knn.items()}


def _states(model: ServingModel, rows: UserRows):
    for idx, sc in zip(rows.revealed_idx, rows.revealed_scores, strict=True):
        yield model.fold_in_indices(idx, sc)


def _nonneg_lstsq(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares with every weight >= 0 (tiny problems: try each subset of features)."""
    best, best_err = np.zeros(x.shape[1]), float(np.dot(y, y))
    n = x.shape[1]
    for mask in range(1, 2**n):
        cols = [j for j in range(n) if mask >> j & 1]
        coef, *_ = np.linalg.lstsq(x[:, cols], y, rcond=None)
        if (coef < 0).any():
            continue
        err = float(np.sum((y - x[:, cols] @ coef) ** 2))
        if err < best_err:
            best_err = err
            best = np.zeros(n)
            best[cols] = coef
    return best


def tune_rating(serving: ServingModel, val: list[tuple[str, UserRows]], log) -> ServingModel:
    """Per regime (users with few scores: the reveal-10 protocol; with many: the 80% one):
    fold-in ridge and KNN shrinkage by grid, dot/KNN weights by least squares, all on the
    validation users' hidden scores."""
    shrinks = KNN_SHRINK_GRID if serving.knn_index is not None else (1.0,)
    lo, hi = serving.score_range
    mixes: dict[str, tuple[float, RatingMix]] = {}
    for name, rows in val:
        if name not in ("split80", "reveal10"):
            continue
        best: tuple[float, RatingMix] = (math.inf, RatingMix())
        for ridge in RIDGE_GRID:
            cand = serving.with_rating_mix(RatingMix(ridge), RatingMix(ridge), 0)
            t, b, d, knn = _rating_parts(cand, rows, shrinks)
            for lam in shrinks:
                feats = np.stack([d, knn[lam]], 1) if serving.knn_index is not None else d[:, None]
                coef = _nonneg_lstsq(feats, t - b)
                rmse = float(np.sqrt(np.mean((np.clip(b + feats @ coef, lo, hi) - t) ** 2)))
                if rmse < best[0]:
                    kw = float(coef[1]) if coef.size > 1 else 0.0
                    best = (rmse, RatingMix(ridge, kw, lam, float(coef[0])))
        if t.size < MIN_TUNE_ROWS:  # too few scores to fit weights on: keep the plain head
            best = (best[0], RatingMix(best[1].ridge))
        mixes[name] = best
        log(f"rating mix for {name}: {best[1]} (val rmse {best[0]:.4f}, {t.size} rows)")
    many = mixes.get("split80", next(iter(mixes.values())))[1]
    few = mixes.get("reveal10", (0.0, many))[1]
    return serving.with_rating_mix(few, many, FEW_MAX)


def tune_blend(serving: ServingModel, val: list[tuple[str, UserRows]], log) -> ServingModel:
    """Pick the rating mix (validation RMSE), then one rank blend per validation protocol
    (validation NDCG@10), anchored at that protocol's median list length."""
    if serving.config.kind != "hybrid" or not val:
        return serving
    serving = tune_rating(serving, val, log)
    like = like_min(serving.score_range)
    anchors: dict[float, tuple[int, BlendWeights]] = {}
    for name, rows in val:
        if len(rows) < MIN_ANCHOR_USERS:
            continue
        length = float(np.median([idx.size for idx in rows.revealed_idx]))
        w, ndcg, coverage = _tune_anchor(serving, rows, like)
        log(
            f"blend for {name} (list length {length:g}): {w} "
            f"(val ndcg {ndcg:.4f}, coverage {coverage:.4f}, {len(rows)} users)"
        )
        if length not in anchors or len(rows) > anchors[length][0]:
            anchors[length] = (len(rows), w)
    if not anchors:
        return serving
    schedule = BlendSchedule(tuple((n, anchors[n][1]) for n in sorted(anchors)))
    return serving.with_blend(schedule)


def _tune_anchor(
    serving: ServingModel, rows: UserRows, like: float
) -> tuple[BlendWeights, float, float]:
    """Coordinate search for the best validation NDCG@10: rank x rating weights, then the
    popularity discount, then rank x rating again at that discount."""
    comp = components(serving, rows)
    task = RankingTask.of(serving, rows, like)
    w_ease = 1.0 if serving.ease_index is not None else 0.0
    seen: dict[tuple[float, float, float], tuple[float, float]] = {}

    def measure(wk: float, wr: float, wp: float) -> tuple[float, float]:
        key = (wk, wr, wp)
        if key not in seen:
            m = task.metrics(blend_rows(serving, comp, BlendWeights(w_ease, wk, wr, wp)))
            seen[key] = (m["ndcg_at_10"], m["coverage_at_10"])
        return seen[key]

    def best_grid(wp: float) -> tuple[float, float]:
        pairs = [(wk, wr) for wk in RANK_GRID for wr in RATING_GRID if w_ease or wk or wr]
        return max(pairs, key=lambda p: measure(p[0], p[1], wp)[0])

    wk, wr = best_grid(0.0)
    wp = max(POPULARITY_GRID, key=lambda p: measure(wk, wr, p)[0])
    if wp:
        best_grid(wp)
    wk, wr, wp = max(seen, key=lambda k: seen[k])
    return BlendWeights(w_ease, wk, wr, wp), seen[(wk, wr, wp)][0], seen[(wk, wr, wp)][1]


# -- the whole job ---------------------------------------------------------------------------------
def train_model(
    data: tdata.TrainingData,
    config: str | ModelConfig = "default",
    epochs: int | None = None,
    seed: int = 0,
    device: str = "auto",
    val_fraction: float = 0.1,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
    tune: bool = True,
    threads: int | None = 2,
) -> FitResult:
    """Train, solve the item-to-item part, tune the serving blend, validate."""
    log = log or (lambda _msg: None)
    cfg = get_config(config) if isinstance(config, str) else config
    epochs = cfg.epochs if epochs is None else int(epochs)
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    dev = devices.select_device(device)
    t0 = time.perf_counter()
    # seed users must all be trained (they carry their own embedding); hybrid keeps some back
    frac = 0.0 if cfg.kind == "seed" else val_fraction
    train_users, val_users = tdata.split_users(data.n_users, frac, seed)
    scored = data.scores[data.scored]
    mu = float(scored.mean()) if scored.size else float(np.mean(data.score_range))
    shape = ModelShape(
        n_items=data.n_items,
        n_genres=data.item_genres.shape[1],
        n_users=data.n_users if cfg.kind == "seed" else 0,
    )
    _check_indices(data)
    model = HybridRecommender(
        cfg, shape, torch.from_numpy(data.item_genres.astype(np.float32)), mu
    ).to(dev.device)
    history: dict[str, list[float]] = {"train_mse": [], "train_ce": [], "val_mse": [], "val_ce": []}
    loop = _train_seed if cfg.kind == "seed" else _train_hybrid
    ran, sps = loop(
        model, data, train_users, val_users, cfg, dev, epochs, seed, progress, history, log
    )
    model = model.cpu()
    like = like_min(data.score_range)
    ease_i = ease_v = None
    if cfg.kind == "hybrid" and cfg.ease_lambda > 0:
        t_e = time.perf_counter()
        ease_dev = dev.device if dev.kind == "cuda" else None
        ease_i, ease_v = solve_ease(
            data,
            train_users,
            cfg.ease_lambda,
            cfg.ease_min_count,
            cfg.ease_topk,
            like,
            ease_dev,
            cfg.ease_dropout,
        )
        log(f"item-to-item solve {time.perf_counter() - t_e:.1f}s")
    knn_i = knn_v = None
    if cfg.kind == "hybrid" and cfg.knn_topk > 0:
        t_k = time.perf_counter()
        knn_i, knn_v = solve_knn(
            data,
            train_users,
            mu,
            model.item_bias.weight.detach().squeeze(-1).numpy(),
            cfg.user_bias_reg,
            cfg.knn_shrink,
            cfg.ease_min_count,
            cfg.knn_topk,
            dev.device if dev.kind == "cuda" else None,
        )
        log(f"neighbourhood solve {time.perf_counter() - t_k:.1f}s")
    meta = {
        "config": cfg.to_json(),
        "shape": {
            "n_items": shape.n_items,
            "n_genres": shape.n_genres,
            "n_users": shape.n_users,
            "extra": {},
        },
        "genre_vocab": data.genre_vocab,
        "score_range": list(data.score_range),
        "global_mean": mu,
        "fingerprint": data.fingerprint,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": dev.kind,
        "epochs": ran,
        # everyone whose rows were read (validation users feed the item-to-item refit)
        "train_users": [str(u) for u in data.user_ids],
    }
    meta["version"] = f"{meta['trained_at'][:19].replace(':', '')}-{data.fingerprint[:8]}"
    serving = ServingModel(
        model,
        data.anime_ids,
        data.genre_vocab,
        data.item_genres,
        data.popularity(),
        meta,
        ease_i,
        ease_v,
        knn_index=knn_i,
        knn_value=knn_v,
    )
    val = _val_rows(data, val_users, seed) if val_users.size else []
    if tune:
        serving = tune_blend(serving, val, log)
    metrics: dict[str, float] = {}
    for name, rows in val:
        if name not in REPORTED_PROTOCOLS:
            continue
        for key, value in evaluate_rows(serving, rows).items():
            if key not in ("users", "dropped_rows"):
                metrics[f"val_{name}_{key}"] = round(float(value), 5)
    if ease_i is not None and val_users.size and cfg.refit_all:
        # the validation users were only held back to tune and measure: the item-to-item
        # matrix the checkpoint serves learns from every user's list
        t_e = time.perf_counter()
        all_users = np.arange(data.n_users)
        serving.ease_index, serving.ease_value = solve_ease(
            data,
            all_users,
            cfg.ease_lambda,
            cfg.ease_min_count,
            cfg.ease_topk,
            like,
            dev.device if dev.kind == "cuda" else None,
            cfg.ease_dropout,
        )
        log(f"item-to-item refit on all users {time.perf_counter() - t_e:.1f}s")
    seconds = time.perf_counter() - t0
    metrics["train_seconds"] = round(seconds, 2)
    metrics["samples_per_second"] = round(sps)
    serving.meta["metrics"] = metrics
    serving.metrics = metrics
    user_vectors = user_biases = None
    if cfg.kind == "seed":
        user_vectors = model.user_emb.weight.detach().numpy().astype(np.float32)
        user_biases = model.user_bias.weight.detach().squeeze(-1).numpy().astype(np.float32)
    return FitResult(
        serving, seconds, history, data, user_vectors, user_biases, metrics, sps, ran, dev.kind
    )


def _check_indices(data: tdata.TrainingData) -> None:
    """XLA clamps out-of-range embedding ids silently: validate on the host first."""
    if data.n_rows and (
        data.items.min() < 0
        or data.items.max() >= data.n_items
        or data.users.min() < 0
        or data.users.max() >= data.n_users
    ):
        raise ValueError("training data has out-of-range user or anime indices")


def fit(
    train: pd.DataFrame,
    item_genres: Mapping[int, Sequence[str]],
    config: str = "default",
    epochs: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    score_range: tuple[float, float] = (1.0, 10.0),
) -> FitResult:
    """The benchmark's entry: train on a (user, anime_id, score) frame, 0 = unscored."""
    data = tdata.from_frame(train, item_genres, score_range)
    return train_model(data, config, epochs, seed, device)


def train_from_store(
    store,
    config: str = "default",
    epochs: int | None = None,
    seed: int = 0,
    device: str = "auto",
    out: Path | None = None,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainSummary:
    """Train on every list row in the database; write checkpoint + loss-curve PNG beside it."""
    from training.plots import plot_history

    data = tdata.from_store(store)
    keys = _user_keys(store, data.user_ids)
    result = train_model(data, config, epochs, seed, device, progress=progress, log=log)
    result.serving.meta["train_users"] = [
        keys.get(int(u), str(u)) for u in result.serving.meta["train_users"]
    ]
    if out is None:
        out = Path("models") / f"anirec-{result.serving.version}.safetensors"
    out = Path(out)
    path = result.serving.save(out)
    plot = None
    try:
        plot = plot_history(
            result.history,
            out.with_suffix(".png"),
            title=f"anirec {result.serving.config.name} ({result.device})",
        )
    except Exception as exc:
        if log:
            log(f"loss plot not written: {exc}")
    return TrainSummary(
        path,
        plot,
        result.serving.config.name,
        result.device,
        result.epochs_run,
        result.train_seconds,
        result.samples_per_second,
        data.n_rows,
        data.n_users,
        data.n_items,
        data.fingerprint,
        result.val_metrics,
    )


def _user_keys(store, user_ids: np.ndarray) -> dict[int, str]:
    """users.id -> the id a ratings CSV would use: the data-set id, else PLATFORM:ID."""
    keys: dict[int, str] = {}
    for who in store.users.identities():
        pid = who.platform_user_id
        keys[who.id] = pid if who.platform == "dataset" else f"{who.platform}:{pid}"
    return keys
