"""Franchise rules over the model's anime order: what discovery lists, /next, /similar and
anime night may show of a series.

Discovery shows an unstarted series once, as its entry point, ranked by its best member;
a series the person is in (anything of it on their list) is left to "continue the series".
All of it is a few vector operations per request over arrays built once per model and graph.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence

import numpy as np

from recommender import franchise_store
from recommender.filters import top_k
from recommender.franchise import Franchise, FranchiseGraph
from recommender.types import Filters, Pick
from recommender.user_entry import Serving, UserEntry
from storage.repository import Store
from storage.rows import Anime, Rating

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
        # franchises with a learned member, and where each one's run starts in _members
        self._present = np.unique(self.fid[self._members])
        self._present_starts = np.searchsorted(self.fid[self._members], self._present)

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
        out[self._present] = np.maximum.reduceat(values, self._present_starts)
        return out

    def discovery(
        self,
        rank: np.ndarray,
        allowed: np.ndarray,
        listed: np.ndarray,
        keep: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(rank, allowed) for a discovery list: series the person is in are out; of every
        other series only the entry point may appear, ranked by the series' best member.
        ``keep`` (model indices, e.g. :meth:`next_entries`) stay as they were."""
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
        if keep is not None and len(keep):
            new_allowed[keep] = allowed[keep]
        return new_rank, new_allowed

    def next_entries(self, listed: np.ndarray) -> np.ndarray:
        """Model indices of the next unseen entry of every series with something in
        ``listed`` (the series' own watch order; entries the model has not learned skipped)."""
        ids = self.serving.model.anime_ids
        index_of = self.serving.model.index_of
        seen = {int(a) for a in ids[np.asarray(listed, dtype=np.int64)]}
        out = []
        for number in self.franchises_of(listed).tolist():
            f = self.graph.franchises[number]
            following = self.graph.next_unseen(f, seen & set(f.members))
            if following is not None and following in index_of:
                out.append(index_of[following])
        return np.asarray(out, dtype=np.int64)

    def once_each(self, score: np.ndarray, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`discovery` for someone who has started nothing (each series once, as its
        entry point); for /similar, whose own series the caller has already masked out."""
        return self.discovery(score, allowed, np.empty(0, dtype=np.int64))

    def series_mask(self, index: int) -> np.ndarray:
        """Boolean over model indices: every member of ``index``'s series (itself included)."""
        f = self.fid[index]
        return np.zeros(len(self.fid), dtype=bool) if f == NONE else self.fid == f


#: filter sets whose ranked lists one user entry keeps
RANKED_PER_ENTRY = 16


def discovery_picks(
    entry: UserEntry,
    series: Aligned,
    filters: Filters | None,
    n: int,
    candidates: Collection[int] | None = None,
) -> np.ndarray:
    """The top ``n`` model indices of ``entry``'s discovery list: nothing listed or vetoed,
    ``filters`` and the franchise rules applied, only ``candidates`` when given."""
    serving = entry.serving
    allowed = serving.items.mask(filters).copy()
    allowed[entry.listed] = False
    allowed[entry.dropped] = False  # and the rest of each dropped title's franchise
    if candidates is not None:
        allowed &= np.isin(serving.model.anime_ids, np.fromiter(candidates, np.int64))
    rank, allowed = series.discovery(entry.rank, allowed, entry.listed)
    return top_k(rank, allowed, n)


def ranked_picks(entry: UserEntry, series: Aligned, filters: Filters | None, n: int) -> np.ndarray:
    """:func:`discovery_picks` memoised on the entry: a shorter list is a prefix of a longer
    one (ties go to the lower index), so the longest worked out so far under ``filters`` and
    ``series`` answers every page within it."""
    known = entry.ranked.get(filters)
    if known is not None and known[0] is series and known[1] >= n:
        return known[2][:n]
    picks = discovery_picks(entry, series, filters, n)
    if len(entry.ranked) >= RANKED_PER_ENTRY:
        entry.ranked.clear()
    entry.ranked[filters] = (series, n, picks)
    return picks


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


#: List statuses that do not mean "watched" (a planned title is still to come).
_NOT_SEEN = frozenset({"plan_to_watch"})
_NOT_WATCHED = frozenset({"plan_to_watch", "not_interested", "dropped"})


def continue_series(
    graph: FranchiseGraph, ratings: Sequence[Rating]
) -> list[tuple[int, Franchise]]:
    """(next anime id, its franchise) for every series the person has watched something of:
    the next unseen entry in watch order. A series with anything dropped is left out."""
    watched = {r.anime_id for r in ratings if r.score is not None or r.status not in _NOT_WATCHED}
    seen = {r.anime_id for r in ratings if r.score is not None or r.status not in _NOT_SEEN}
    dropped = {r.anime_id for r in ratings if r.status == "dropped"}
    out: list[tuple[int, Franchise]] = []
    done: set[int] = set()
    for anime_id in sorted(watched):
        f = graph.franchise_of(anime_id)
        if f is None or f.id in done:
            continue
        done.add(f.id)
        if dropped.intersection(f.members):
            continue
        following = graph.next_unseen(f, seen & set(f.members))
        if following is not None:
            out.append((following, f))
    return out


def next_picks(
    serving: Serving,
    predicted: np.ndarray,
    graph: FranchiseGraph,
    ratings: Sequence[Rating],
    catalog: Mapping[int, Anime],
    filters: Filters | None,
    k: int,
) -> list[Pick]:
    """The ``k`` best "continue the series" picks by predicted score (``predicted`` is the
    person's, over the model's anime). A title the model has not learned yet (a new season)
    is scored by its MyAnimeList mean."""
    allowed = serving.items.mask(filters)
    index_of = serving.model.index_of
    lo, hi = serving.model.score_range
    fallback = float(np.mean(predicted)) if len(predicted) else lo
    scored: list[tuple[float, int, Franchise]] = []
    for anime_id, f in continue_series(graph, ratings):
        i = index_of.get(anime_id)
        if i is not None:
            if not allowed[i]:
                continue
            score = float(predicted[i])
        else:
            a = catalog.get(anime_id)
            if a is None or (a.nsfw and not (filters and filters.nsfw)):
                continue
            score = fallback if a.mal_score is None else float(np.clip(a.mal_score, lo, hi))
        scored.append((score, anime_id, f))
    scored.sort(key=lambda t: (-t[0], t[1]))
    picks = []
    for score, anime_id, f in scored[:k]:
        seen = {r.anime_id for r in ratings} & set(f.members)
        reason = f"next in {f.name} (you have {len(seen)} of its {len(f.members)} titles listed)"
        picks.append(Pick(catalog[anime_id], round(score, 2), score, reason=reason))
    return picks
