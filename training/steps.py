"""One hybrid training step's data layout and loss, chosen for the device.

The host always builds compact packed-row batches (:class:`training.batches.RowBatches`: a few
MB per step, cheap to build and to upload). What the step does with them depends on where it
runs:

- ``rows`` (CPU, and sampled softmax anywhere): the encoder gathers and scatter-adds the rows;
  at ~1.4% density that is about 1.5x less CPU work than dense matrix products, and on the CPU
  each sum takes only the rows it uses (:func:`recommender.packed.select_rows`).
- ``dense`` (CUDA, XLA): the rows are scattered into [users, anime] matrices ON the device,
  where matrix products are what the hardware is for and every step has one fixed shape; the
  host never builds or uploads the ~75 MB dense batch.

Both compute the same losses (``tests/test_model.py`` checks the two layouts against each
other). :class:`HybridLoss` is an ``nn.Module`` so that DDP can wrap it.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from recommender.model import HybridRecommender
from training import data as tdata
from training import distributed
from training.batches import Batch, RowBatches, rows_capacity
from training.losses import Losses, dense_loss, row_loss

ROWS, DENSE = "rows", "dense"


def layout_for(device_kind: str, sampled: bool) -> str:
    """Packed rows on the CPU or with sampled negatives; dense matrices on accelerators."""
    forced = os.environ.get("ANIREC_TRAIN_LAYOUT")
    if forced in (ROWS, DENSE) and not sampled:
        return forced
    return ROWS if sampled or device_kind == "cpu" else DENSE


def dense_from_rows(
    rows: Batch, users: int, n_items: int, like: float, plan: distributed.Plan
) -> Batch:
    """The five dense [users, n_items] matrices of :class:`training.batches.DenseBatches`,
    scattered on the device from a packed-row batch (padding rows add zeros)."""
    slot, item, score, visible, valid = rows
    hidden = valid * (1.0 - visible)
    cols = torch.cat(
        [
            score * visible,
            (score > 0).float() * visible,
            visible,
            score * hidden,
            torch.where(score >= like, 2.0, 1.0) * hidden,
        ]
    )
    k = torch.arange(5, device=slot.device).repeat_interleave(slot.shape[0])
    flat = (slot.repeat(5) * 5 + k) * n_items + item.repeat(5)
    out = torch.zeros(users * 5 * n_items, device=slot.device).index_add(0, flat, cols)
    out = out.view(users, 5, n_items)
    distributed.shard_batch((out,), plan)
    return tuple(out[:, j] for j in range(5))


def target_counts(rows: Batch, like: float) -> torch.Tensor:
    """[2]: the denominators of the MSE (hidden scored rows) and of the softmax loss (hidden
    rows, liked ones twice) of a packed-row batch, the same in both layouts."""
    _slot, _item, score, visible, valid = rows
    hidden = valid * (1.0 - visible)
    liked = torch.where(score >= like, 2.0, 1.0)
    return torch.stack([(hidden * (score > 0).float()).sum(), (hidden * liked).sum()])


class HybridLoss(nn.Module):
    """The losses (:data:`training.losses.Losses`) of one packed-row batch in the chosen
    layout."""

    def __init__(
        self,
        model: HybridRecommender,
        layout: str,
        users: int,
        scale: float,
        like: float,
        plan: distributed.Plan,
    ) -> None:
        super().__init__()
        self.model, self.layout, self.users = model, layout, users
        self.scale, self.like, self.plan = scale, like, plan

    def forward(self, rows: Batch, negatives: torch.Tensor | None = None) -> Losses:
        if self.layout == DENSE:
            n = self.model.shape.n_items
            batch = dense_from_rows(rows, self.users, n, self.like, self.plan)
            return dense_loss(self.model, batch, self.scale)
        return row_loss(self.model, rows, self.users, self.scale, self.like, negatives)


def users_per_step(batch_size: int, plan: distributed.Plan) -> int:
    """Users in one step's batch on this worker: a DDP rank's slice of the global batch, or the
    global batch rounded up to fill an SPMD mesh evenly."""
    if plan.kind == distributed.DDP:
        return -(-batch_size // plan.world)
    m = distributed.replicated_users(plan)
    return -(-batch_size // m) * m


def host_batches(
    data: tdata.TrainingData,
    users: np.ndarray,
    batch_size: int,
    visible: np.ndarray,
    rng: np.random.Generator | None,
    plan: distributed.Plan,
) -> RowBatches:
    """One epoch's packed-row batches; under DDP each keeps this rank's slice of its users
    (every rank draws the same global batches from the same seed)."""
    batches = RowBatches(data, users, batch_size, rows_capacity(data, batch_size), visible, rng)
    batches.groups = [distributed.shard_users(g, plan) for g in batches.groups]
    return batches
