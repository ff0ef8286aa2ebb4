"""The two losses of the hybrid model: rating MSE plus a softmax over the anime to watch.

Both score the hidden rows of a batch (see :mod:`training.batches`): the MSE on the hidden
scored rows, and a softmax cross-entropy (liked anime count twice) on the hidden list rows.
A content model adds a third term, the same two losses for the stand-in anime side
(``HybridRecommender.standin_side``: every trained anime scored from its content alone) against
the batch's users taken as given, so the stand-in learns to serve titles with no list rows
while the learned parts train exactly as without it. Anime without any list rows are masked
out of the softmax (nobody could have listed them).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from recommender.model import HybridRecommender, Side
from recommender.packed import positions, select_rows
from training.batches import Batch

#: the CPU's full softmax runs over a multiple of this many columns (padding at -1e4): MKL's
#: products on rows of 7,157 floats ran at ~0.6x the speed of 7,168 (benchmarks/RESULTS.md)
ALIGN = 16

#: (MSE, softmax loss, stand-in MSE, stand-in softmax loss); kept apart so that a data-parallel
#: run can weigh each by its own share of the global batch
Losses = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def dense_loss(model: HybridRecommender, batch: Batch, scale: float) -> Losses:
    """MSE on the hidden scored rows, full softmax cross-entropy over every anime (the shown
    ones masked out) on the hidden list rows, for dense batches
    (:class:`training.batches.DenseBatches`); then the stand-in's two terms (0 when there is
    none or the model is not training).
    """
    score, scored, visible, t_score, weight = batch
    z, bu = model.encode_dense(score, scored, visible, scale)
    side, cold = model.anime_sides()
    untrained = model.untrained_mask()  # anime with no rows are no one's negatives
    hide = visible if untrained is None else visible + untrained[None, :]
    zk = model.rank_proj(z)
    mse, ce = _dense_terms(model, (z, zk, bu), side, t_score, hide, weight)
    c_mse = c_ce = torch.zeros((), device=z.device)
    if cold is not None and model.training and model.config.content_weight > 0:
        users = (z.detach(), zk.detach(), bu.detach())
        c_mse, c_ce = _dense_terms(model, users, cold, t_score, hide, weight)
    return mse, ce, c_mse, c_ce


def _dense_terms(
    model: HybridRecommender,
    users: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    side: Side,
    t_score: torch.Tensor,
    hide: torch.Tensor,
    weight: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(MSE, softmax loss) of users (vectors, ranking vectors, biases) against one anime side.

    Biases ride along as extra columns of the matrix products, and the mask is folded into
    the logits (the weight is 0 on shown anime), so few full [B, n_items] passes remain.
    """
    z, zk, bu = users
    table, bias, rank_bias = side
    assert rank_bias is not None  # hybrid only
    n = table.shape[0]
    ones = torch.ones_like(bu)[:, None]
    base = (model.global_mean + bias)[:, None]
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
        hide,
        torch.cat([zk, ones], 1),
        torch.cat([table, rank_bias[:, None]], 1).T,
        beta=-1e4,
    )
    lse = torch.logsumexp(logits, dim=-1)
    w_user = weight.sum(1)
    ce = -((weight * logits).sum() - (lse * w_user).sum()) / w_user.sum().clamp(min=1.0)
    return mse, ce


def row_loss(
    model: HybridRecommender,
    batch: Batch,
    n_users: int,
    scale: float,
    like: float,
    negatives: torch.Tensor | None,
) -> Losses:
    """MSE on the hidden scored rows, softmax cross-entropy on the hidden list rows, and the
    stand-in term terms (as :func:`dense_loss`).

    With ``negatives`` (a fixed-size uniform sample of anime) the softmax normaliser of each
    user is estimated from the sample (log-Q corrected) plus the row's own logit; without, it
    is the full softmax over every anime with the shown anime masked out.
    """
    slot, item, score, visible, valid = batch
    rows = _on_trained_columns(model, _Rows.of(batch, like, negatives))
    standin = model.training and model.config.content_weight > 0
    if rows.columns is None:
        side, cold = model.anime_sides()
        bias_i = side[1]
    else:  # the sides of the trained anime only; the encoder reads their learned biases
        side, cold = model.trained_sides(rows.columns, standin)
        bias_i = model.item_bias.weight.squeeze(-1)
    z, bu = model.encode_rows(slot, item, score, visible, n_users, scale, bias_i)
    zk = model.rank_proj(z)
    mse, ce = _row_terms(model, (z, zk, bu), side, rows)
    c_mse = c_ce = torch.zeros((), device=z.device)
    if cold is not None and standin:
        c_mse, c_ce = _row_terms(model, (z.detach(), zk.detach(), bu.detach()), cold, rows)
    return mse, ce, c_mse, c_ce


class _Rows(NamedTuple):
    """The rows each term of a packed batch scores (only those on the CPU, every row with a
    0/1 weight elsewhere: :func:`recommender.packed.select_rows`)."""

    rated: tuple[torch.Tensor | None, list[torch.Tensor]]  # hidden scored: (slot, item, score)
    n_rated: torch.Tensor
    targets: tuple[torch.Tensor | None, list[torch.Tensor]]  # hidden: (slot, item, weight)
    n_targets: torch.Tensor  # hidden list rows, liked ones twice (the softmax's weight)
    shown: tuple[torch.Tensor | None, list[torch.Tensor]]  # shown: (slot, item)
    negatives: torch.Tensor | None
    # the trained anime (None: all), when the sides hold only them: every row's item is then
    # a position in it
    columns: torch.Tensor | None = None

    @classmethod
    def of(cls, batch: Batch, like: float, negatives: torch.Tensor | None) -> _Rows:
        slot, item, score, visible, valid = batch
        target = valid * (1.0 - visible)
        t_scored = target * (score > 0).float()
        weight = target * (1.0 + (score >= like).float())
        return cls(
            select_rows(t_scored, slot, item, score),
            t_scored.sum().clamp(min=1.0),
            select_rows(target, slot, item, weight),
            weight.sum().clamp(min=1.0),
            select_rows(visible, slot, item),
            negatives,
        )


def _row_terms(
    model: HybridRecommender,
    users: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    side: Side,
    r: _Rows,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(MSE, softmax loss) of packed rows' users against one anime side.

    With the full softmax a row's watch logit is read from the logits matrix (the same
    product the normaliser needs) instead of being computed again per row.
    """
    z, zk, bu = users
    _, (slot, item, score) = r.rated  # unrated rows (weight 0) add exact zeros below
    w_rated = r.rated[0]
    err2 = (model.rate_rows(z, bu, side, slot, item) - score) ** 2
    mse = (err2 if w_rated is None else err2 * w_rated).sum() / r.n_rated
    _, (t_slot, t_item, weight) = r.targets
    untrained = model.untrained_mask()  # anime with no rows are no one's negatives
    if r.negatives is None:
        w_shown, (s_slot, s_item) = r.shown
        exclude = untrained if r.columns is None else None  # the columns are trained anime
        logits = model.rank_logits(zk, side, None, exclude, pad=-side[0].shape[0] % ALIGN)
        shown = torch.full_like(s_slot, -1e4, dtype=logits.dtype)
        masked = logits.index_put_(
            (s_slot, s_item), shown if w_shown is None else -1e4 * w_shown, accumulate=True
        )
        logp = torch.log_softmax(masked, dim=-1)[t_slot, t_item]
    else:
        logits = model.rank_logits(zk, side, r.negatives, untrained)
        row_logit = model.row_logits(zk, side, t_slot, t_item)
        n_items = model.shape.n_items
        lse = torch.logsumexp(logits, dim=-1) + math.log(n_items / logits.shape[1])
        logp = row_logit - torch.logaddexp(row_logit, lse[t_slot])
    ce = -(logp * weight).sum() / r.n_targets
    return mse, ce


def _on_trained_columns(model: HybridRecommender, rows: _Rows) -> _Rows:
    """On the CPU a content model's step scores the trained anime only: the untrained ones
    are nobody's target, and in the full softmax their logits would be lowered to
    exp(-1e4) = 0 at the cost of as many columns (a 12.3k-title catalog has 5.1k without
    rows; a living catalog far more), and their sides would be built for nothing. Every
    row's anime has rows, so it has a column; the rows are renumbered once per step, for both
    sides. Accelerators keep the fixed width (no data-dependent shapes)."""
    untrained = model.untrained_mask()
    if rows.negatives is not None or untrained is None or untrained.device.type != "cpu":
        return rows
    columns = torch.nonzero(untrained == 0).squeeze(1)
    column = positions(columns, model.shape.n_items)
    w_rated, (r_slot, r_item, r_score) = rows.rated
    w_shown, (s_slot, s_item) = rows.shown
    w_target, (t_slot, t_item, weight) = rows.targets
    return rows._replace(
        rated=(w_rated, [r_slot, column[r_item], r_score]),
        shown=(w_shown, [s_slot, column[s_item]]),
        targets=(w_target, [t_slot, column[t_item], weight]),
        columns=columns,
    )
