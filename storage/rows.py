"""The typed values storage hands out: one frozen dataclass per kind of row.

Nothing outside ``storage/`` indexes a row by column name; JSON columns arrive decoded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypedDict

import numpy as np
import numpy.typing as npt

JsonDoc = dict[str, Any]


@dataclass(frozen=True)
class Anime:
    anime_id: int
    title: str
    genres: tuple[str, ...]
    type: str | None
    episodes: int | None
    mal_score: float | None
    members: int
    nsfw: bool
    # From anime-offline-database, when imported (None / empty otherwise).
    status: str | None = None  # FINISHED, ONGOING, UPCOMING
    season: str | None = None  # SPRING, SUMMER, FALL, WINTER
    year: int | None = None
    duration_s: int | None = None  # per episode
    tags: tuple[str, ...] = ()
    studios: tuple[str, ...] = ()
    picture: str | None = None  # an https URL
    thumbnail: str | None = None


@dataclass(frozen=True)
class User:
    id: int
    platform: str
    platform_user_id: str
    display_name: str | None
    settings: JsonDoc = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.platform}:{self.platform_user_id}"


@dataclass(frozen=True)
class UserIdentity:
    """Who a users row is, without settings: cheap enough to list every data-set user."""

    id: int
    platform: str
    platform_user_id: str


class RatingStamp(NamedTuple):
    """A cheap change detector for a user's list: any write by any path changes it."""

    rows: int  # list rows
    latest: str | None  # newest updated_at
    total: float  # sum of scores


@dataclass(frozen=True)
class UserWithStamp:
    """A user and their rating stamp, read together in one statement."""

    user: User
    stamp: RatingStamp


@dataclass(frozen=True)
class Rating:
    anime_id: int
    score: int | None  # None: on the list, not scored
    status: str | None
    source: str
    updated_at: str


@dataclass(frozen=True)
class Chat:
    platform: str
    chat_id: str
    title: str | None
    settings: JsonDoc = field(default_factory=dict)


@dataclass(frozen=True)
class ModelVersion:
    """A trained checkpoint and where it stands (candidate, serving, retired, rejected)."""

    id: int
    path: str
    created_at: str
    promoted_at: str | None
    status: str
    metrics: JsonDoc
    fingerprint: str | None
    run_id: int | None


@dataclass(frozen=True)
class TrainingRun:
    """One retraining attempt; the JSON columns arrive decoded (empty dict when unset)."""

    id: int
    trigger: str
    requested_by: str | None
    started_at: str
    finished_at: str | None
    status: str  # running, finished, failed
    progress: JsonDoc
    data_size: JsonDoc
    candidate_metrics: JsonDoc
    serving_metrics: JsonDoc
    decision: str | None  # promoted, rejected; None while running
    error: str | None
    pid: int | None


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str
    actor: str
    action: str
    details: JsonDoc


class Stats(TypedDict):
    """Row counts for `anirec stats` and the demo's greeting."""

    anime: int
    users: int
    ratings: int
    scored: int
    chat_users: int
    nsfw_anime: int
    model_versions: int


@dataclass(frozen=True)
class InteractionArrays:
    """Every rating row as parallel arrays, for training. ``score`` is 0 where unscored."""

    user_ids: npt.NDArray[np.int64]  # internal users.id
    anime_ids: npt.NDArray[np.int64]  # MyAnimeList ids
    scores: npt.NDArray[np.int8]  # 0 = watched but not scored
    statuses: npt.NDArray[np.object_]  # may hold None
    platforms: npt.NDArray[np.object_]  # per row: the user's platform
    updated_at: npt.NDArray[np.object_]  # ISO timestamps


class ScoreError(ValueError):
    """A score outside 1-10."""


def validate_score(score: int | None) -> int | None:
    if score is None:
        return None
    if isinstance(score, bool) or not isinstance(score, int | np.integer) or not 1 <= score <= 10:
        raise ScoreError(f"score must be a whole number from 1 to 10, got {score!r}")
    return int(score)


def split_genres(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    return tuple(g.strip() for g in text.split(",") if g.strip())


def json_doc(text: str | None) -> JsonDoc:
    """A JSON object column as a dict (an empty one for NULL)."""
    if text is None:
        return {}
    doc = json.loads(text)
    return doc if isinstance(doc, dict) else {}
