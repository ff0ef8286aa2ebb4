"""A given set of titles ranked for one person: their plan-to-watch list, a season's titles.

Titles the serving model knows are ordered like every pick (by the blended rank, or by the
predicted score when asked). Titles it has not learned (a new season's shows before the next
retrain, when no content vector covers them) come after all known ones, ordered by
:func:`genre_profile_score`: a small, clearly separate fallback, never mixed into the model's
order. Vetoed titles (drops and their franchises) and what the filters refuse are left out.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping

import numpy as np

from recommender.filters import top_k
from recommender.types import Filters, Pick
from recommender.user_entry import Serving, UserEntry
from storage.rows import Anime

ORDERS = ("rank", "predicted")


def rank_titles(
    serving: Serving,
    entry: UserEntry,
    catalog: Mapping[int, Anime],
    anime_ids: Collection[int],
    filters: Filters | None,
    by: str,
    vetoed: Collection[int],
) -> tuple[np.ndarray, list[Pick]]:
    """(model indices of the known titles, best first; picks for the unknown ones, best first)."""
    if by not in ORDERS:
        raise ValueError(f"order by one of {ORDERS}, not {by!r}")
    wanted = {int(a) for a in anime_ids} - {int(v) for v in vetoed}
    index_of = serving.model.index_of
    known = np.array(sorted(index_of[a] for a in wanted if a in index_of), dtype=np.int64)
    allowed = np.zeros(len(serving.items), dtype=bool)
    allowed[known] = True
    allowed &= serving.items.mask(filters)
    scores = entry.rank if by == "rank" else entry.predicted
    order = top_k(scores, allowed, int(allowed.sum()))
    new = [
        catalog[a]
        for a in sorted(wanted)
        if a not in index_of and a in catalog and passes(catalog[a], filters)
    ]
    return order, unknown_picks(serving, entry, new)


def genre_profile_score(anime: Anime, favourites: tuple[str, ...]) -> float:
    """How well ``anime``'s genres match the person's favourite genres (best first), 0..~1."""
    if not anime.genres or not favourites:
        return 0.0
    weight = {
        g.casefold(): (len(favourites) - i) / len(favourites) for i, g in enumerate(favourites)
    }
    hit = sum(weight.get(g.casefold(), 0.0) for g in anime.genres)
    return hit / math.sqrt(len(anime.genres))


def unknown_picks(serving: Serving, entry: UserEntry, new: list[Anime]) -> list[Pick]:
    """Picks for titles the model has not learned, by genre profile, then popularity."""
    lo, hi = serving.model.score_range
    fallback = float(np.mean(entry.predicted)) if entry.predicted.size else (lo + hi) / 2
    ranked = sorted(
        new,
        key=lambda a: (-genre_profile_score(a, entry.favourites), -a.members, a.anime_id),
    )
    picks = []
    for a in ranked:
        liked = tuple(g for g in entry.favourites if g in a.genres)[:3]
        guess = float(np.clip(a.mal_score, lo, hi)) if a.mal_score is not None else fallback
        reason = "new, not rated by anyone I learned from yet"
        if liked:
            reason = "new; you like " + ", ".join(liked)
        picks.append(
            Pick(
                anime=a,
                predicted_score=round(guess, 2),
                rank_score=genre_profile_score(a, entry.favourites),
                genres=liked,
                reason=reason,
            )
        )
    return picks


def passes(anime: Anime, filters: Filters | None) -> bool:
    """The filters of :class:`~recommender.filters.ItemTable` for one title outside the model."""
    if filters is None:
        return not anime.nsfw
    genres = {g.casefold() for g in anime.genres}
    if anime.nsfw and not filters.nsfw:
        return False
    if filters.include_genres and not genres & {g.casefold() for g in filters.include_genres}:
        return False
    if genres & {g.casefold() for g in filters.exclude_genres}:
        return False
    if filters.types and (anime.type or "").casefold() not in {t.casefold() for t in filters.types}:
        return False
    return anime.members >= filters.min_members
