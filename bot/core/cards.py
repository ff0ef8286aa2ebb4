"""Recommender results -> :class:`AnimeCard` and the plain-text lines every adapter can show."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.core.types import AnimeCard, Button
from recommender.types import GroupPick, Pick, SimilarPick
from storage.rows import Anime


def card(anime: Anime, **extra: Any) -> AnimeCard:
    return AnimeCard(
        anime_id=anime.anime_id,
        title=anime.title,
        genres=tuple(anime.genres),
        type=anime.type,
        episodes=anime.episodes,
        mal_score=anime.mal_score,
        picture=anime.picture,
        **extra,
    )


def from_pick(pick: Pick, buttons: tuple[Button, ...] = ()) -> AnimeCard:
    reason = pick.reason or _because(pick)
    return card(
        pick.anime, predicted_score=float(pick.predicted_score), reason=reason, buttons=buttons
    )


def _because(pick: Pick) -> str:
    if pick.because:
        names = " and ".join(a.title for a in pick.because[:2])
        return f"because you liked {names}"
    if pick.genres:
        return "you like " + ", ".join(pick.genres[:3])
    return ""


def from_similar(pick: SimilarPick, buttons: tuple[Button, ...] = ()) -> AnimeCard:
    reason = ("shares " + ", ".join(pick.shared_genres[:3])) if pick.shared_genres else ""
    return card(pick.anime, similarity=float(pick.similarity), reason=reason, buttons=buttons)


def from_group(pick: GroupPick, names: Mapping[int, str]) -> AnimeCard:
    scores = tuple(
        (names.get(uid, f"user {uid}"), float(s)) for uid, s in pick.member_scores.items()
    )
    return card(pick.anime, predicted_score=float(pick.group_score), member_scores=scores)


def describe(anime_card: AnimeCard) -> str:
    """``Cowboy Bebop (TV, 26 ep; Action, Sci-Fi)``."""
    bits = [
        b
        for b in (anime_card.type, f"{anime_card.episodes} ep" if anime_card.episodes else None)
        if b
    ]
    meta = ", ".join(bits)
    genres = ", ".join(anime_card.genres[:4])
    inside = "; ".join(p for p in (meta, genres) if p)
    return f"{anime_card.title} ({inside})" if inside else anime_card.title


def line(anime_card: AnimeCard, number: int) -> str:
    """One numbered line with the score and the why, for plain-text replies."""
    parts = [f"{number}. {describe(anime_card)}"]
    if anime_card.member_scores:
        each = ", ".join(f"{n} {s:.1f}" for n, s in anime_card.member_scores)
        parts.append(f"   group {anime_card.predicted_score:.1f}: {each}")
        parts += [f"   {why}" for why in anime_card.reason.splitlines() if why.strip()]
    elif anime_card.predicted_score is not None:
        parts.append(
            f"   predicted {anime_card.predicted_score:.1f}/10"
            + (f" - {anime_card.reason}" if anime_card.reason else "")
        )
    elif anime_card.similarity is not None:
        parts.append(
            f"   similarity {anime_card.similarity:.2f}"
            + (f" - {anime_card.reason}" if anime_card.reason else "")
        )
    return "\n".join(parts)
