"""Everything anime-side a serving model precomputes at load, so a request does only the
user's work.

Content-only anime (no list rows at training time) get their vector and biases from the
model's stand-in path; the parts only list rows could teach (their encoder vectors, their
item-to-item scores, their popularity) are borrowed from their nearest trained anime in the
learned space (:class:`recommender.neighbours.Borrowed`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from recommender.model import HybridRecommender
from recommender.neighbours import Borrowed

_EMPTY = np.zeros(0, np.float32)


@dataclass(frozen=True)
class AnimeSide:
    """The anime-side arrays of one model (float32, one row per anime)."""

    table_t: torch.Tensor  # anime vectors, as the module computed them
    table: np.ndarray  # [n, d]
    item_bias: np.ndarray  # [n]
    mu: float
    is_new: np.ndarray  # bool [n]: served by content alone
    borrowed: Borrowed
    item_vectors: np.ndarray  # [n, d or 2d]: unit vectors for "similar"
    log_popularity: np.ndarray  # [n], content-only anime borrow theirs
    # hybrid only (empty for the seed model) / seed only (empty for hybrid)
    enc_score: np.ndarray = field(default_factory=lambda: _EMPTY)
    enc_list: np.ndarray = field(default_factory=lambda: _EMPTY)
    rank_table: np.ndarray = field(default_factory=lambda: _EMPTY)
    rank_bias: np.ndarray = field(default_factory=lambda: _EMPTY)
    user_mean: np.ndarray = field(default_factory=lambda: _EMPTY)

    @classmethod
    def of(cls, module: HybridRecommender, popularity: np.ndarray) -> AnimeSide:
        """The arrays of ``module`` (in eval mode); ``popularity`` is list rows per anime."""
        with torch.no_grad():
            table_t, bias, rank_bias = module.anime_side()
            table = table_t.numpy().astype(np.float32)
            trained = module.trained.numpy() if module.content else np.ones(len(table))
            is_new = np.asarray(trained < 0.5)
            rel = module.relatives.numpy() if module.content and module.shape.relatives else None
            borrowed = Borrowed.of(table, is_new, relatives=rel)
            log_pop = borrowed.fill(np.log1p(np.asarray(popularity, np.float32)))
            common = (table_t, table, bias.numpy().astype(np.float32))
            mu = float(module.global_mean.item())
            if module.config.kind != "hybrid":
                user_mean = module.user_emb.weight.mean(0).numpy().astype(np.float32)
                vectors = l2(table)
                return cls(*common, mu, is_new, borrowed, vectors, log_pop, user_mean=user_mean)
            assert rank_bias is not None
            enc_list = borrowed.fill(module.enc_list.weight.numpy())
            vectors = l2(np.concatenate([l2(table), l2(enc_list)], axis=1))
            return cls(
                *common,
                mu,
                is_new,
                borrowed,
                vectors,
                log_pop,
                borrowed.fill(module.enc_score.weight.numpy()),
                enc_list,
                (table_t @ module.rank_proj.weight).numpy().astype(np.float32),
                rank_bias.numpy().astype(np.float32),
            )


def l2(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32; zero rows stay zero)."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.asarray(x / np.maximum(norm, 1e-8), dtype=np.float32)
