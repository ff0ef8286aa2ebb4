"""Hand-built anime-offline-database files that follow the published schemas."""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path
from typing import Any

META = {
    "$schema": "https://raw.githubusercontent.com/manami-project/anime-offline-database/"
    "master/schemas/anime-offline-database-minified.schema.json",
    "license": {
        "name": "Open Data Commons Open Database License (ODbL) v1.0 + "
        "Database Contents License (DbCL) v1.0",
        "url": "https://github.com/manami-project/anime-offline-database/blob/master/LICENSE",
    },
    "repository": "https://github.com/manami-project/anime-offline-database",
    "scoreRange": {"minInclusive": 1.0, "maxInclusive": 10.0},
    "lastUpdate": "2026-01-31",
}


def entry(
    title: str,
    mal_id: int | None = None,
    *,
    others: tuple[str, ...] = (),
    **fields: Any,
) -> dict[str, Any]:
    """One schema-valid entry; ``mal_id`` adds the MyAnimeList source."""
    sources = [f"https://myanimelist.net/anime/{mal_id}"] if mal_id is not None else []
    sources += list(others) or [f"https://anilist.co/anime/{zlib.crc32(title.encode()) % 10**6}"]
    doc: dict[str, Any] = {
        "sources": sorted(sources),
        "title": title,
        "type": "TV",
        "episodes": 12,
        "status": "FINISHED",
        "animeSeason": {"season": "SPRING", "year": 2025},
        "picture": "https://cdn.myanimelist.net/images/anime/1/1.jpg",
        "thumbnail": "https://cdn.myanimelist.net/images/anime/1/1t.jpg",
        "duration": {"value": 1440, "unit": "SECONDS"},
        "score": {"arithmeticGeometricMean": 7.5, "arithmeticMean": 7.5, "median": 7.5},
        "synonyms": [],
        "studios": ["madhouse"],
        "producers": ["aniplex"],
        "relatedAnime": [],
        "tags": ["action", "drama"],
    }
    doc.update(fields)
    return doc


def write_minified(path: Path, entries: list[Any], *, data_first: bool = False) -> Path:
    """``{"data": [...], ...}`` on one line, like the real minified file."""
    doc = {"data": entries, **META} if data_first else {**META, "data": entries}
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    _write(path, text)
    return path


def write_jsonl(path: Path, entries: list[Any]) -> Path:
    """The metadata line, then one entry per line."""
    lines = [json.dumps(META)] + [json.dumps(e, ensure_ascii=False) for e in entries]
    _write(path, "\n".join(lines) + "\n")
    return path


def _write(path: Path, text: str) -> None:
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
