"""Plain values of the serving model: a folded-in user, and how a rating is put together."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class UserState:
    """A user as the model sees them: their folded-in history and vector."""

    history_index: np.ndarray  # int64 model indices of the anime on the user's list
    history_scores: np.ndarray  # float32 scores, NaN where on the list but unscored
    vector: np.ndarray  # float32 [d]: encoder output (hybrid) or user embedding (seed)
    bias: float
    delta: np.ndarray | None = None  # float32 [d]: ridge correction of the rating vector

    @property
    def n_scored(self) -> int:
        return int(np.isfinite(self.history_scores).sum())


@dataclass(frozen=True)
class RatingMix:
    """How the rating prediction is put together (tuned on validation users at training):
    baseline + dot_weight * (user . anime) + knn_weight * neighbourhood residual; ``ridge`` is
    the fold-in's ridge correction of the user vector (0 = none)."""

    ridge: float = 0.0
    knn_weight: float = 0.0
    knn_shrink: float = 1.0
    dot_weight: float = 1.0
