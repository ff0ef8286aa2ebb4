"""Anime-night lobbies: one row per lobby, its changing parts kept as one JSON document.

Why a JSON document: members, picks, votes and vetoes change together and are read together;
every change is a read-modify-write inside one write transaction (:meth:`Lobbies.update`), so
two people pressing at once never lose each other's join or vote.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from storage.db import Database
from storage.rows import JsonDoc, json_doc


@dataclass(frozen=True)
class LobbyRow:
    id: str
    platform: str
    chat_id: str | None
    created_at: float  # unix seconds
    state: JsonDoc


_SELECT = "SELECT id, platform, chat_id, created_at, state FROM night_lobbies WHERE id = ?"


def _row(r: Any) -> LobbyRow:
    return LobbyRow(str(r[0]), str(r[1]), r[2], float(r[3]), json_doc(r[4]))


class Lobbies:
    """Rows of ``night_lobbies``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self, lobby_id: str, platform: str, chat_id: str | None, created_at: float, state: JsonDoc
    ) -> LobbyRow:
        self._db.write(
            lambda c: c.execute(
                "INSERT INTO night_lobbies (id, platform, chat_id, created_at, state) "
                "VALUES (?, ?, ?, ?, ?)",
                (lobby_id, platform, chat_id, created_at, json.dumps(state)),
            )
        )
        return LobbyRow(lobby_id, platform, chat_id, created_at, state)

    def get(self, lobby_id: str, newer_than: float = 0.0) -> LobbyRow | None:
        """The lobby, or None when there is none (or it was created before ``newer_than``)."""
        rows = self._db.query(_SELECT + " AND created_at >= ?", (lobby_id, newer_than))
        return _row(rows[0]) if rows else None

    def update(
        self, lobby_id: str, change: Callable[[LobbyRow], JsonDoc | None]
    ) -> LobbyRow | None:
        """Apply ``change`` to the lobby atomically; ``change`` gets the row and returns the
        new state, or None to leave it as it was. None when the lobby does not exist."""

        def run(c: sqlite3.Connection) -> LobbyRow | None:
            found = c.execute(_SELECT, (lobby_id,)).fetchone()
            if found is None:
                return None
            row = _row(found)
            new = change(row)
            if new is None:
                return row
            c.execute(
                "UPDATE night_lobbies SET state = ? WHERE id = ?", (json.dumps(new), lobby_id)
            )
            return LobbyRow(row.id, row.platform, row.chat_id, row.created_at, new)

        return self._db.write(run)

    def expire(self, before: float) -> int:
        """Delete lobbies created before ``before``; how many went."""
        return self._db.write(
            lambda c: c.execute("DELETE FROM night_lobbies WHERE created_at < ?", (before,))
        ).rowcount
