"""Group chats and their settings."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from storage.db import Database, utcnow
from storage.rows import Chat, json_doc

_SELECT = "SELECT platform, chat_id, title, settings FROM chats WHERE platform = ? AND chat_id = ?"


def _chat(r: Sequence[Any]) -> Chat:
    return Chat(r[0], r[1], r[2], json_doc(r[3]))


class Chats:
    """Rows of ``chats``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def find(self, platform: str, chat_id: str | int) -> Chat | None:
        """The chat, or None when it was never seen; a read, never a write."""
        rows = self._db.query(_SELECT, (platform, str(chat_id)))
        return _chat(rows[0]) if rows else None

    def ensure(self, platform: str, chat_id: str | int, title: str | None = None) -> Chat:
        """The chat, created on first sight; its title is kept fresh."""
        cid = str(chat_id)

        def run(c: sqlite3.Connection) -> Chat:
            c.execute(
                "INSERT INTO chats (platform, chat_id, title, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(platform, chat_id) DO UPDATE SET "
                "title = COALESCE(excluded.title, chats.title) "
                "WHERE excluded.title IS NOT NULL AND excluded.title IS NOT chats.title",
                (platform, cid, title, utcnow()),
            )
            return _chat(c.execute(_SELECT, (platform, cid)).fetchone())

        return self._db.write(run)

    def update_settings(self, platform: str, chat_id: str | int, **changes: Any) -> Chat:
        """Merge ``changes`` into the chat's settings (creating the chat); returns the chat."""
        cid = str(chat_id)

        def run(c: sqlite3.Connection) -> Chat:
            c.execute(
                "INSERT INTO chats (platform, chat_id, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT(platform, chat_id) DO NOTHING",
                (platform, cid, utcnow()),
            )
            row = c.execute(_SELECT, (platform, cid)).fetchone()
            settings = json.dumps({**json_doc(row[3]), **changes})
            c.execute(
                "UPDATE chats SET settings = ? WHERE platform = ? AND chat_id = ?",
                (settings, platform, cid),
            )
            return _chat((*row[:3], settings))

        return self._db.write(run)

    def with_setting(self, name: str) -> list[Chat]:
        """The chats whose setting ``name`` is on (JSON true), e.g. the radar's opted-in chats."""
        rows = self._db.query(
            "SELECT platform, chat_id, title, settings FROM chats "
            "WHERE json_extract(settings, '$.' || ?) = 1 ORDER BY platform, chat_id",
            (name,),
        )
        return [_chat(r) for r in rows]
