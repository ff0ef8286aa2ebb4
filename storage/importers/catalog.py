"""The catalog importer: a Kaggle ``anime.csv`` (plain or ``.gz``), streamed and validated."""

from __future__ import annotations

import html
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from storage.catalog import ANIME_UPSERT, anime_values
from storage.importers.errors import ImportFileError, ImportReport, ProgressFn
from storage.importers.source import (
    MAX_COUNT,
    MAX_ID,
    CsvSource,
    check_fields,
    parse_decimal,
    parse_int,
)
from storage.repository import Store
from storage.rows import Anime
from storage.staging import Staging

CATALOG_COLUMNS = ("anime_id", "name", "genre", "type", "episodes", "rating", "members")
NSFW_GENRES = frozenset({"Hentai"})
DEFAULT_MAX_CSV_BYTES = 512 * 1024 * 1024
MAX_TITLE_CHARS = 500


def _anime(row: list[str], col: dict[str, int]) -> Anime:
    """One validated catalog row; ValueError names the column and the problem."""
    anime_id = parse_int(row[col["anime_id"]], "anime_id", 1, MAX_ID)
    title = html.unescape(row[col["name"]]).strip()
    if not title:
        raise ValueError("empty name")
    if len(title) > MAX_TITLE_CHARS:
        raise ValueError(f"name is longer than {MAX_TITLE_CHARS} characters")
    genres = tuple(html.unescape(g).strip() for g in row[col["genre"]].split(",") if g.strip())
    episodes_text = row[col["episodes"]].strip()
    episodes = (
        None
        if episodes_text in ("", "Unknown")
        else parse_int(episodes_text, "episodes", 0, MAX_COUNT)
    )
    score_text = row[col["rating"]].strip()
    mal_score = parse_decimal(score_text, "rating", 0, 10) if score_text else None
    members_text = row[col["members"]].strip()
    members = parse_int(members_text, "members", 0, MAX_COUNT) if members_text else 0
    return Anime(
        anime_id=anime_id,
        title=title,
        genres=genres,
        type=row[col["type"]].strip() or None,
        episodes=episodes,
        mal_score=mal_score,
        members=members,
        nsfw=bool(NSFW_GENRES.intersection(genres)),
    )


def iter_catalog(
    path: str | Path, progress: ProgressFn | None = None, max_bytes: int = DEFAULT_MAX_CSV_BYTES
) -> Iterator[tuple[int, Anime]]:
    """(line number, anime) for every row of a catalog file; the first bad row raises."""
    path = Path(path)
    with CsvSource(path, max_bytes, progress) as source:
        header = source.header()
        missing = [c for c in CATALOG_COLUMNS if c not in header]
        if missing:
            raise ImportFileError(
                path,
                1,
                f"bad header: missing column(s) {', '.join(missing)}; "
                f"expected {','.join(CATALOG_COLUMNS)}",
            )
        col = {name: header.index(name) for name in CATALOG_COLUMNS}
        for line, row in source.rows():
            check_fields(path, line, row, len(header))
            try:
                yield line, _anime(row, col)
            except ValueError as exc:
                raise ImportFileError(path, line, str(exc)) from None


def parse_catalog(
    path: str | Path, progress: ProgressFn | None = None, max_bytes: int = DEFAULT_MAX_CSV_BYTES
) -> list[Anime]:
    """Read a whole catalog into memory: unescaped titles, Hentai marked NSFW, ids unique."""
    seen: set[int] = set()
    rows: list[Anime] = []
    for line, anime in iter_catalog(path, progress, max_bytes):
        if anime.anime_id in seen:
            raise ImportFileError(path, line, f"anime_id {anime.anime_id} appears twice")
        seen.add(anime.anime_id)
        rows.append(anime)
    return rows


_STAGE = """
CREATE TEMP TABLE stage_anime (
    anime_id INTEGER PRIMARY KEY, title TEXT, genres TEXT, type TEXT, episodes INTEGER,
    mal_score REAL, members INTEGER, nsfw INTEGER, twice INTEGER
)"""
_LOAD = """
INSERT INTO stage_anime (anime_id, title, genres, type, episodes, mal_score, members, nsfw)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (anime_id) DO UPDATE SET twice = COALESCE(twice, ?)
"""
_PUBLISH = (
    """
INSERT INTO main.anime (anime_id, title, genres, type, episodes, mal_score, members, nsfw)
SELECT anime_id, title, genres, type, episodes, mal_score, members, nsfw
FROM temp.stage_anime WHERE true
"""
    + ANIME_UPSERT
)


def import_catalog(
    store: Store,
    path: str | Path,
    progress: ProgressFn | None = None,
    max_bytes: int = DEFAULT_MAX_CSV_BYTES,
) -> ImportReport:
    """Import (or refresh) the catalog, all or nothing, in bounded memory."""
    report = ImportReport(str(path), "catalog")

    def staged() -> Iterator[tuple[object, ...]]:
        for line, a in iter_catalog(path, progress, max_bytes):
            report.rows += 1
            yield (*anime_values(a), line)

    with Staging(store.path) as staging:
        staging.create(_STAGE)
        staging.load(_LOAD, staged())
        twice = staging.query("SELECT anime_id, twice FROM stage_anime WHERE twice IS NOT NULL")
        if twice:
            anime_id, line = min(twice, key=lambda r: r[1])
            raise ImportFileError(path, line, f"anime_id {anime_id} appears twice")

        def publish(conn: sqlite3.Connection) -> int:
            before = conn.total_changes
            conn.execute(_PUBLISH)
            return conn.total_changes - before

        report.written = staging.publish(publish)
    report.unchanged = report.rows - report.written
    return report
