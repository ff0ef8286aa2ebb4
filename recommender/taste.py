"""Taste between two people: a compatibility score and the reasons for it.

The model part compares what the model predicts each person thinks of the most popular anime
(their folded-in user vectors seen through the anime table, the anime's own bias taken out):
it means something even when two people share no title. When they rated titles in common, the
agreement on those is blended in, weighing more the more titles they share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from recommender.scoring import ServingModel
from storage.rows import Anime

#: Anime compared by the model part: the most popular ones (those people form a view on).
POPULAR = 2000
#: Co-rated titles at which the shared ratings weigh as much as the model.
SHARED_HALF = 5.0
#: A score at or above this is "loved".
LOVED = 8


@dataclass(frozen=True)
class Compatibility:
    """How well two people's tastes match, 0-100, with what it rests on."""

    score: int
    model_agreement: float  # -1..1: correlation of their predicted tastes
    shared: int  # titles both scored
    shared_agreement: float | None  # -1..1 on the shared titles (None: none shared)
    both_loved: tuple[tuple[Anime, int, int], ...]  # (anime, a's score, b's score), best first
    disagreement: tuple[Anime, int, int] | None  # the shared title they differ on most
    for_a: tuple[Anime, float] | None  # b's favourite that a has not seen, a's predicted score


def correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; 0.0 when either side is flat (nothing to compare)."""
    x = np.asarray(x, np.float64) - float(np.mean(x))
    y = np.asarray(y, np.float64) - float(np.mean(y))
    den = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / den) if den > 1e-12 else 0.0


def shared_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Agreement on co-rated titles, -1..1: correlation when there are enough titles and both
    vary, else closeness of the scores (0 apart = 1, 9 apart = -1)."""
    if a.size >= 3 and a.std() > 0 and b.std() > 0:
        return correlation(a, b)
    return float(np.clip(1.0 - 2.0 * np.mean(np.abs(a - b)) / 9.0, -1.0, 1.0))


def compare(
    taste_a: np.ndarray,
    taste_b: np.ndarray,
    scores_a: Mapping[int, int],
    scores_b: Mapping[int, int],
    catalog: Mapping[int, Anime],
) -> tuple[int, float, float | None, int]:
    """(score 0-100, model agreement, shared agreement, shared titles) from two people's
    predicted tastes over the same anime and their scores (anime id -> 1-10)."""
    model = correlation(taste_a, taste_b) if taste_a.size else 0.0
    common = sorted(set(scores_a) & set(scores_b) & set(catalog))
    shared: float | None = None
    blended = model
    if common:
        a = np.array([scores_a[i] for i in common], np.float64)
        b = np.array([scores_b[i] for i in common], np.float64)
        shared = shared_agreement(a, b)
        w = len(common) / (len(common) + SHARED_HALF)
        blended = (1.0 - w) * model + w * shared
    score = int(round(50.0 * (1.0 + float(np.clip(blended, -1.0, 1.0)))))
    return score, model, shared, len(common)


def reasons(
    scores_a: Mapping[int, int], scores_b: Mapping[int, int], catalog: Mapping[int, Anime]
) -> tuple[tuple[tuple[Anime, int, int], ...], tuple[Anime, int, int] | None]:
    """The titles both loved (best first, at most three) and the biggest disagreement."""
    common = [i for i in set(scores_a) & set(scores_b) if i in catalog]
    loved = sorted(
        (i for i in common if scores_a[i] >= LOVED and scores_b[i] >= LOVED),
        key=lambda i: (-(scores_a[i] + scores_b[i]), i),
    )
    both = tuple((catalog[i], scores_a[i], scores_b[i]) for i in loved[:3])
    apart = sorted(common, key=lambda i: (-abs(scores_a[i] - scores_b[i]), i))
    worst = None
    if apart and abs(scores_a[apart[0]] - scores_b[apart[0]]) >= 3:
        i = apart[0]
        worst = (catalog[i], scores_a[i], scores_b[i])
    return both, worst


@dataclass(frozen=True)
class Side:
    """One person, as the comparison needs them."""

    predicted: np.ndarray  # float32 [n_items]: their predicted scores
    listed: np.ndarray  # model indices on their list
    n_known: int  # list rows the model knows (0: nothing to go on)
    scores: Mapping[int, int]  # anime id -> their score


def between(
    model: ServingModel,
    anime: Sequence[Anime | None],
    a: Side,
    b: Side,
    catalog: Mapping[int, Anime],
) -> Compatibility:
    """Compare two people: the score, the titles behind it, and b's favourite for a."""
    popular = np.argsort(-model.popularity, kind="stable")[:POPULAR]
    known = a.n_known > 0 and b.n_known > 0
    ta = (a.predicted - model.item_bias)[popular] if known else np.zeros(0)
    tb = (b.predicted - model.item_bias)[popular] if known else np.zeros(0)
    score, agree, shared, n = compare(ta, tb, a.scores, b.scores, catalog)
    loved, apart = reasons(a.scores, b.scores, catalog)
    return Compatibility(score, agree, n, shared, loved, apart, favourite_for(model, anime, a, b))


def favourite_for(
    model: ServingModel, anime: Sequence[Anime | None], a: Side, b: Side
) -> tuple[Anime, float] | None:
    """b's best-scored title that is not on a's list, with a's predicted score for it."""
    listed = set(a.listed.tolist())
    best = [
        (score, model.index_of[aid])
        for aid, score in b.scores.items()
        if aid in model.index_of and model.index_of[aid] not in listed
    ]
    if not best:
        return None
    top = max(best, key=lambda t: (t[0], float(a.predicted[t[1]])))[1]
    found = anime[top]
    return None if found is None else (found, round(float(a.predicted[top]), 1))
