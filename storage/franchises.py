"""Rows of ``anime_franchise``: which anime belong to one series, in watch order.

The groups are worked out by ``recommender.franchise`` from the catalog; this table keeps them
so that they are rebuilt once per catalog import, not per model load, and can be inspected.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

from storage.db import Database


class Franchises:
    """Rows of ``anime_franchise``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def replace(self, groups: Iterable[tuple[Sequence[int], int]]) -> int:
        """Replace every stored franchise with ``groups``: (members in watch order, entry id)
        each; one transaction, so a reader sees the old set or the new one. Returns the number
        of rows written."""
        rows = [
            (int(m), min(int(x) for x in members), pos, int(int(m) == int(entry)))
            for members, entry in groups
            for pos, m in enumerate(members)
        ]

        def write(conn: sqlite3.Connection) -> int:
            conn.execute("DELETE FROM anime_franchise")
            conn.executemany(
                "INSERT INTO anime_franchise (anime_id, franchise_id, position, entry) "
                "VALUES (?, ?, ?, ?)",
                rows,
            )
            return len(rows)

        return self._db.write(write)

    def groups(self) -> list[tuple[tuple[int, ...], int]]:
        """Every stored franchise: (members in watch order, entry id)."""
        found: dict[int, list[tuple[int, int, int]]] = {}
        for anime_id, fid, pos, entry in self._db.query(
            "SELECT anime_id, franchise_id, position, entry FROM anime_franchise"
        ):
            found.setdefault(int(fid), []).append((int(pos), int(anime_id), int(entry)))
        out = []
        for rows in found.values():
            rows.sort()
            entries = [a for _, a, e in rows if e] or [rows[0][1]]
            out.append((tuple(a for _, a, _ in rows), entries[0]))
        return out

    def count(self) -> int:
        return int(self._db.query("SELECT COUNT(*) FROM anime_franchise")[0][0])
