"""Notifications already sent: one row per (kind, target, subject), so none goes out twice.

A sender *claims* a notification before delivering it (one INSERT OR IGNORE: exactly one
claimer wins, also across processes) and *releases* the claim when delivery failed, so that a
later run tries again.
"""

from __future__ import annotations

import sqlite3

from storage.db import Database, utcnow


class SentNotifications:
    """Rows of ``sent_notifications``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def claim(self, kind: str, target: str, subject: str) -> bool:
        """Mark the notification as sent; False when it already was (then do not send it)."""

        def run(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "INSERT OR IGNORE INTO sent_notifications (kind, target, subject, sent_at) "
                "VALUES (?, ?, ?, ?)",
                (kind, target, subject, utcnow()),
            )
            return cur.rowcount > 0

        return self._db.write(run)

    def release(self, kind: str, target: str, subject: str) -> None:
        """Forget a claim whose delivery failed."""
        self._db.write(
            lambda c: c.execute(
                "DELETE FROM sent_notifications WHERE kind = ? AND target = ? AND subject = ?",
                (kind, target, subject),
            )
        )

    def sent(self, kind: str, target: str | None = None) -> list[tuple[str, str]]:
        """(target, subject) of the notifications of ``kind`` sent so far (to ``target``)."""
        sql = "SELECT target, subject FROM sent_notifications WHERE kind = ?"
        params: tuple[str, ...] = (kind,)
        if target is not None:
            sql, params = sql + " AND target = ?", (kind, target)
        return [(str(r[0]), str(r[1])) for r in self._db.query(sql + " ORDER BY sent_at", params)]
