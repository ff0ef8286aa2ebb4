"""A small key/value table for state that must survive a restart (e.g. the next retrain time)."""

from __future__ import annotations

from storage.db import Database


class KeyValues:
    """Rows of ``kv``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, key: str, default: str | None = None) -> str | None:
        rows = self._db.query("SELECT value FROM kv WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else default

    def set(self, key: str, value: str) -> None:
        self._db.write(
            lambda c: c.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
        )
