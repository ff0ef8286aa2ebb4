"""Packed rows: a batch of users as one flat list of (user slot, anime, score) rows.

Sums per user are scatter-adds with a fixed output shape; :func:`select_rows` keeps, on the
CPU, only the rows a sum uses.
"""

from __future__ import annotations

import torch


def select_rows(
    mask: torch.Tensor, *cols: torch.Tensor
) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
    """(weight, cols) for the rows of a packed batch where the 0/1 ``mask`` is 1.

    On the CPU only those rows are kept and the weight is None (all ones): every other row
    would add exact zeros to the sums that use them, so the results are the same with less
    work. Elsewhere every row is kept and ``mask`` is the weight that zeroes the others: fixed
    shapes for XLA, and no host sync for a data-dependent size on CUDA.
    """
    if mask.device.type != "cpu":
        return mask, list(cols)
    (keep,) = torch.nonzero(mask, as_tuple=True)
    return None, [c[keep] for c in cols]


def weighted(values: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """``values`` times the row weight of :func:`select_rows` (None: kept as they are)."""
    return values if weight is None else values * weight


def weight_or_ones(weight: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """The row weight of :func:`select_rows`, ones for the rows of ``like`` when None."""
    return torch.ones(like.shape[0], device=like.device) if weight is None else weight


def segment_sum(values: torch.Tensor, slot: torch.Tensor, n: int) -> torch.Tensor:
    """Sum of row values per user slot (fixed output shape: XLA-friendly scatter-add)."""
    out = values.new_zeros((n, *values.shape[1:]))
    return out.index_add(0, slot, values)


def positions(columns: torch.Tensor, n: int) -> torch.Tensor:
    """int64 [n]: each of ``n`` anime's position in ``columns`` (-1 where absent), to renumber
    rows for tensors that hold only those anime."""
    out = torch.full((n,), -1, dtype=torch.long, device=columns.device)
    out[columns] = torch.arange(columns.numel(), device=columns.device)
    return out
