"""The in-process recommender the bot and the CLI call.

Thread safety: everything a request reads hangs off one immutable ``Serving`` object (the
model, the catalog aligned with it, the filter masks, the cold-start prior). A request takes
that reference once and uses it to the end; :meth:`Recommender.swap` builds a complete new one
and replaces the reference in a single assignment, so calls in flight finish on the old model
and no call ever sees half of each.

Per-user work (fold-in, rank and predicted scores) is cached in :mod:`recommender.entries`.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np

from recommender import explain, onboarding, taste
from recommender.candidates import rank_titles
from recommender.english import Renamer
from recommender.entries import EntryCache
from recommender.errors import NoModelError
from recommender.franchise import FranchiseGraph
from recommender.franchise_picks import (
    FranchiseView,
    discovery_picks,
    next_picks,
    ranked_picks,
)
from recommender.growth import grow, grown_serving
from recommender.night import group_matrices, night_picks
from recommender.scoring import ServingModel
from recommender.search import TitleIndex
from recommender.similar import similar_picks
from recommender.titles import Titles
from recommender.types import (
    Filters,
    GroupPick,
    ModelInfo,
    Pick,
    PickPage,
    SimilarPick,
    TitleMatch,
)
from recommender.user_entry import (
    NOT_WATCHED,
    FranchiseMembers,
    Serving,
    UserEntry,
    build_serving,
    compute_entry,
    explain_picks,
    pick_of,
    vetoed_ids,
)
from recommender.user_entry import because as explained_by
from storage.repository import Store
from storage.rows import Anime, Rating


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
        franchise_members: FranchiseMembers | None = None,
    ) -> None:
        self.store = store
        self.misery_threshold = misery_threshold
        # a drop vetoes the title's whole series: the catalog's franchises unless told otherwise
        self._entries = EntryCache(
            store, franchise_members or self._series_members, cold_start_shrink, cache_size
        )
        self._serving: Serving | None = None
        self._titles = Titles(store)
        self._franchises = FranchiseView(store)
        self._decks: dict[bool, tuple[Serving, list[Anime]]] = {}
        self._decks_lock = threading.Lock()
        self._swap_lock = threading.Lock()
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
            self._entries.clear()  # entries also carry their model; this just frees memory
            return serving.info

    def _build(self, path: Path) -> Serving:
        catalog = self.store.catalog.all()
        self._titles.use_catalog(catalog)
        self._franchises.use_catalog(catalog)
        # new titles lean on trained titles of their own series
        model = grow(ServingModel.load(path), catalog, self._series_members)
        info = ModelInfo(
            path=str(path),
            version=model.version,
            trained_at=model.trained_at,
            metrics=dict(model.metrics),
            n_anime=model.n_items,
        )
        return build_serving(model, catalog, info)

    def refresh_catalog(self) -> int:
        """After a catalog import: rebuild the title index and give the titles the serving
        model has no vector for content vectors, without a retrain. Returns how many joined."""
        self._titles.reload()
        self._franchises.reload()
        with self._swap_lock:
            old = self._serving
            if old is None:
                return 0
            self._serving = grown_serving(old, self.store.catalog.all(), self._series_members)
            self._entries.clear()
            return self._serving.model.n_items - old.model.n_items

    def _require(self) -> Serving:
        serving = self._serving
        if serving is None:
            raise NoModelError()
        return serving

    # -- per-user state --------------------------------------------------------------------------
    def set_franchise(self, franchise_members: FranchiseMembers | None) -> None:
        """Use another franchise map (a drop vetoes the dropped title's whole franchise)."""
        self._entries.use_franchise(franchise_members or self._series_members)

    def invalidate(self, user_id: int) -> None:
        """Forget the cached fold-in of ``user_id`` (call after their ratings changed)."""
        self._entries.invalidate(user_id)

    def _entry(self, serving: Serving, user_id: int) -> UserEntry:
        return self._entries.get(serving, user_id)

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
        return self._page(serving, entry, k, filters, offset)

    def recommend_for(
        self,
        ratings: Sequence[Rating],
        k: int = 10,
        filters: Filters | None = None,
        candidates: Collection[int] | None = None,
    ) -> list[Pick]:
        """:meth:`recommend` for a person known only by ``ratings`` (nothing read, stored or
        cached): the same fold-in, blend, filters and exclusions. With ``candidates`` only
        those anime ids may be picked (ids the model has not learned never are)."""
        serving = self._require()
        entry = compute_entry(
            serving,
            (len(ratings), None, 0.0),
            ratings,
            self._entries.cold_start_shrink,
            franchise=self._entries.franchise,
        )
        return list(self._page(serving, entry, k, filters, 0, candidates).picks)

    def _page(
        self,
        serving: Serving,
        entry: UserEntry,
        k: int,
        filters: Filters | None,
        offset: int,
        candidates: Collection[int] | None = None,
    ) -> PickPage:
        series = self._franchises.aligned(serving)
        if candidates is None:
            picks = ranked_picks(entry, series, filters, offset + k)[offset:]
        else:
            picks = discovery_picks(entry, series, filters, offset + k, candidates)[offset:]
        steer = tuple(sorted(filters.include_genres)) if filters else ()
        explain_picks(serving, entry, picks)
        return PickPage(
            tuple(pick_of(serving, entry, int(i), steer) for i in picks),
            offset,
            entry.n_scored,
            entry.n_listed,
        )

    def _cold(self, serving: Serving) -> UserEntry:
        return self._entries.cold(serving)

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
        anime = self._titles.anime(anime_id)
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
        return explained_by(serving, self._entry(serving, user_id), index)[0]

    def favourite_genres(self, user_id: int, n: int = 3) -> list[str]:
        """The user's favourite genres from their list (no model needed)."""
        catalog = self._titles.by_id()
        rows = [
            (catalog[r.anime_id].genres, r.score)
            for r in self.store.ratings.of_user(user_id)
            if r.anime_id in catalog and (r.score is not None or r.status not in NOT_WATCHED)
        ]
        return explain.favourite_genres(rows, n)

    # -- taste between people and the onboarding deck -----------------------------------------
    def taste_vector(self, user_id: int) -> np.ndarray:
        """The user's folded-in rating vector (float32 [d]; zeros for an empty list)."""
        state = self._entry(self._require(), user_id).state
        vector = state.vector if state.delta is None else state.vector + state.delta
        return np.asarray(vector, dtype=np.float32)

    def compatibility(self, a: int, b: int) -> taste.Compatibility:
        """How well users ``a`` and ``b`` match (0-100), with the titles behind it."""
        serving = self._require()
        ea, eb = self._entry(serving, a), self._entry(serving, b)
        side = taste.Side(ea.predicted, ea.listed, ea.n_known, self._scores(a))
        other = taste.Side(eb.predicted, eb.listed, eb.n_known, self._scores(b))
        return taste.between(serving.model, serving.items.anime, side, other, self._titles.by_id())

    def _scores(self, user_id: int) -> dict[int, int]:
        return {r.anime_id: r.score for r in self.store.ratings.of_user(user_id) if r.score}

    def onboarding_deck(self, n: int = 10, nsfw: bool = False) -> list[Anime]:
        """The titles a new person is asked first (see :mod:`recommender.onboarding`); one
        scan of the ratings per model, on first use."""
        serving = self._require()
        with self._decks_lock:
            cached = self._decks.get(nsfw)
        if cached is None or cached[0] is not serving:
            moments = self.store.item_stats.score_moments()
            allowed = serving.items.mask(Filters(nsfw=nsfw))
            chosen = onboarding.deck_for(serving.model, moments, allowed)
            cached = (serving, [a for a in (serving.items.anime[i] for i in chosen) if a])
            with self._decks_lock:
                self._decks[nsfw] = cached
        return cached[1][:n]

    # -- similar anime and series ----------------------------------------------------------------
    def similar(
        self,
        anime_id: int,
        k: int = 10,
        filters: Filters | None = None,
        user_id: int | None = None,
    ) -> list[SimilarPick]:
        """Nearest anime in the learned space (see :mod:`recommender.similar`), none of them of
        ``anime_id``'s own series (:meth:`franchises` names those) and every other series
        at most once, as its entry point; for ``user_id``, never what they dropped nor the rest
        of its franchise."""
        serving = self._require()
        own = np.isin(serving.model.anime_ids, self._franchises.graph().relatives(anime_id))
        rerank = self._franchises.aligned(serving).once_each
        anime = self._titles.anime(anime_id)
        if user_id is None:
            return similar_picks(serving, anime, k, filters, own, rerank)
        vetoed = vetoed_ids(self.store.ratings.of_user(user_id), self._entries.franchise)
        found = similar_picks(serving, anime, k + len(vetoed), filters, own, rerank)
        return [p for p in found if p.anime.anime_id not in vetoed][:k]

    def next_up(self, user_id: int, k: int = 5, filters: Filters | None = None) -> list[Pick]:
        """ "Continue the series": for each series the user has watched some of, the next
        unseen entry in watch order; the best ``k`` by predicted score."""
        serving = self._require()
        entry = self._entry(serving, user_id)
        ratings = self.store.ratings.of_user(user_id)
        graph, catalog = self._franchises.graph(), self._titles.by_id()
        return next_picks(serving, entry.predicted, graph, ratings, catalog, filters, k)

    # -- a given set of titles: a plan-to-watch list, a season ----------------------------------
    def rank_titles(
        self,
        user_id: int | None,
        anime_ids: Collection[int],
        filters: Filters | None = None,
        by: str = "rank",
    ) -> list[Pick]:
        """``anime_ids`` ordered for the user (see :mod:`recommender.candidates`): titles the
        model knows by ``by`` ("rank" or "predicted"), then the rest by genre profile; what
        they dropped (and its franchise) and what the filters refuse is left out."""
        serving = self._require()
        entry = self._cold(serving) if user_id is None else self._entry(serving, user_id)
        vetoed: set[int] = set()
        if user_id is not None:
            vetoed = vetoed_ids(self.store.ratings.of_user(user_id), self._entries.franchise)
        known, unknown = rank_titles(
            serving, entry, self._titles.by_id(), anime_ids, filters, by, vetoed
        )
        explain_picks(serving, entry, known)
        return [pick_of(serving, entry, int(i)) for i in known] + unknown

    # -- anime night -----------------------------------------------------------------------------
    def anime_night(
        self,
        member_ids: Sequence[int],
        k: int = 5,
        filters: Filters | None = None,
        candidates: Collection[int] | None = None,
    ) -> list[GroupPick]:
        """Picks for a group: nobody has them on their list, nobody is predicted to dislike
        them (misery veto), ordered by the group's average and re-ranked so that every member
        is served (GFAR). Each pick carries every member's predicted score. With
        ``candidates`` only those anime ids may be picked (a season's titles)."""
        serving = self._require()
        members = list(dict.fromkeys(int(m) for m in member_ids))
        entries = [self._entry(serving, m) for m in members]
        series = self._franchises.aligned(serving)
        return night_picks(
            serving, members, entries, k, filters, self.misery_threshold, series, candidates
        )

    def group_matrices(
        self, member_ids: Sequence[int], filters: Filters | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Anime | None]]:
        """What :meth:`anime_night` ranks from, for evaluating other group aggregators on the
        same footing: (utility [m x n], predicted 1-10 [m x n], allowed [n], anime per index)."""
        serving = self._require()
        members = list(dict.fromkeys(int(m) for m in member_ids))
        entries = [self._entry(serving, m) for m in members]
        series = self._franchises.aligned(serving)
        utility, predicted, allowed = group_matrices(serving, entries, filters, series)
        return utility, predicted, allowed, serving.items.anime

    # -- titles ----------------------------------------------------------------------------------
    def titles(self) -> TitleIndex:
        """The title index, built on first use from the catalog and the stored aliases."""
        return self._titles.index()

    def english_titles(self) -> tuple[dict[int, str], Renamer]:
        """anime id -> English title (where an alias is one), and a renamer for text; rebuilt
        whenever the title index is (an alias import)."""
        return self._titles.english()

    def english_titles_ready(self) -> tuple[dict[int, str], Renamer] | None:
        """:meth:`english_titles` when already worked out for the current index, else None:
        cheap enough for the event loop (no index build, no I/O)."""
        return self._titles.english_ready()

    def reload_titles(self) -> None:
        """Rebuild the title index and reread the franchises (after a catalog or alias
        import)."""
        self._titles.reload()
        self._franchises.reload()
        self._entries.clear()  # entries carry the vetoes of the old franchises

    def _series_members(self, anime_id: int) -> tuple[int, ...]:
        return self._franchises.graph().relatives(anime_id)

    def franchises(self) -> FranchiseGraph:
        """The catalog's franchises (see :mod:`recommender.franchise`); no model needed."""
        return self._franchises.graph()

    def search(self, text: str, limit: int = 10, nsfw: bool = False) -> list[TitleMatch]:
        return self._titles.search(text, limit, nsfw)

    def resolve_title(self, text: str, nsfw: bool = True) -> Anime:
        return self._titles.resolve(text, nsfw)

    def add_alias(self, alias: str, anime_id: int, source: str = "chat") -> None:
        """Teach the search another name for an anime (stored, and live at once)."""
        self._titles.add_alias(alias, anime_id, source)
