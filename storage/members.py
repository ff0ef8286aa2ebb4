"""Who was seen in which group chat: the people /twin and /fans may look among.

A row is written when someone uses a writing command in a group (one upsert); reads join the
users so that each person's sharing opt-in (their settings) comes with them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from storage.db import Database, utcnow
from storage.rows import User, json_doc

#: At most this many members are considered per chat (the most recently seen).
MAX_MEMBERS = 500


def _user(r: Sequence[Any]) -> User:
    return User(r[0], r[1], r[2], r[3], json_doc(r[4]))


class ChatMembers:
    """Rows of ``chat_members``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def seen(self, platform: str, chat_id: str | int, user_id: int) -> None:
        """Record (or refresh) that ``user_id`` used the bot in the chat."""

        def run(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO chat_members (platform, chat_id, user_id, seen_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(platform, chat_id, user_id) "
                "DO UPDATE SET seen_at = excluded.seen_at",
                (platform, str(chat_id), user_id, utcnow()),
            )

        self._db.write(run)

    def of_chat(self, platform: str, chat_id: str | int, limit: int = MAX_MEMBERS) -> list[User]:
        """The users seen in the chat, most recently seen first (a read)."""
        rows = self._db.query(
            """
            SELECT u.id, u.platform, u.platform_user_id, u.display_name, u.settings
            FROM chat_members m JOIN users u ON u.id = m.user_id
            WHERE m.platform = ? AND m.chat_id = ?
            ORDER BY m.seen_at DESC, u.id LIMIT ?
            """,
            (platform, str(chat_id), limit),
        )
        return [_user(r) for r in rows]

    def scores_of(self, user_ids: Sequence[int], anime_id: int) -> dict[int, int]:
        """user id -> their score of ``anime_id``, for those of ``user_ids`` who scored it."""
        found: dict[int, int] = {}
        ids = list(dict.fromkeys(int(u) for u in user_ids))
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            marks = ",".join("?" * len(chunk))
            for uid, score in self._db.query(
                f"SELECT user_id, score FROM ratings WHERE anime_id = ? AND score IS NOT NULL "
                f"AND user_id IN ({marks})",
                (anime_id, *chunk),
            ):
                found[int(uid)] = int(score)
        return found
