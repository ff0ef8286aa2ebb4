"""Plain value types that the recommender hands to its callers (the bot core, the CLI).

They hold no torch tensors and no chat-platform objects, so every layer above can use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from storage.rows import Anime


@dataclass(frozen=True)
class Filters:
    """What a person wants to see. Genre and type names match the catalog's spelling."""

    include_genres: frozenset[str] = frozenset()  # any of these (empty: no constraint)
    exclude_genres: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()  # TV, Movie, OVA, ONA, Special, Music (empty: all)
    min_members: int = 0  # popularity floor (MyAnimeList members)
    nsfw: bool = False  # adult titles only when the user or chat opted in


@dataclass(frozen=True)
class Pick:
    """One personal recommendation."""

    anime: Anime
    predicted_score: float  # on the 1-10 scale
    rank_score: float  # what the list is ordered by (higher first)
    because: tuple[Anime, ...] = ()  # 1-3 titles the user rated that contributed most
    genres: tuple[str, ...] = ()  # the pick's genres that are among the user's favourites
    reason: str = ""  # a short sentence built from the two fields above


@dataclass(frozen=True)
class PickPage:
    """One page of personal picks plus what the recommender already knows about the user's
    list, so a caller never re-reads the ratings to word its answer."""

    picks: tuple[Pick, ...]
    offset: int  # how many better picks came before this page
    scored: int  # list rows with a score (0: a cold start, popular picks)
    listed: int  # list rows in all


@dataclass(frozen=True)
class SimilarPick:
    anime: Anime
    similarity: float  # cosine in the learned space, -1..1
    shared_genres: tuple[str, ...] = ()


@dataclass(frozen=True)
class GroupPick:
    """One anime-night pick with every member's predicted score (user id -> 1-10)."""

    anime: Anime
    member_scores: dict[int, float]
    group_score: float
    served: tuple[int, ...] = ()  # members this slot was chosen to serve (fairness re-rank)


@dataclass(frozen=True)
class TitleMatch:
    anime: Anime
    score: float  # 0-100 match quality
    matched: str  # the title or alias that matched


@dataclass(frozen=True)
class ModelInfo:
    """What is serving, for /model and logs."""

    path: str
    version: str
    trained_at: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    n_anime: int = 0
