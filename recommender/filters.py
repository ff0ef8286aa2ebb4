"""What may be shown: genre, type, popularity and NSFW filters as boolean masks over the model's
anime, built once per model load (one vector operation per filter at request time).

Filtering is applied before the top-k is taken, so a filtered list is always refilled to k from
the next-best anime that pass (unless fewer than k pass at all).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from recommender.types import Filters
from storage.rows import Anime


class FilterError(ValueError):
    """A filter naming a genre or type that the catalog does not have."""


class ItemTable:
    """Catalog facts aligned with the model's anime order (index i = model index i)."""

    def __init__(self, anime_ids: np.ndarray, catalog: Sequence[Anime], cache_size: int = 128):
        by_id = {a.anime_id: a for a in catalog}
        n = len(anime_ids)
        self.anime: list[Anime | None] = [by_id.get(int(i)) for i in anime_ids]
        self.in_catalog = np.array([a is not None for a in self.anime], dtype=bool)
        names = sorted({g for a in catalog for g in a.genres})
        self.genre_names: list[str] = names
        self._genre_col = {g.casefold(): j for j, g in enumerate(names)}
        self.genres = np.zeros((n, len(names)), dtype=bool)
        for i, a in enumerate(self.anime):
            if a is not None:
                for g in a.genres:
                    self.genres[i, self._genre_col[g.casefold()]] = True
        self._types = {t.casefold(): t for t in {a.type for a in catalog if a.type}}
        self.type_of = np.array(
            [(a.type or "").casefold() if a else "" for a in self.anime], dtype=object
        )
        self.members = np.array([a.members if a else 0 for a in self.anime], dtype=np.int64)
        self.nsfw = np.array([a.nsfw if a else False for a in self.anime], dtype=bool)
        self.mal_score = np.array(
            [a.mal_score if a and a.mal_score is not None else np.nan for a in self.anime],
            dtype=np.float32,
        )
        self._cache: OrderedDict[Filters, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.anime)

    def genre_column(self, name: str) -> int:
        try:
            return self._genre_col[name.casefold()]
        except KeyError:
            raise FilterError(
                f"unknown genre {name!r}; known genres: {', '.join(self.genre_names)}"
            ) from None

    def genre_mask(self, names: frozenset[str] | set[str]) -> np.ndarray:
        """Anime having any of ``names``."""
        cols = [self.genre_column(g) for g in names]
        if not cols:
            return np.zeros(len(self), dtype=bool)
        return np.asarray(self.genres[:, cols].any(axis=1))

    def mask(self, filters: Filters | None) -> np.ndarray:
        """Boolean [n_items]: anime that may be shown under ``filters`` (read-only, cached)."""
        filters = filters or Filters()
        with self._lock:
            cached = self._cache.get(filters)
            if cached is not None:
                self._cache.move_to_end(filters)
                return cached
        allowed = self.in_catalog.copy()
        if not filters.nsfw:
            allowed &= ~self.nsfw
        if filters.include_genres:
            allowed &= self.genre_mask(filters.include_genres)
        if filters.exclude_genres:
            allowed &= ~self.genre_mask(filters.exclude_genres)
        if filters.types:
            wanted = set()
            for t in filters.types:
                if t.casefold() not in self._types:
                    raise FilterError(
                        f"unknown type {t!r}; known types: "
                        f"{', '.join(sorted(self._types.values()))}"
                    )
                wanted.add(t.casefold())
            allowed &= np.isin(self.type_of, list(wanted))
        if filters.min_members > 0:
            allowed &= self.members >= filters.min_members
        allowed.setflags(write=False)
        with self._lock:
            self._cache[filters] = allowed
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return allowed


def top_k(scores: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest ``scores`` among ``allowed`` (a bool mask), best first.

    Ties, also at the k-th place, go to the lower index, so results are deterministic; NaN
    counts as the lowest score. Fewer than ``k`` when fewer are allowed. A partition then a
    sort of the k best only: O(n + k log k).
    """
    candidates = np.flatnonzero(allowed)
    if k <= 0 or len(candidates) == 0:
        return np.empty(0, dtype=np.int64)
    values = np.asarray(scores, dtype=np.float64)[candidates]
    values = np.where(np.isnan(values), -np.inf, values)
    if len(candidates) > k:
        # everything tied with the k-th best is kept, so the index decides ties below
        kth = np.partition(values, values.size - k)[values.size - k]
        keep = values >= kth
        candidates, values = candidates[keep], values[keep]
    order = np.lexsort((candidates, -values))[:k]
    return candidates[order].astype(np.int64)
