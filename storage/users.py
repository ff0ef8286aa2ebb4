"""Chat users and data-set users: lookups that never write, and the upserts that create them."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from storage.db import Database, utcnow
from storage.rows import RatingStamp, User, UserIdentity, UserWithStamp, json_doc
from storage.schema import DATASET_PLATFORM

_COLS = "id, platform, platform_user_id, display_name, settings"


def _user(r: Sequence[Any]) -> User:
    return User(r[0], r[1], r[2], r[3], json_doc(r[4]))


class Users:
    """Rows of ``users``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- reads ----------------------------------------------------------------------------------
    def find(self, platform: str, platform_user_id: str | int) -> User | None:
        """The user for a platform identity, or None; a read, never a write."""
        rows = self._db.query(
            f"SELECT {_COLS} FROM users WHERE platform = ? AND platform_user_id = ?",
            (platform, str(platform_user_id)),
        )
        return _user(rows[0]) if rows else None

    def find_with_stamp(self, platform: str, platform_user_id: str | int) -> UserWithStamp | None:
        """The user and their rating stamp in one SELECT (the per-command read of the bot)."""
        rows = self._db.query(
            """
            SELECT u.id, u.platform, u.platform_user_id, u.display_name, u.settings,
                   COUNT(r.anime_id), MAX(r.updated_at), TOTAL(r.score)
            FROM users u LEFT JOIN ratings r ON r.user_id = u.id
            WHERE u.platform = ? AND u.platform_user_id = ?
            GROUP BY u.id
            """,
            (platform, str(platform_user_id)),
        )
        if not rows:
            return None
        r = rows[0]
        return UserWithStamp(_user(r[:5]), RatingStamp(int(r[5]), r[6], float(r[7])))

    def get(self, user_id: int) -> User | None:
        rows = self._db.query(f"SELECT {_COLS} FROM users WHERE id = ?", (user_id,))
        return _user(rows[0]) if rows else None

    def find_by_name(self, platform: str, display_name: str) -> list[User]:
        rows = self._db.query(
            f"SELECT {_COLS} FROM users WHERE platform = ? AND display_name = ? COLLATE NOCASE",
            (platform, display_name),
        )
        return [_user(r) for r in rows]

    def identities(self) -> Iterator[UserIdentity]:
        """Every user's id and platform identity (no settings), in id order."""
        for r in self._db.query("SELECT id, platform, platform_user_id FROM users ORDER BY id"):
            yield UserIdentity(int(r[0]), r[1], str(r[2]))

    # -- writes ---------------------------------------------------------------------------------
    def ensure(
        self, platform: str, platform_user_id: str | int, display_name: str | None = None
    ) -> User:
        """The user for a platform identity, created on first sight; the name is kept fresh."""
        pid = str(platform_user_id)

        def run(c: sqlite3.Connection) -> User:
            c.execute(
                """
                INSERT INTO users (platform, platform_user_id, display_name, created_at)
                VALUES (?, ?, ?, ?)
                ON CONFLICT(platform, platform_user_id) DO UPDATE SET
                    display_name = COALESCE(excluded.display_name, users.display_name)
                WHERE excluded.display_name IS NOT NULL
                  AND excluded.display_name IS NOT users.display_name
                """,
                (platform, pid, display_name, utcnow()),
            )
            row = c.execute(
                f"SELECT {_COLS} FROM users WHERE platform = ? AND platform_user_id = ?",
                (platform, pid),
            ).fetchone()
            return _user(row)

        return self._db.write(run)

    def update_settings(self, user_id: int, **changes: Any) -> User:
        """Merge ``changes`` into the user's settings; returns the updated user."""

        def run(c: sqlite3.Connection) -> User:
            row = c.execute(f"SELECT {_COLS} FROM users WHERE id = ?", (user_id,)).fetchone()
            if row is None:
                raise KeyError(f"no user {user_id}")
            settings = {**json_doc(row[4]), **changes}
            c.execute("UPDATE users SET settings = ? WHERE id = ?", (json.dumps(settings), user_id))
            return _user((*row[:4], json.dumps(settings)))

        return self._db.write(run)

    def with_setting(self, name: str) -> list[User]:
        """The users whose setting ``name`` is on (JSON true), e.g. the radar's opted-in users."""
        rows = self._db.query(
            f"SELECT {_COLS} FROM users WHERE json_extract(settings, '$.' || ?) = 1 ORDER BY id",
            (name,),
        )
        return [_user(r) for r in rows]

    @staticmethod
    def ensure_dataset(dataset_ids: Iterable[str], conn: sqlite3.Connection) -> dict[str, int]:
        """Create the data-set users that do not exist yet (inside the caller's transaction);
        map data-set id -> users.id."""
        ids = sorted(set(dataset_ids))
        now = utcnow()
        conn.executemany(
            "INSERT OR IGNORE INTO users (platform, platform_user_id, created_at) VALUES (?, ?, ?)",
            [(DATASET_PLATFORM, i, now) for i in ids],
        )
        mapping: dict[str, int] = {}
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            marks = ",".join("?" * len(chunk))
            for pid, uid in conn.execute(
                f"SELECT platform_user_id, id FROM users WHERE platform = ? "
                f"AND platform_user_id IN ({marks})",
                (DATASET_PLATFORM, *chunk),
            ):
                mapping[pid] = uid
        return mapping
