"""The two losses of the hybrid model: rating MSE plus a softmax over the anime to watch.

Both score the hidden rows of a batch (see :mod:`training.batches`): the MSE on the hidden
scored rows, and a softmax cross-entropy (liked anime count twice) on the hidden list rows.
The anime side comes from ``HybridRecommender.anime_side``, which (in training) drops the
learned parts of a random share of anime so that their content vectors are trained to stand
in; anime without any list rows are masked out of the softmax (nobody could have listed them).
"""

from __future__ import annotations

import math

import torch

from recommender.model import HybridRecommender
from training.batches import Batch


def dense_loss(
    model: HybridRecommender, batch: Batch, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """MSE on the hidden scored rows, full softmax cross-entropy over every anime (the shown
    ones masked out) on the hidden list rows, for dense batches
    (:class:`training.batches.DenseBatches`).

    Biases ride along as extra columns of the matrix products, and the mask is folded into
    the logits (the weight is 0 on shown anime), so few full [B, n_items] passes remain.
    """
    score, scored, visible, t_score, weight = batch
    z, bu = model.encode_dense(score, scored, visible, scale)
    table, bias, rank_bias = model.anime_side()
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
    untrained = model.untrained_mask()  # anime with no rows are no one's negatives
    hide = visible if untrained is None else visible + untrained[None, :]
    logits = torch.addmm(
        hide,
        torch.cat([model.rank_proj(z), ones], 1),
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
    untrained = model.untrained_mask()  # anime with no rows are no one's negatives
    if negatives is None:
        if untrained is not None:
            logits = logits - 1e4 * untrained[None, :]
        masked = logits.index_put((slot, item), -1e4 * visible, accumulate=True)
        logp = row_logit - torch.logsumexp(masked, dim=-1)[slot]
    else:
        if untrained is not None:
            logits = logits - 1e4 * untrained[negatives][None, :]
        n_items = model.shape.n_items
        lse = torch.logsumexp(logits, dim=-1) + math.log(n_items / logits.shape[1])
        logp = row_logit - torch.logaddexp(row_logit, lse[slot])
    ce = -(logp * weight).sum() / weight.sum().clamp(min=1.0)
    return mse, ce
