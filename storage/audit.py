"""The audit log: who did what (admin actions, retrains, imports), newest first."""

from __future__ import annotations

import json
from typing import Any

from storage.db import Database, utcnow
from storage.rows import AuditEntry, json_doc


class AuditLog:
    """Rows of ``audit_log``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, actor: str, action: str, **details: Any) -> None:
        self._db.write(
            lambda c: c.execute(
                "INSERT INTO audit_log (at, actor, action, details) VALUES (?, ?, ?, ?)",
                (utcnow(), actor, action, json.dumps(details, default=str)),
            )
        )

    def recent(self, limit: int = 50) -> list[AuditEntry]:
        rows = self._db.query(
            "SELECT id, at, actor, action, details FROM audit_log ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [AuditEntry(r[0], r[1], r[2], r[3], json_doc(r[4])) for r in rows]
