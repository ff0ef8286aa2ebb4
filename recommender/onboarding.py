"""The onboarding deck: a few titles whose answers tell the most about a new person's taste.

Chosen once per model from the anime side only: among the most popular anime (people can
answer them), a greedy farthest-point walk over the learned anime vectors (each new title far
from those already chosen, so the answers cover the model's space), each step weighted by how
divisive the title is (the spread of its scores: a title everyone loves says little).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from recommender.scoring import ServingModel


@dataclass(frozen=True)
class DeckShape:
    """How the deck is picked. The defaults won a grid search on validation users in
    ``benchmarks/onboarding.py`` (anime data): among the 100 most popular, distance and the
    score encoder's impact carry the choice; weighting by the observed score spread or by
    popularity inside the pool did not help there, so they are off (but kept to be tuned)."""

    size: int = 10
    pool: int = 100  # candidates: this many most popular (allowed) anime
    spread_power: float = 0.0  # weight on the spread of the anime's scores (divisiveness)
    popularity_power: float = 0.0  # weight on popularity inside the pool
    distance_power: float = 2.0  # weight on the distance to the titles already chosen
    impact_power: float = 1.0  # weight on how far one answer moves a person's vector


def score_spread(
    anime_index: np.ndarray, scores: np.ndarray, n_items: int, prior: float = 5.0
) -> np.ndarray:
    """Per anime, the standard deviation of its scores (see :func:`spread_from_moments`)."""
    idx = np.asarray(anime_index, dtype=np.int64)
    val = np.asarray(scores, dtype=np.float64)
    n = np.bincount(idx, minlength=n_items).astype(np.float64)
    s1 = np.bincount(idx, val, minlength=n_items)
    s2 = np.bincount(idx, val * val, minlength=n_items)
    return spread_from_moments(n, s1, s2, prior)


def spread_from_moments(
    n: np.ndarray, s1: np.ndarray, s2: np.ndarray, prior: float = 5.0
) -> np.ndarray:
    """Per anime, the standard deviation of its scores from (count, sum, sum of squares),
    shrunk towards the overall one for anime with few scores (``prior`` pseudo-scores).
    float32 [n_items]."""
    n, s1, s2 = (np.asarray(x, dtype=np.float64) for x in (n, s1, s2))
    total = float(n.sum())
    if total <= 0:
        return np.ones(n.size, np.float32)
    overall = max(float(s2.sum()) / total - (float(s1.sum()) / total) ** 2, 0.0)
    mean = s1 / np.maximum(n, 1.0)
    var = np.maximum(s2 / np.maximum(n, 1.0) - mean * mean, 0.0)
    shrunk = (n * var + prior * overall) / (n + prior)
    return np.sqrt(shrunk).astype(np.float32)


def select_deck(
    vectors: np.ndarray,
    popularity: np.ndarray,
    spread: np.ndarray,
    allowed: np.ndarray,
    shape: DeckShape = DeckShape(),
    impact: np.ndarray | None = None,
) -> list[int]:
    """Model indices of the deck, in the order to ask them (most telling first).

    ``vectors`` are L2-normalised anime vectors [n, d]; ``popularity`` list rows per anime;
    ``spread`` the score spread per anime; ``allowed`` what may be shown (e.g. no adult titles);
    ``impact`` (optional) how far a rating of each anime moves the folded-in user.
    """
    ok = np.flatnonzero(np.asarray(allowed, dtype=bool))
    if ok.size == 0 or shape.size <= 0:
        return []
    pop = np.asarray(popularity, dtype=np.float64)
    pool = ok[np.argsort(-pop[ok], kind="stable")[: max(shape.pool, shape.size)]]
    # how likely a person has seen it (and so can answer): its share of the lists
    weight = (pop[pool] / max(float(pop[pool].max()), 1e-9)) ** shape.popularity_power
    sp = np.asarray(spread, dtype=np.float64)[pool]
    weight = weight * (sp / max(float(sp.max()), 1e-9)) ** shape.spread_power
    if impact is not None and shape.impact_power:
        im = np.asarray(impact, dtype=np.float64)[pool]
        weight = weight * (im / max(float(im.max()), 1e-9)) ** shape.impact_power
    v = np.asarray(vectors, dtype=np.float64)[pool]
    chosen = [int(np.argmax(weight))]
    nearest = np.clip(1.0 - v @ v[chosen[0]], 0.0, 2.0)
    while len(chosen) < min(shape.size, pool.size):
        gain = weight * nearest**shape.distance_power
        gain[chosen] = -np.inf
        best = int(np.argmax(gain))
        chosen.append(best)
        nearest = np.minimum(nearest, np.clip(1.0 - v @ v[best], 0.0, 2.0))
    return [int(pool[c]) for c in chosen]


def deck_impact(model: ServingModel) -> np.ndarray | None:
    """How far a rating of each anime moves a folded-in user (the norm of its row in the
    score encoder); None for models without one."""
    enc = getattr(model, "enc_score", None)
    if enc is None or enc.size == 0:  # the seed model has no score encoder
        return None
    return np.asarray(np.linalg.norm(enc, axis=1).astype(np.float32))


def deck_for(
    model: ServingModel,
    moments: Mapping[int, tuple[int, float, float]],
    allowed: np.ndarray,
    shape: DeckShape = DeckShape(),
) -> list[int]:
    """The deck of a served model: ``moments`` are (count, sum, sum of squares) of each anime's
    scores (:meth:`storage.item_stats.ItemStats.score_moments`)."""
    stats = np.array(
        [moments.get(int(a), (0, 0.0, 0.0)) for a in model.anime_ids], np.float64
    ).reshape(-1, 3)
    spread = spread_from_moments(stats[:, 0], stats[:, 1], stats[:, 2])
    return select_deck(
        model.item_vectors, model.popularity, spread, allowed, shape, deck_impact(model)
    )
