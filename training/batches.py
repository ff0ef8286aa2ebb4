"""Batches for the training loops: fixed-shape host tensors, one epoch at a time.

The hybrid loop works on batches of users: each epoch shows the encoder a random part of every
user's list (a fraction drawn per user, so both "10 ratings" and "most of the list" are seen)
and asks it to predict the rest. :class:`DenseBatches` holds whole [users, anime] matrices (the
full softmax is then cheap); :class:`RowBatches` packs list rows (for sampled softmax on large
catalogs). Both have one shape per epoch, the last batch padded, so XLA compiles one graph.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from recommender.model import ModelConfig
from training import data as tdata

Batch = tuple[torch.Tensor, ...]


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

    def __iter__(self) -> Iterator[Batch]:
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

    def __iter__(self) -> Iterator[Batch]:
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


def visible_mask(
    data: tdata.TrainingData, cfg: ModelConfig, rng: np.random.Generator
) -> np.ndarray:
    """Per row: shown to the encoder this epoch (a fraction drawn per user)."""
    keep = rng.uniform(cfg.keep_min, cfg.keep_max, data.n_users)
    return np.asarray(rng.random(data.n_rows) < keep[data.users])


def sample_negatives(cfg: ModelConfig, n_items: int, gen: torch.Generator) -> torch.Tensor | None:
    """A uniform sample of anime for the sampled softmax; None means the full softmax."""
    if not cfg.negatives or cfg.negatives >= n_items:
        return None
    return torch.randint(0, n_items, (cfg.negatives,), generator=gen)


def validation_mask(data: tdata.TrainingData, val_users: np.ndarray, seed: int) -> np.ndarray:
    """Every validation user's rows split 80/20 once (seeded): shown / to predict."""
    rng = np.random.default_rng(seed + 7)
    mask = np.ones(data.n_rows, dtype=bool)
    sel = np.isin(data.users, val_users)
    mask[sel] = rng.random(int(sel.sum())) >= 0.2
    return mask
