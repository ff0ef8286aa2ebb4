"""One person's cached state under one model: fold-in, rank and predicted vectors, reasons.

:class:`Serving` is everything one model version needs to answer requests (immutable);
:class:`UserEntry` is what a person's list becomes under it. The recommender caches entries
per user and swaps ``Serving`` objects atomically; this module only computes them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from recommender import explain
from recommender.filters import ItemTable
from recommender.scoring import ServingModel, UserState
from recommender.steering import NO_STEERING, LessLike, push_down
from recommender.types import Filters, ModelInfo, Pick
from storage.rows import Anime, Rating

#: List rows with these statuses (and no score) say nothing good about taste: they are excluded
#: from recommendations but not folded in ("not interested" would otherwise pull similar
#: anime *up*, as if the user had watched it). "plan_to_watch" is not among them: choosing to
#: plan a title is interest, and training learns every unscored list row, plan-to-watch ones
#: included, as an implicit interaction, so the fold-in treats them the same way.
NOT_WATCHED = frozenset({"not_interested", "dropped"})

#: Who else is in an anime's franchise (itself included); the default knows no franchises.
FranchiseMembers = Callable[[int], Iterable[int]]


def no_franchise(anime_id: int) -> Iterable[int]:
    """The default :data:`FranchiseMembers`: every title is a franchise of its own."""
    return (anime_id,)


Because = tuple[tuple[Anime, ...], tuple[int | None, ...]]


@dataclass(frozen=True)
class Serving:
    """Everything one model version needs to answer requests; never mutated."""

    model: ServingModel
    items: ItemTable
    prior: np.ndarray  # float32 [n_items], z-scored: popular and well liked
    info: ModelInfo


@dataclass(frozen=True)
class UserEntry:
    serving: Serving  # the model this entry was computed with
    stamp: tuple[int, str | None, float]
    state: UserState
    listed: np.ndarray  # model indices of everything on the user's list
    dropped: np.ndarray  # model indices the user dropped, and the rest of their franchises
    rank: np.ndarray  # float32 [n_items]: what picks are ordered by
    predicted: np.ndarray  # float32 [n_items]: 1-10
    favourites: tuple[str, ...]
    n_known: int  # list rows the model knows (0: cold start)
    scored: np.ndarray  # bool per history item: carries a score
    n_scored: int  # list rows with a score
    n_listed: int  # list rows in all
    studios: tuple[str, ...] = ()  # studios of the titles the user likes most
    # model index -> (because titles, their scores): explanations computed so far
    explained: dict[int, Because] = field(default_factory=dict, compare=False)
    # filters -> (the franchise view, n, the top n picks under it): lists worked out so far
    ranked: dict[Filters | None, tuple[object, int, np.ndarray]] = field(
        default_factory=dict, compare=False
    )


def z(x: np.ndarray) -> np.ndarray:
    """``x`` standardised (mean 0, sd 1; a constant vector becomes all zeros)."""
    x = x.astype(np.float64)
    std = x.std()
    return np.asarray(((x - x.mean()) / (std if std > 1e-9 else 1.0)).astype(np.float32))


def build_serving(model: ServingModel, catalog: Sequence[Anime], info: ModelInfo) -> Serving:
    """The serving object of ``model``; the cold-start prior is popular and well liked."""
    items = ItemTable(model.anime_ids, catalog)
    predicted = model.predict(model.fold_in([], []))
    prior = z(z(np.log1p(model.popularity)) + z(predicted))
    return Serving(model, items, prior, info)


def _indices(model: ServingModel, anime_ids: Iterable[int]) -> np.ndarray:
    index_of = model.index_of
    wanted = {index_of[a] for a in anime_ids if a in index_of}
    return np.array(sorted(wanted), dtype=np.int64)


def vetoed_ids(ratings: Sequence[Rating], franchise: FranchiseMembers = no_franchise) -> set[int]:
    """The anime never to recommend for a drop: each dropped title and its whole franchise."""
    found: set[int] = set()
    for r in ratings:
        if r.status == "dropped":
            found.add(r.anime_id)
            found.update(int(a) for a in franchise(r.anime_id))
    return found


def compute_entry(
    serving: Serving,
    stamp: tuple[int, str | None, float],
    ratings: Sequence[Rating],
    cold_start_shrink: float,
    less: LessLike = NO_STEERING,
    franchise: FranchiseMembers = no_franchise,
) -> UserEntry:
    """Fold ``ratings`` in and rank every anime for that person.

    With few known titles the rank leans on the serving prior: ``cold_start_shrink`` is the
    number of list rows at which the person's own ranking weighs 50%. Titles in ``less`` are
    left out of the fold-in (they stay on the list) and what they or ``less``'s genres resemble
    is pushed down. ``franchise`` widens each drop to the dropped title's whole franchise.
    """
    model = serving.model
    weak = set(less.titles)
    taste = [
        r
        for r in ratings
        if (r.score is not None or r.status not in NOT_WATCHED) and r.anime_id not in weak
    ]
    state = model.fold_in([r.anime_id for r in taste], [r.score for r in taste])
    predicted = model.predict(state)
    n_known = int(state.history_index.size)
    if n_known == 0:
        rank = serving.prior
    else:
        weight = n_known / (n_known + cold_start_shrink)
        rank = (weight * z(model.rank(state, predicted)) + (1.0 - weight) * serving.prior).astype(
            np.float32
        )
    if less:
        rank = rank - push_down(less, model.item_vectors, model.index_of, serving.items)
    unwanted = {g.casefold() for g in less.genres}
    liked = explain.favourite_genres(genre_rows(serving, taste), n=5 + len(unwanted))
    favourites = tuple(g for g in liked if g.casefold() not in unwanted)[:5]
    studios = explain.favourite_genres(studio_rows(serving, taste), n=3)
    return UserEntry(
        serving,
        stamp,
        state,
        _indices(model, (r.anime_id for r in ratings)),
        _indices(model, vetoed_ids(ratings, franchise)),
        rank,
        predicted,
        favourites,
        n_known,
        np.isfinite(state.history_scores),
        sum(1 for r in ratings if r.score),
        len(ratings),
        tuple(studios),
    )


def studio_rows(
    serving: Serving, ratings: Sequence[Rating]
) -> list[tuple[tuple[str, ...], int | None]]:
    """(studios, score) of each rated anime whose studios the catalog knows."""
    rows = []
    for r in ratings:
        i = serving.model.index_of.get(r.anime_id)
        anime = serving.items.anime[i] if i is not None else None
        if anime is not None and anime.studios:
            rows.append((anime.studios, r.score))
    return rows


SEASON_OF_MONTH = ("WINTER",) * 3 + ("SPRING",) * 3 + ("SUMMER",) * 3 + ("FALL",) * 3


def new_title_reason(
    serving: Serving, entry: UserEntry, index: int, genres: Sequence[str], today: date | None = None
) -> str | None:
    """Why a title with no list rows at training time was picked, e.g. "New this season · you
    like Mecha and studio Sunrise."; None for a trained title. Season text only when the
    catalog knows the title's season or year, studios only when it knows its studios."""
    anime = serving.items.anime[index]
    if anime is None or not serving.model.is_new(index):
        return None
    today = today or date.today()
    season = (anime.season or "").upper()
    if anime.year == today.year and season == SEASON_OF_MONTH[today.month - 1]:
        head = "New this season"
    elif anime.year and season:
        head = f"New · {season.capitalize()} {anime.year}"
    elif anime.year:
        head = f"New · {anime.year}"
    else:
        head = "New to the catalog"
    own = {s.casefold() for s in anime.studios}
    liked = [*genres, *(f"studio {s}" for s in entry.studios if s.casefold() in own)]
    if liked:
        return f"{head} · you like {explain.join(liked)}."
    titles, _scores = because(serving, entry, index)
    if titles:
        return f"{head} · like {explain.join([a.title for a in titles])}, which you liked."
    return f"{head}."


def genre_rows(
    serving: Serving, ratings: Sequence[Rating]
) -> list[tuple[tuple[str, ...], int | None]]:
    """(genres, score) of each rated anime the model knows: what favourite genres come from."""
    rows = []
    for r in ratings:
        i = serving.model.index_of.get(r.anime_id)
        anime = serving.items.anime[i] if i is not None else None
        if anime is not None:
            rows.append((anime.genres, r.score))
    return rows


def because(serving: Serving, entry: UserEntry, index: int) -> Because:
    """The rated titles that pushed ``index`` up most (memoised per user entry)."""
    known = entry.explained.get(index)
    if known is None:
        explain_picks(serving, entry, np.array([index], dtype=np.int64))
        known = entry.explained[index]
    return known


def explain_picks(serving: Serving, entry: UserEntry, indices: np.ndarray) -> None:
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


def pick_of(serving: Serving, entry: UserEntry, index: int, steer: tuple[str, ...] = ()) -> Pick:
    """The pick at model ``index`` for ``entry``: its scores, the titles behind it and one
    sentence saying why (``steer``: the genres the person asked for)."""
    anime = serving.items.anime[index]
    assert anime is not None  # the filter mask excludes anime missing from the catalog
    titles, scores = because(serving, entry, index)
    genres = tuple(g for g in entry.favourites if g in anime.genres)[:3]
    reason = new_title_reason(serving, entry, index, genres) or explain.sentence(
        [(a.title, s) for a, s in zip(titles, scores, strict=True)],
        genres,
        cold=entry.n_known == 0,
        steered=steer,
    )
    return Pick(
        anime=anime,
        predicted_score=round(float(entry.predicted[index]), 2),
        rank_score=float(entry.rank[index]),
        because=titles,
        genres=genres,
        reason=reason,
    )
