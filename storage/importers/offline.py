"""The catalog importer for the anime-offline-database (manami-project), streamed and staged.

Entries meet catalog anime by MyAnimeList id. A title MyAnimeList does not list gets an id of
its own at or above :data:`storage.schema.OWN_ID_BASE` (so it never collides with a MAL id),
derived from its first provider URL and remembered in ``anime_sources`` for every URL of the
entry, so the next release maps it to the same id. Existing anime gain status, season, year,
duration, tags, studios and pictures, their synonyms become search aliases and their related
anime are linked in ``anime_related``; their title, genres and numbers stay as the main catalog
has them. Titles this importer added follow the file (their episode count grows while airing).

As with the other importers: every entry is validated before anything is written, the staged
rows are published in one transaction (all or nothing), and a second import of the same file
changes nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from storage.importers.catalog import NSFW_GENRES
from storage.importers.errors import ImportFileError, ImportReport, ProgressFn
from storage.importers.jsonstream import is_jsonl, jsonl_entries, minified_entries
from storage.importers.offline_entry import (
    MAL_GENRES,
    MAX_TITLE_CHARS,
    Entry,
    clean_text,
    genres_from_tags,
    mal_id_of,
    own_id,
    parse_entry,
)
from storage.repository import Store
from storage.schema import OWN_ID_BASE
from storage.staging import Staging

#: Entries staged per temporary-table transaction: bounds what the import holds in memory.
STAGE_ENTRIES = 2000
ALIAS_SOURCE = "offline-db"
_CORE = ("title", "genres", "type", "episodes")
_EXTRA = ("status", "season", "year", "duration_s", "tags", "studios", "picture", "thumbnail")

_STAGE = (
    """CREATE TEMP TABLE stage_entries (
        anime_id INTEGER PRIMARY KEY, title TEXT, genres TEXT, type TEXT, episodes INTEGER,
        nsfw INTEGER, status TEXT, season TEXT, year INTEGER, duration_s INTEGER, tags TEXT,
        studios TEXT, picture TEXT, thumbnail TEXT, name TEXT, twice TEXT)""",
    "CREATE TEMP TABLE stage_aliases (alias TEXT, anime_id INTEGER, PRIMARY KEY (alias, anime_id))",
    """CREATE TEMP TABLE stage_related (
        anime_id INTEGER, url TEXT, related_mal INTEGER, PRIMARY KEY (anime_id, url))""",
    "CREATE TEMP TABLE stage_sources (url TEXT PRIMARY KEY, anime_id INTEGER)",
)
_LOAD_ENTRY = """
INSERT INTO stage_entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)
ON CONFLICT (anime_id) DO UPDATE SET twice = COALESCE(twice, excluded.name)
"""


def _set_clause() -> str:
    exprs = {
        c: f"CASE WHEN anime.origin = 'offline' THEN excluded.{c} ELSE anime.{c} END" for c in _CORE
    }
    exprs["nsfw"] = "MAX(anime.nsfw, excluded.nsfw)"
    exprs.update({c: f"excluded.{c}" for c in _EXTRA})
    sets = ", ".join(f"{c} = {e}" for c, e in exprs.items())
    old = ", ".join(f"anime.{c}" for c in exprs)
    new = ", ".join(exprs.values())
    return f"DO UPDATE SET {sets} WHERE ({old}) IS NOT ({new})"


_COLUMNS = ", ".join(("anime_id", *_CORE, "nsfw", *_EXTRA))
_PUBLISH_ANIME = f"""
INSERT INTO main.anime ({_COLUMNS}, members, origin)
SELECT {_COLUMNS}, 0, 'offline' FROM temp.stage_entries WHERE true
ON CONFLICT (anime_id) {_set_clause()}
"""
_PUBLISH_LINKS = (
    f"""INSERT OR IGNORE INTO main.anime_aliases (alias, anime_id, source)
    SELECT alias, anime_id, '{ALIAS_SOURCE}' FROM temp.stage_aliases""",
    """INSERT OR IGNORE INTO main.anime_sources (url, anime_id)
    SELECT url, anime_id FROM temp.stage_sources""",
    """DELETE FROM main.anime_related
    WHERE anime_id IN (SELECT anime_id FROM temp.stage_entries)
      AND (anime_id, url) NOT IN (SELECT anime_id, url FROM temp.stage_related)""",
    """INSERT INTO main.anime_related (anime_id, url, related_id)
    SELECT r.anime_id, r.url,
           COALESCE(r.related_mal,
                    (SELECT s.anime_id FROM main.anime_sources s WHERE s.url = r.url))
    FROM temp.stage_related r WHERE true
    ON CONFLICT (anime_id, url) DO UPDATE SET related_id = excluded.related_id
    WHERE anime_related.related_id IS NOT excluded.related_id""",
)


def _raw_name(raw: Any, position: str) -> str:
    """Name an entry that failed validation by what it has: title and first source."""
    if not isinstance(raw, dict):
        return position
    title, sources = raw.get("title"), raw.get("sources")
    bits = [repr(clean_text(title)[:80])] if isinstance(title, str) else []
    if isinstance(sources, list) and sources and isinstance(sources[0], str):
        bits.append(clean_text(sources[0])[:120])
    return f"{position} ({', '.join(bits)})" if bits else position


class _Ids:
    """Own ids for titles without a MAL id: the stored mapping first, else a fresh stable one."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.by_url = {
            str(u): int(i) for u, i in conn.execute("SELECT url, anime_id FROM main.anime_sources")
        }
        self.taken = set(self.by_url.values())
        self.taken.update(
            int(r[0])
            for r in conn.execute(
                "SELECT anime_id FROM main.anime WHERE anime_id >= ?", (OWN_ID_BASE,)
            )
        )

    def of(self, entry: Entry) -> int:
        for url in entry.sources:
            if url in self.by_url:
                return self.by_url[url]
        attempt, anime_id = 0, own_id(entry.sources[0])
        while anime_id in self.taken:
            attempt += 1
            anime_id = own_id(entry.sources[0], attempt)
        self.taken.add(anime_id)
        for url in entry.sources:
            self.by_url[url] = anime_id
        return anime_id


def _related_mal(url: str) -> int | None:
    try:
        return mal_id_of(url)
    except ValueError:
        return None


class _Loader:
    """Validates entries and stages them, ``STAGE_ENTRIES`` per temporary-table transaction."""

    def __init__(self, staging: Staging, vocabulary: dict[str, str]) -> None:
        self.conn = staging.conn
        self.vocabulary = vocabulary
        self.ids = _Ids(self.conn)
        self.rows: dict[str, list[tuple[Any, ...]]] = {"e": [], "a": [], "r": [], "s": []}
        self.pending = 0

    def add(self, entry: Entry, name: str) -> None:
        anime_id = entry.mal_id if entry.mal_id is not None else self.ids.of(entry)
        genres = genres_from_tags(entry.tags, self.vocabulary)
        nsfw = "hentai" in entry.tags or bool(NSFW_GENRES.intersection(genres))
        self.rows["e"].append(
            (anime_id, entry.title, ", ".join(genres), entry.type, entry.episodes or None,
             int(nsfw), entry.status, entry.season, entry.year, entry.duration_s,
             ", ".join(entry.tags), ", ".join(entry.studios), entry.picture, entry.thumbnail,
             name)
        )  # fmt: skip
        self.rows["a"] += [(s, anime_id) for s in entry.synonyms if s != entry.title]
        self.rows["r"] += [(anime_id, u, _related_mal(u)) for u in entry.related]
        if entry.mal_id is None:
            self.rows["s"] += [(u, anime_id) for u in entry.sources]
        self.pending += 1
        if self.pending >= STAGE_ENTRIES:
            self.flush()

    def flush(self) -> None:
        conn = self.conn
        conn.execute("BEGIN")
        try:
            conn.executemany(_LOAD_ENTRY, self.rows["e"])
            conn.executemany("INSERT OR IGNORE INTO stage_aliases VALUES (?, ?)", self.rows["a"])
            conn.executemany("INSERT OR IGNORE INTO stage_related VALUES (?, ?, ?)", self.rows["r"])
            conn.executemany("INSERT OR IGNORE INTO stage_sources VALUES (?, ?)", self.rows["s"])
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        self.rows = {key: [] for key in self.rows}
        self.pending = 0


def _vocabulary(store: Store) -> dict[str, str]:
    names = store.catalog.genre_names() or set(MAL_GENRES)
    return {name.casefold(): name for name in names}


def entries(path: str | Path, progress: ProgressFn | None = None) -> Iterator[tuple[str, Any]]:
    """(how an error names it, decoded entry) for each entry of a minified or .jsonl file."""
    path = Path(path)
    if is_jsonl(path):
        for line, raw in jsonl_entries(path, progress):
            yield f"line {line}", raw
    else:
        for number, raw in minified_entries(path, progress):
            yield f"entry {number}", raw


def import_offline_catalog(
    store: Store, path: str | Path, progress: ProgressFn | None = None
) -> ImportReport:
    """Import (or refresh) the catalog from an anime-offline-database file, all or nothing."""
    report = ImportReport(str(path), "catalog")
    with Staging(store.path) as staging:
        for ddl in _STAGE:
            staging.create(ddl)
        loader = _Loader(staging, _vocabulary(store))
        for position, raw in entries(path, progress):
            try:
                entry = parse_entry(raw)
            except ValueError as exc:
                raise ImportFileError(
                    path, None, str(exc), entry=_raw_name(raw, position)
                ) from None
            loader.add(entry, entry.name(position))
            report.rows += 1
        loader.flush()
        _check_twice(staging, path)
        report.written = staging.publish(_publish)
    report.unchanged = report.rows - report.written
    return report


def _check_twice(staging: Staging, path: str | Path) -> None:
    twice = staging.query("SELECT anime_id, name, twice FROM stage_entries WHERE twice IS NOT NULL")
    if twice:
        anime_id, first, second = twice[0]
        raise ImportFileError(
            path,
            None,
            f"anime id {anime_id} again, already given by {first[:MAX_TITLE_CHARS]}",
            entry=second,
        )


def _publish(conn: sqlite3.Connection) -> int:
    """Publish the staged rows; returns how many catalog anime were new or changed."""
    before = conn.total_changes
    conn.execute(_PUBLISH_ANIME)
    written = conn.total_changes - before
    for sql in _PUBLISH_LINKS:
        conn.execute(sql)
    return written
