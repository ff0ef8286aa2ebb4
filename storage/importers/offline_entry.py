"""One anime-offline-database entry, validated and cleaned into what the catalog stores.

The file is third-party text: every field is checked for its type and range, titles and names
lose markup and control characters, URLs must be https, lists are bounded. A bad entry raises
``ValueError`` naming the field; the importer adds which entry it was.
"""

from __future__ import annotations

import hashlib
import html
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from storage.importers.errors import strip_controls
from storage.importers.source import MAX_COUNT
from storage.schema import OWN_ID_BASE

MAX_TITLE_CHARS = 500
#: Synonyms become search aliases: longer ones are left out (``storage.aliases`` holds the
#: same limit; that module imports this package, so it cannot be imported from here).
MAX_ALIAS_CHARS = 200
MAX_URL_CHARS = 1000
MAX_NAME_CHARS = 200
MAX_LIST_ITEMS = 2000
MAX_DURATION_S = 10**7
TYPES = {"TV": "TV", "MOVIE": "Movie", "OVA": "OVA", "ONA": "ONA", "SPECIAL": "Special"}
STATUSES = frozenset({"FINISHED", "ONGOING", "UPCOMING", "UNKNOWN"})
SEASONS = frozenset({"SPRING", "SUMMER", "FALL", "WINTER", "UNDEFINED"})
_ALL_TYPES = frozenset(TYPES) | {"UNKNOWN"}
_MAL = re.compile(r"https?://myanimelist\.net/anime/([0-9]{1,12})/?")
_TAG = re.compile(r"<[^<>]{0,500}>")
#: The MyAnimeList genres, for mapping a new title's tags to genres on an empty catalog.
MAL_GENRES = [
    "Action",
    "Adventure",
    "Cars",
    "Comedy",
    "Dementia",
    "Demons",
    "Drama",
    "Ecchi",
    "Fantasy",
    "Game",
    "Harem",
    "Hentai",
    "Historical",
    "Horror",
    "Josei",
    "Kids",
    "Magic",
    "Martial Arts",
    "Mecha",
    "Military",
    "Music",
    "Mystery",
    "Parody",
    "Police",
    "Psychological",
    "Romance",
    "Samurai",
    "School",
    "Sci-Fi",
    "Seinen",
    "Shoujo",
    "Shoujo Ai",
    "Shounen",
    "Shounen Ai",
    "Slice of Life",
    "Space",
    "Sports",
    "Super Power",
    "Supernatural",
    "Thriller",
    "Vampire",
    "Yaoi",
    "Yuri",
]
#: Tags that name a genre differently.
TAG_GENRES = {"science fiction": "Sci-Fi", "sci fi": "Sci-Fi", "superpower": "Super Power"}


@dataclass(frozen=True)
class Entry:
    """A validated entry. ``mal_id`` is None for titles MyAnimeList does not list."""

    mal_id: int | None
    sources: tuple[str, ...]
    title: str
    type: str | None
    episodes: int
    status: str | None
    season: str | None
    year: int | None
    duration_s: int | None
    picture: str | None
    thumbnail: str | None
    synonyms: tuple[str, ...]
    studios: tuple[str, ...]
    tags: tuple[str, ...]
    related: tuple[str, ...]

    def name(self, position: str) -> str:
        """How an error names this entry: position, title and first source."""
        source = self.sources[0] if self.sources else "no source"
        return f"{position} ({self.title[:80]!r}, {source})"


def clean_text(text: str) -> str:
    """Text without HTML markup, entities, control characters or runs of blanks."""
    text = _TAG.sub("", html.unescape(text))
    return " ".join(strip_controls(text).split())


def _str(value: Any, field: str, limit: int) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{field} must be text, got {type(value).__name__}")
    if len(value) > limit * 4:
        raise ValueError(f"{field} is longer than {limit} characters")
    return value


def _strings(entry: dict[str, Any], field: str, limit: int) -> list[str]:
    value = entry.get(field, [])
    if not isinstance(value, list):
        raise ValueError(f"{field} must be a list, got {type(value).__name__}")
    if len(value) > MAX_LIST_ITEMS:
        raise ValueError(f"{field} has more than {MAX_LIST_ITEMS} items")
    return [_str(v, field, limit) for v in value]


def _number(value: Any, field: str, low: int, high: int) -> int:
    """A whole number (an integral float too) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{field} must be a number, got {type(value).__name__}")
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        raise ValueError(f"{field} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{field} {value} is out of range ({low} to {high})")
    return int(value)


def _url(value: Any, field: str) -> str | None:
    """An https URL, or None for a missing or non-https one (the chat platforms fetch it)."""
    if value is None:
        return None
    text = _str(value, field, MAX_URL_CHARS).strip()
    if not text.startswith("https://") or len(text) > MAX_URL_CHARS or not text.isprintable():
        return None
    return text if " " not in text else None


def _names(values: Iterable[str], limit: int) -> tuple[str, ...]:
    """Cleaned, de-duplicated names in file order; commas become spaces (lists are CSV)."""
    out: dict[str, None] = {}
    for value in values:
        name = " ".join(clean_text(value).replace(",", " ").split())
        if name and len(name) <= limit:
            out.setdefault(name, None)
    return tuple(out)


def mal_id_of(url: str) -> int | None:
    match = _MAL.fullmatch(url.strip())
    if match is None:
        return None
    number = int(match.group(1))
    if not 1 <= number < OWN_ID_BASE:
        raise ValueError(f"MyAnimeList id {number} is out of range (1 to {OWN_ID_BASE - 1})")
    return number


def parse_entry(entry: Any) -> Entry:
    """Validate one decoded entry; ValueError names the field and the problem."""
    if not isinstance(entry, dict):
        raise ValueError(f"an entry must be a JSON object, got {type(entry).__name__}")
    raw_title = clean_text(_str(entry.get("title"), "title", MAX_TITLE_CHARS))
    if not raw_title:
        raise ValueError("empty title")
    if len(raw_title) > MAX_TITLE_CHARS:
        raise ValueError(f"title is longer than {MAX_TITLE_CHARS} characters")
    sources = tuple(s.strip() for s in _strings(entry, "sources", MAX_URL_CHARS))
    if not sources:
        raise ValueError("no sources")
    if any(not s.startswith(("https://", "http://")) or len(s) > MAX_URL_CHARS for s in sources):
        raise ValueError("sources must be http(s) URLs")
    mal_ids = [i for i in (mal_id_of(s) for s in sources) if i is not None]
    kind = entry.get("type", "UNKNOWN")
    if kind not in _ALL_TYPES:
        raise ValueError(f"type must be one of {', '.join(sorted(_ALL_TYPES))}")
    status = entry.get("status", "UNKNOWN")
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(sorted(STATUSES))}")
    season, year = _season(entry.get("animeSeason", {}))
    return Entry(
        mal_id=mal_ids[0] if mal_ids else None,
        sources=sources,
        title=raw_title,
        type=TYPES.get(kind),
        episodes=_number(entry.get("episodes", 0), "episodes", 0, MAX_COUNT),
        status=None if status == "UNKNOWN" else status,
        season=season,
        year=year,
        duration_s=_duration(entry.get("duration")),
        picture=_url(entry.get("picture"), "picture"),
        thumbnail=_url(entry.get("thumbnail"), "thumbnail"),
        synonyms=_names(_strings(entry, "synonyms", MAX_TITLE_CHARS), MAX_ALIAS_CHARS),
        studios=_names(_strings(entry, "studios", MAX_NAME_CHARS), MAX_NAME_CHARS),
        tags=_names((t.casefold() for t in _strings(entry, "tags", MAX_NAME_CHARS)), 100),
        related=tuple(
            dict.fromkeys(
                u.strip()
                for u in _strings(entry, "relatedAnime", MAX_URL_CHARS)
                if u.strip().startswith(("https://", "http://")) and len(u) <= MAX_URL_CHARS
            )
        ),
    )


def _season(value: Any) -> tuple[str | None, int | None]:
    if not isinstance(value, dict):
        raise ValueError("animeSeason must be an object")
    season = value.get("season", "UNDEFINED")
    if season not in SEASONS:
        raise ValueError(f"animeSeason.season must be one of {', '.join(sorted(SEASONS))}")
    year = value.get("year")
    return (
        None if season == "UNDEFINED" else season,
        None if year is None else _number(year, "animeSeason.year", 1907, 2200),
    )


def _duration(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("duration must be an object")
    if value.get("unit", "SECONDS") != "SECONDS":
        raise ValueError("duration.unit must be SECONDS")
    return _number(value.get("value"), "duration.value", 1, MAX_DURATION_S)


def genres_from_tags(tags: Iterable[str], vocabulary: dict[str, str]) -> tuple[str, ...]:
    """The tags that name a known genre (``vocabulary``: casefolded name -> genre)."""
    out: dict[str, None] = {}
    for tag in tags:
        genre = vocabulary.get(TAG_GENRES.get(tag, tag).casefold())
        if genre:
            out.setdefault(genre, None)
    return tuple(out)


def own_id(url: str, attempt: int = 0) -> int:
    """A stable id for a title without a MAL id, in ``[OWN_ID_BASE, 2**31)``, from its URL."""
    digest = hashlib.sha256(f"{attempt}:{url}".encode()).digest()
    return OWN_ID_BASE + int.from_bytes(digest[:8], "big") % OWN_ID_BASE
