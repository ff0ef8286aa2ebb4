"""A trainer process whose candidate is deliberately worse: ``python -m tests.bad_trainer``.

It is the production job (:func:`training.job.main`, same arguments) with one change: the
scores handed to training are shuffled among the scored rows, so they no longer belong to their
(user, anime) pairs. The quality gate must reject what comes out.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import numpy as np

from training import data as tdata
from training.job import main
from training.train import FitResult, train_model


def shuffled_scores(data: tdata.TrainingData, seed: int = 99) -> tdata.TrainingData:
    """The same rows with the scores permuted among the scored rows."""
    scores = data.scores.copy()
    scored = np.flatnonzero(scores > 0)
    scores[scored] = np.random.default_rng(seed).permutation(scores[scored])
    return dataclasses.replace(data, scores=scores)


def train_on_shuffled(data: tdata.TrainingData, *args: Any, **kwargs: Any) -> FitResult:
    return train_model(shuffled_scores(data), *args, **kwargs)


if __name__ == "__main__":
    sys.exit(main(trainer=train_on_shuffled))
