"""The in-process recommender the bot and the CLI call.

Thread safety: everything a request reads hangs off one immutable ``_Serving`` object (the
model, the catalog aligned with it, the filter masks, the cold-start prior). A request takes
that reference once and uses it to the end; :meth:`Recommender.swap` builds a complete new one
and replaces the reference in a single assignment, so calls in flight finish on the old model
and no call ever sees half of each.

Per-user work is cached: a user's fold-in and their rank and predicted-score vectors are kept
(LRU) until :meth:`invalidate` is called, and every request also compares a cheap stamp of the
user's list (row count, latest ``updated_at`` and score sum: one indexed query) so that a
rating written by another path (an import, another process) is never missed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recommender import explain
from recommender.errors import NoModelError, UnknownTitleError
from recommender.filters import ItemTable, top_k
from recommender.group import fair_group_rank
from recommender.scoring import ServingModel, UserState
from recommender.search import TitleIndex
from recommender.types import (
    Filters,
    GroupPick,
    ModelInfo,
    Pick,
    PickPage,
    SimilarPick,
    TitleMatch,
)
from storage.repository import Store
from storage.rows import Anime, Rating

#: List rows with these statuses (and no score) say nothing about taste: they are excluded
#: from recommendations but not folded in ("not interested" would otherwise pull similar
#: anime *up*, as if the user had watched it).
NOT_WATCHED = frozenset({"plan_to_watch", "not_interested", "dropped"})
MAX_ALIAS_CHARS = 200


@dataclass(frozen=True)
class _Serving:
    """Everything one model version needs to answer requests; never mutated."""

    model: ServingModel
    items: ItemTable
    prior: np.ndarray  # float32 [n_items], z-scored: popular and well liked
    info: ModelInfo


@dataclass(frozen=True)
class _UserEntry:
    serving: _Serving  # the model this entry was computed with
    stamp: tuple[int, str | None, float]
    state: UserState
    listed: np.ndarray  # model indices of everything on the user's list
    dropped: np.ndarray  # model indices the user dropped
    rank: np.ndarray  # float32 [n_items]: what picks are ordered by
    predicted: np.ndarray  # float32 [n_items]: 1-10
    favourites: tuple[str, ...]
    n_known: int  # list rows the model knows (0: cold start)
    scored: np.ndarray  # bool per history item: carries a score
    n_scored: int  # list rows with a score
    n_listed: int  # list rows in all
    # model index -> (because titles, their scores): explanations computed so far
    explained: dict[int, tuple[tuple[Anime, ...], tuple[int | None, ...]]] = field(
        default_factory=dict, compare=False
    )


def _z(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    std = x.std()
    return np.asarray(((x - x.mean()) / (std if std > 1e-9 else 1.0)).astype(np.float32))


class Recommender:
    """Personal picks, similar anime, group anime night and title search."""

    def __init__(
        self,
        store: Store,
        checkpoint: Path | str | None = None,
        *,
        misery_threshold: float = 6.0,
        cold_start_shrink: float = 1.0,
        cache_size: int = 1024,
    ) -> None:
        self.store = store
        self.misery_threshold = misery_threshold
        self.cold_start_shrink = cold_start_shrink  # list rows at which the prior weighs 50%
        self._cache_size = cache_size
        self._serving: _Serving | None = None
        self._titles: TitleIndex | None = None
        self._anime_by_id: dict[int, Anime] | None = None
        self._cache: OrderedDict[int, _UserEntry] = OrderedDict()
        self._cold_entry: _UserEntry | None = None
        self._cache_lock = threading.Lock()
        self._swap_lock = threading.Lock()
        self._titles_lock = threading.Lock()
        if checkpoint is not None:
            self.swap(Path(checkpoint))

    # -- model lifecycle -------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self._serving is not None

    def info(self) -> ModelInfo | None:
        serving = self._serving
        return None if serving is None else serving.info

    def swap(self, checkpoint: Path | str) -> ModelInfo:
        """Load ``checkpoint`` and make it the serving model; calls in flight are unaffected.

        Raises ``recommender.checkpoint.CheckpointError`` (and keeps the old model) when the
        file cannot be loaded.
        """
        with self._swap_lock:
            serving = self._build(Path(checkpoint))
            self._serving = serving  # the one atomic step
            with self._cache_lock:
                self._cache.clear()  # entries also carry their model; this just frees memory
            return serving.info

    def _build(self, path: Path) -> _Serving:
        model = ServingModel.load(path)
        catalog = self.store.catalog.all()
        self._anime_by_id = {a.anime_id: a for a in catalog}
        items = ItemTable(model.anime_ids, catalog)
        # cold start: popular (training list rows) and well liked (the zero-history prediction)
        predicted = model.predict(model.fold_in([], []))
        prior = _z(_z(np.log1p(model.popularity)) + _z(predicted))
        info = ModelInfo(
            path=str(path),
            version=model.version,
            trained_at=model.trained_at,
            metrics=dict(model.metrics),
            n_anime=model.n_items,
        )
        return _Serving(model, items, prior, info)

    def _require(self) -> _Serving:
        serving = self._serving
        if serving is None:
            raise NoModelError()
        return serving

    # -- per-user state --------------------------------------------------------------------------
    def invalidate(self, user_id: int) -> None:
        """Forget the cached fold-in of ``user_id`` (call after their ratings changed)."""
        with self._cache_lock:
            self._cache.pop(user_id, None)

    def _entry(self, serving: _Serving, user_id: int) -> _UserEntry:
        stamp = self.store.ratings.stamp(user_id)  # read before the rows: never a stale stamp
        with self._cache_lock:
            entry = self._cache.get(user_id)
            if entry is not None and entry.serving is serving and entry.stamp == stamp:
                self._cache.move_to_end(user_id)
                return entry
        entry = self._compute(serving, user_id, stamp, self.store.ratings.of_user(user_id))
        with self._cache_lock:
            self._cache[user_id] = entry
            self._cache.move_to_end(user_id)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return entry

    def _compute(
        self,
        serving: _Serving,
        user_id: int,
        stamp: tuple[int, str | None, float],
        ratings: Sequence[Rating],
    ) -> _UserEntry:
        model = serving.model
        taste = [r for r in ratings if r.score is not None or r.status not in NOT_WATCHED]
        state = model.fold_in([r.anime_id for r in taste], [r.score for r in taste])
        index_of = model.index_of
        listed = np.array(
            sorted({index_of[r.anime_id] for r in ratings if r.anime_id in index_of}),
            dtype=np.int64,
        )
        dropped = np.array(
            sorted(
                {
                    index_of[r.anime_id]
                    for r in ratings
                    if r.status == "dropped" and r.anime_id in index_of
                }
            ),
            dtype=np.int64,
        )
        predicted = model.predict(state)
        n_known = int(state.history_index.size)
        if n_known == 0:
            rank = serving.prior
        else:
            weight = n_known / (n_known + self.cold_start_shrink)
            rank = (
                weight * _z(model.rank(state, predicted)) + (1.0 - weight) * serving.prior
            ).astype(np.float32)
        favourites = tuple(explain.favourite_genres(self._genre_rows(serving, taste), n=5))
        return _UserEntry(
            serving,
            stamp,
            state,
            listed,
            dropped,
            rank,
            predicted,
            favourites,
            n_known,
            np.isfinite(state.history_scores),
            sum(1 for r in ratings if r.score),
            len(ratings),
        )

    @staticmethod
    def _genre_rows(
        serving: _Serving, ratings: Sequence[Rating]
    ) -> list[tuple[tuple[str, ...], int | None]]:
        rows = []
        for r in ratings:
            i = serving.model.index_of.get(r.anime_id)
            anime = serving.items.anime[i] if i is not None else None
            if anime is not None:
                rows.append((anime.genres, r.score))
        return rows

    # -- personal picks --------------------------------------------------------------------------
    def recommend(self, user_id: int, k: int = 10, filters: Filters | None = None) -> list[Pick]:
        """The user's top ``k`` picks: nothing already on their list, filters applied, refilled
        to ``k``; each with its predicted score and a short reason."""
        return list(self.recommend_page(user_id, k, filters).picks)

    def recommend_page(
        self, user_id: int | None, k: int = 10, filters: Filters | None = None, offset: int = 0
    ) -> PickPage:
        """Picks ``offset + 1`` to ``offset + k`` of :meth:`recommend`, and the list's size.

        Later pages reuse the user's cached fold-in and ranking; only the page's own picks are
        explained. ``user_id`` None is someone with no list at all (no query is made).
        """
        serving = self._require()
        entry = self._cold(serving) if user_id is None else self._entry(serving, user_id)
        allowed = serving.items.mask(filters).copy()
        allowed[entry.listed] = False
        picks = top_k(entry.rank, allowed, offset + k)[offset:]
        steer = tuple(sorted(filters.include_genres)) if filters else ()
        self._explain(serving, entry, picks)
        return PickPage(
            tuple(self._pick(serving, entry, int(i), steer) for i in picks),
            offset,
            entry.n_scored,
            entry.n_listed,
        )

    def _cold(self, serving: _Serving) -> _UserEntry:
        """The entry of a person with an empty list (computed once per model)."""
        cold = self._cold_entry
        if cold is None or cold.serving is not serving:
            cold = self._cold_entry = self._compute(serving, -1, (0, None, 0.0), [])
        return cold

    def _pick(
        self, serving: _Serving, entry: _UserEntry, index: int, steer: tuple[str, ...]
    ) -> Pick:
        anime = serving.items.anime[index]
        assert anime is not None  # the filter mask excludes anime missing from the catalog
        because, scores = self._because(serving, entry, index)
        genres = tuple(g for g in entry.favourites if g in anime.genres)[:3]
        reason = explain.sentence(
            [(a.title, s) for a, s in zip(because, scores, strict=True)],
            genres,
            cold=entry.n_known == 0,
            steered=steer,
        )
        return Pick(
            anime=anime,
            predicted_score=round(float(entry.predicted[index]), 2),
            rank_score=float(entry.rank[index]),
            because=because,
            genres=genres,
            reason=reason,
        )

    def _because(
        self, serving: _Serving, entry: _UserEntry, index: int
    ) -> tuple[tuple[Anime, ...], tuple[int | None, ...]]:
        """The rated titles that pushed ``index`` up most (memoised per user entry)."""
        known = entry.explained.get(index)
        if known is None:
            self._explain(serving, entry, np.array([index], dtype=np.int64))
            known = entry.explained[index]
        return known

    @staticmethod
    def _explain(serving: _Serving, entry: _UserEntry, indices: np.ndarray) -> None:
        """Work out (in one batch) and memoise the reasons for the picks not yet explained."""
        todo = np.array(
            [i for i in dict.fromkeys(int(i) for i in indices) if i not in entry.explained],
            dtype=np.int64,
        )
        if todo.size == 0:
            return
        state = entry.state
        if state.history_index.size == 0:
            for index in todo:
                entry.explained[int(index)] = ((), ())
            return
        contrib = serving.model.contributions_many(state, todo)
        # Name titles the user rated at least as well as usual: "because you liked X" should
        # never point at something they scored 3/10.
        hs = state.history_scores
        usual = min(float(np.nanmean(hs)), explain.LIKED) if entry.scored.any() else 0.0
        liked = entry.scored & (np.nan_to_num(hs, nan=-np.inf) >= usual)
        for row, index in zip(contrib, todo, strict=True):
            titles: list[Anime] = []
            scores: list[int | None] = []
            for pos in explain.top_contributors(row, liked):
                source = serving.items.anime[int(state.history_index[pos])]
                if source is not None:
                    titles.append(source)
                    score = hs[pos]
                    scores.append(round(float(score)) if np.isfinite(score) else None)
            entry.explained[int(index)] = (tuple(titles), tuple(scores))

    def predict(self, user_id: int, anime_id: int) -> float:
        """The user's predicted score (1-10) for one anime.

        An anime the model has not learned (in the catalog, never rated in training) gets its
        MyAnimeList mean (or, without one, the mean of the user's predictions).
        """
        serving = self._require()
        entry = self._entry(serving, user_id)
        i = serving.model.index_of.get(int(anime_id))
        if i is not None:
            return float(entry.predicted[i])
        anime = self._catalog_anime(anime_id)
        lo, hi = serving.model.score_range
        if anime.mal_score is None:
            return float(np.mean(entry.predicted))
        return float(np.clip(anime.mal_score, lo, hi))

    def because(self, user_id: int, anime_id: int) -> tuple[Anime, ...]:
        """The titles this user liked that pushed ``anime_id`` up most (empty when none), so a
        group pick can say why for each member."""
        serving = self._require()
        index = serving.model.index_of.get(int(anime_id))
        if index is None:
            return ()
        return self._because(serving, self._entry(serving, user_id), index)[0]

    def favourite_genres(self, user_id: int, n: int = 3) -> list[str]:
        """The user's favourite genres from their list (no model needed)."""
        catalog = self._catalog()
        rows = [
            (catalog[r.anime_id].genres, r.score)
            for r in self.store.ratings.of_user(user_id)
            if r.anime_id in catalog and (r.score is not None or r.status not in NOT_WATCHED)
        ]
        return explain.favourite_genres(rows, n)

    # -- similar anime ---------------------------------------------------------------------------
    def similar(
        self, anime_id: int, k: int = 10, filters: Filters | None = None
    ) -> list[SimilarPick]:
        """Nearest anime in the learned space; shared genres break near-ties.

        An anime the model has not learned falls back to genre overlap (Jaccard), with
        popularity breaking ties.
        """
        serving = self._require()
        items = serving.items
        allowed = items.mask(filters).copy()
        i = serving.model.index_of.get(int(anime_id))
        if i is not None:
            target = items.genres[i]
            vectors = serving.model.item_vectors
            similarity = vectors @ vectors[i]
            score = similarity + 0.02 * _jaccard(items.genres, target)
            allowed[i] = False
        else:
            anime = self._catalog_anime(anime_id)
            target = np.zeros(items.genres.shape[1], dtype=bool)
            for g in anime.genres:
                target[items.genre_column(g)] = True
            similarity = _jaccard(items.genres, target)
            score = similarity + 0.01 * np.log10(1.0 + items.members) / 7.0
        picks = []
        for j in top_k(score.astype(np.float32), allowed, k):
            other = items.anime[int(j)]
            assert other is not None
            shared = tuple(g for g in other.genres if target[items.genre_column(g)])
            picks.append(SimilarPick(other, round(float(similarity[j]), 4), shared))
        return picks

    # -- anime night -----------------------------------------------------------------------------
    def anime_night(
        self, member_ids: Sequence[int], k: int = 5, filters: Filters | None = None
    ) -> list[GroupPick]:
        """Picks for a group: nobody has them on their list, nobody is predicted to dislike
        them (misery veto), ordered by the group's average and re-ranked so that every member
        is served (GFAR). Each pick carries every member's predicted score."""
        serving = self._require()
        members = list(dict.fromkeys(int(m) for m in member_ids))
        utility, predicted, allowed = self._group_matrices(serving, members, filters)
        order, served, _ = fair_group_rank(utility, predicted, allowed, k, self.misery_threshold)
        picks = []
        for item, slot in zip(order, served, strict=True):
            anime = serving.items.anime[int(item)]
            assert anime is not None
            scores = {m: round(float(predicted[p, item]), 2) for p, m in enumerate(members)}
            picks.append(
                GroupPick(
                    anime,
                    scores,
                    round(float(predicted[:, item].mean()), 2),
                    tuple(members[p] for p in slot),
                )
            )
        return picks

    def group_matrices(
        self, member_ids: Sequence[int], filters: Filters | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Anime | None]]:
        """What :meth:`anime_night` ranks from, for evaluating other group aggregators on the
        same footing: (utility [m x n], predicted 1-10 [m x n], allowed [n], anime per index)."""
        serving = self._require()
        members = list(dict.fromkeys(int(m) for m in member_ids))
        utility, predicted, allowed = self._group_matrices(serving, members, filters)
        return utility, predicted, allowed, serving.items.anime

    def _group_matrices(
        self, serving: _Serving, members: list[int], filters: Filters | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not members:
            raise ValueError("an anime night needs at least one member")
        entries = [self._entry(serving, m) for m in members]
        allowed = serving.items.mask(filters).copy()
        for e in entries:
            allowed[e.listed] = False  # seen, unscored, planned, not interested...
            allowed[e.dropped] = False  # ...and dropped, a veto in its own right
        return (
            np.stack([e.rank for e in entries]),
            np.stack([e.predicted for e in entries]),
            allowed,
        )

    # -- titles ----------------------------------------------------------------------------------
    def titles(self) -> TitleIndex:
        """The title index, built on first use from the catalog and the stored aliases."""
        index = self._titles
        if index is None:
            with self._titles_lock:
                if self._titles is None:
                    self._titles = TitleIndex(
                        self.store.catalog.all(), self.store.catalog.aliases()
                    )
                index = self._titles
        return index

    def reload_titles(self) -> None:
        """Rebuild the title index (after a catalog or alias import)."""
        catalog = self.store.catalog.all()
        self._anime_by_id = {a.anime_id: a for a in catalog}
        with self._titles_lock:
            self._titles = TitleIndex(catalog, self.store.catalog.aliases())

    def search(self, text: str, limit: int = 10, nsfw: bool = False) -> list[TitleMatch]:
        return self.titles().search(text, limit, nsfw)

    def resolve_title(self, text: str, nsfw: bool = True) -> Anime:
        return self.titles().resolve(text, nsfw)

    def add_alias(self, alias: str, anime_id: int, source: str = "chat") -> None:
        """Teach the search another name for an anime (stored, and live at once)."""
        alias = " ".join(alias.split())
        if not alias:
            raise ValueError("an alias cannot be empty")
        if len(alias) > MAX_ALIAS_CHARS:
            raise ValueError(f"an alias can be at most {MAX_ALIAS_CHARS} characters")
        self._catalog_anime(anime_id)
        self.store.catalog.add_aliases([(alias, int(anime_id))], source)
        with self._titles_lock:
            if self._titles is not None:
                self._titles = self._titles.with_aliases([(alias, int(anime_id))])

    # -- catalog helpers -------------------------------------------------------------------------
    def _catalog(self) -> dict[int, Anime]:
        catalog = self._anime_by_id
        if catalog is None:
            catalog = {a.anime_id: a for a in self.store.catalog.all()}
            self._anime_by_id = catalog
        return catalog

    def _catalog_anime(self, anime_id: int) -> Anime:
        anime = self._catalog().get(int(anime_id))
        if anime is None:
            raise UnknownTitleError(str(anime_id))
        return anime


def _jaccard(matrix: np.ndarray, target: np.ndarray) -> np.ndarray:
    inter = (matrix & target).sum(axis=1)
    union = (matrix | target).sum(axis=1)
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)
