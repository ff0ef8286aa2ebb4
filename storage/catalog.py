"""The anime catalog and its title aliases."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from storage.db import Database
from storage.rows import Anime, split_genres

_COLS = (
    "anime_id, title, genres, type, episodes, mal_score, members, nsfw, "
    "status, season, year, duration_s, tags, studios, picture, thumbnail"
)


def _anime(r: Sequence[Any]) -> Anime:
    return Anime(
        r[0],
        r[1],
        split_genres(r[2]),
        r[3],
        r[4],
        r[5],
        r[6],
        bool(r[7]),
        status=r[8],
        season=r[9],
        year=r[10],
        duration_s=r[11],
        tags=split_genres(r[12]),
        studios=split_genres(r[13]),
        picture=r[14],
        thumbnail=r[15],
    )


#: How a catalog row meets the one already stored: updated only when something changed (so an
#: unchanged re-import writes nothing). Shared by row upserts and the importer's staged publish.
ANIME_UPSERT = """
ON CONFLICT(anime_id) DO UPDATE SET
    title=excluded.title, genres=excluded.genres, type=excluded.type,
    episodes=excluded.episodes, mal_score=excluded.mal_score,
    members=excluded.members, nsfw=excluded.nsfw
WHERE (anime.title, anime.genres, anime.type, anime.episodes, anime.mal_score,
       anime.members, anime.nsfw)
   IS NOT (excluded.title, excluded.genres, excluded.type, excluded.episodes,
           excluded.mal_score, excluded.members, excluded.nsfw)
"""


def anime_values(a: Anime) -> tuple[object, ...]:
    """The catalog columns of ``a`` in table order (anime_id ... nsfw), as stored."""
    return (
        a.anime_id,
        a.title,
        ", ".join(a.genres),
        a.type,
        a.episodes,
        a.mal_score,
        a.members,
        int(a.nsfw),
    )


class Catalog:
    """Rows of ``anime`` and ``anime_aliases``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def upsert(self, rows: Iterable[Anime], conn: sqlite3.Connection | None = None) -> int:
        """Insert or update catalog rows; returns how many rows were new or changed.

        Writes the main catalog's columns only: what the anime-offline-database import adds
        (status, season, tags, pictures, ...) is kept as it is.

        With ``conn`` it runs inside the caller's transaction (see ``Store.write_batch``).
        """
        if conn is None:
            return self._db.write(lambda c: self.upsert(rows, c))
        before = conn.total_changes
        conn.executemany(
            "INSERT INTO anime (anime_id, title, genres, type, episodes, mal_score, members, nsfw) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) " + ANIME_UPSERT,
            [anime_values(a) for a in rows],
        )
        return conn.total_changes - before

    def ids(self) -> set[int]:
        return {int(r[0]) for r in self._db.query("SELECT anime_id FROM anime")}

    def get(self, anime_id: int) -> Anime | None:
        rows = self._db.query(f"SELECT {_COLS} FROM anime WHERE anime_id = ?", (anime_id,))
        return _anime(rows[0]) if rows else None

    def all(self) -> list[Anime]:
        return [_anime(r) for r in self._db.query(f"SELECT {_COLS} FROM anime ORDER BY anime_id")]

    def add_aliases(
        self,
        pairs: Iterable[tuple[str, int]],
        source: str = "import",
        conn: sqlite3.Connection | None = None,
    ) -> int:
        """Add (alias, anime_id) pairs; returns how many were new."""
        if conn is None:
            return self._db.write(lambda c: self.add_aliases(pairs, source, c))
        before = conn.total_changes
        conn.executemany(
            "INSERT OR IGNORE INTO anime_aliases (alias, anime_id, source) VALUES (?, ?, ?)",
            [(alias.strip(), int(aid), source) for alias, aid in pairs if alias.strip()],
        )
        return conn.total_changes - before

    def related(self, anime_id: int) -> list[tuple[str, int | None]]:
        """(provider URL, catalog id when known) of the anime related to ``anime_id``."""
        return [
            (str(r[0]), None if r[1] is None else int(r[1]))
            for r in self._db.query(
                "SELECT url, related_id FROM anime_related WHERE anime_id = ? ORDER BY url",
                (anime_id,),
            )
        ]

    def in_season(self, season: str, year: int) -> list[Anime]:
        """The anime of one season (``season`` as stored: WINTER, SPRING, SUMMER, FALL)."""
        rows = self._db.query(
            f"SELECT {_COLS} FROM anime WHERE season = ? AND year = ? ORDER BY anime_id",
            (season, year),
        )
        return [_anime(r) for r in rows]

    def statuses(self) -> dict[int, str | None]:
        """anime id -> airing status (FINISHED, ONGOING, UPCOMING; None unknown)."""
        return {int(r[0]): r[1] for r in self._db.query("SELECT anime_id, status FROM anime")}

    def links(self) -> list[tuple[int, int]]:
        """Every related-anime link between two catalog anime, as (anime_id, related_id)."""
        return [
            (int(r[0]), int(r[1]))
            for r in self._db.query(
                "SELECT anime_id, related_id FROM anime_related WHERE related_id IS NOT NULL"
            )
        ]

    def genre_names(self) -> set[str]:
        """Every genre some catalog anime has."""
        names: set[str] = set()
        for (text,) in self._db.query("SELECT DISTINCT genres FROM anime"):
            names.update(split_genres(text))
        return names

    def aliases(self) -> list[tuple[str, int]]:
        return [
            (str(r[0]), int(r[1]))
            for r in self._db.query("SELECT alias, anime_id FROM anime_aliases")
        ]
