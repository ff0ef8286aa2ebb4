"""Anime like a given one: nearest in the learned item space, shared genres breaking near-ties;
a title the model has not learned falls back to genre overlap with popularity breaking ties."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from recommender.filters import top_k
from recommender.scoring import matvec
from recommender.types import Filters, SimilarPick
from recommender.user_entry import Serving
from storage.rows import Anime

#: (score, allowed) -> (score, allowed), over the model's anime.
Rerank = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def similar_picks(
    serving: Serving,
    anime: Anime,
    k: int = 10,
    filters: Filters | None = None,
    exclude: np.ndarray | None = None,
    rerank: Rerank | None = None,
) -> list[SimilarPick]:
    """The ``k`` anime most like ``anime`` under ``serving``, ``filters`` applied, none where
    ``exclude`` (bool over the model's anime, e.g. ``anime``'s own series) is set; ``rerank``
    may then rewrite (score, allowed), e.g. to show each other series once."""
    items = serving.items
    allowed = items.mask(filters).copy()
    if exclude is not None:
        allowed &= ~exclude
    i = serving.model.index_of.get(anime.anime_id)
    if i is not None:
        target = items.genres[i]
        vectors = serving.model.item_vectors
        similarity = matvec(vectors, vectors[i])
        score = similarity + 0.02 * jaccard(items.genres, target)
        allowed[i] = False
    else:
        target = np.zeros(items.genres.shape[1], dtype=bool)
        for g in anime.genres:
            target[items.genre_column(g)] = True
        similarity = jaccard(items.genres, target)
        score = similarity + 0.01 * np.log10(1.0 + items.members) / 7.0
    if rerank is not None:
        score, allowed = rerank(score, allowed)
    picks = []
    for j in top_k(score.astype(np.float32), allowed, k):
        other = items.anime[int(j)]
        assert other is not None
        shared = tuple(g for g in other.genres if target[items.genre_column(g)])
        picks.append(SimilarPick(other, round(float(similarity[j]), 4), shared))
    return picks


def jaccard(matrix: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Genre overlap of every row of ``matrix`` (bool, anime x genre) with ``target``."""
    inter = (matrix & target).sum(axis=1)
    union = (matrix | target).sum(axis=1)
    return np.asarray(np.where(union > 0, inter / np.maximum(union, 1), 0.0))
