"""Franchise rules over the model's anime order: what discovery lists, /next, /similar and
anime night may show of a series.

Discovery shows an unstarted series once, as its entry point, ranked by its best member;
a series the person is in (anything of it on their list) is left to "continue the series".
All of it is a few vector operations per request over arrays built once per model and graph.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from recommender import franchise_store
from recommender.franchise import Franchise, FranchiseGraph
from recommender.user_entry import Serving
from storage.repository import Store
from storage.rows import Anime

NONE = -1


class Aligned:
    """A franchise graph laid over one model's anime indices."""

    def __init__(self, serving: Serving, graph: FranchiseGraph) -> None:
        index_of = serving.model.index_of
        n = len(serving.model.anime_ids)
        self.serving, self.graph = serving, graph
        self.fid = np.full(n, NONE, dtype=np.int64)  # franchise number per model index
        entries: list[int] = []
        for number, f in enumerate(graph.franchises):
            learned = [index_of[m] for m in f.members if m in index_of]
            self.fid[learned] = number
            start = index_of.get(f.entry)
            # an entry the model never learned: the earliest learned member stands in for it
            entries.append(start if start is not None else (learned[0] if learned else NONE))
        self.entry = np.asarray(entries, dtype=np.int64)  # model index per franchise, or -1
        self.n = len(graph.franchises)
        members = np.flatnonzero(self.fid != NONE)
        self._members = members[np.argsort(self.fid[members], kind="stable")]
        self._starts = np.searchsorted(self.fid[self._members], np.arange(self.n))

    def franchises_of(self, indices: np.ndarray) -> np.ndarray:
        """The franchise numbers of model ``indices`` (stand-alone titles left out)."""
        f = self.fid[np.asarray(indices, dtype=np.int64)]
        return np.unique(f[f != NONE])

    def best(self, rank: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        """Per franchise, the highest ``rank`` among its allowed members (-inf when none)."""
        out = np.full(self.n, -np.inf)
        if self.n == 0 or len(self._members) == 0:
            return out
        values = np.where(allowed[self._members], rank[self._members], -np.inf)
        present = np.unique(self.fid[self._members])
        starts = self._starts[present]
        out[present] = np.maximum.reduceat(values, starts)
        return out

    def discovery(
        self, rank: np.ndarray, allowed: np.ndarray, listed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(rank, allowed) for a discovery list: series the person is in are out; of every
        other series only the entry point may appear, ranked by the series' best member."""
        in_series = self.fid != NONE
        best = self.best(rank, allowed & in_series)
        started = np.zeros(self.n, dtype=bool)
        started[self.franchises_of(listed)] = True
        new_rank = np.array(rank, dtype=np.float64)
        new_allowed = allowed & ~in_series
        ok = (self.entry != NONE) & ~started & np.isfinite(best)
        ok[ok] &= allowed[self.entry[ok]]
        new_rank[self.entry[ok]] = best[ok]
        new_allowed[self.entry[ok]] = True
        return new_rank, new_allowed

    def series_mask(self, index: int) -> np.ndarray:
        """Boolean over model indices: every member of ``index``'s series (itself included)."""
        f = self.fid[index]
        return np.zeros(len(self.fid), dtype=bool) if f == NONE else self.fid == f


class FranchiseView:
    """The recommender's franchise graph (read from storage) and its per-model alignment."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._graph: FranchiseGraph | None = None
        self._aligned: Aligned | None = None
        self._lock = threading.Lock()

    def use_catalog(self, catalog: Sequence[Anime]) -> None:
        """Read the stored graph against a freshly read catalog (at model load)."""
        self._graph = franchise_store.load(self.store, catalog)

    def reload(self) -> None:
        """Read the graph again (after a catalog import rebuilt it)."""
        self._graph = franchise_store.load(self.store)

    def graph(self) -> FranchiseGraph:
        graph = self._graph
        if graph is None:
            with self._lock:
                if self._graph is None:
                    self._graph = franchise_store.load(self.store)
                graph = self._graph
        return graph

    def aligned(self, serving: Serving) -> Aligned:
        found = self._aligned
        graph = self.graph()
        if found is None or found.serving is not serving or found.graph is not graph:
            found = Aligned(serving, graph)
            self._aligned = found
        return found

    def franchise_of(self, anime_id: int) -> Franchise | None:
        return self.graph().franchise_of(anime_id)
