"""``Store``: the one object the rest of Anirec holds to reach the database.

It opens the database and hands out one small repository per table family; no SQL lives
outside ``storage/``. A ``Store`` is safe to share between threads of one process; each process
opens its own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Self, TypeVar

from storage.audit import AuditLog
from storage.catalog import Catalog
from storage.chats import Chats
from storage.db import Database
from storage.franchises import Franchises
from storage.item_stats import ItemStats
from storage.kv import KeyValues
from storage.lobbies import Lobbies
from storage.members import ChatMembers
from storage.notifications import SentNotifications
from storage.ratings import Ratings
from storage.rows import Stats
from storage.schema import DATASET_PLATFORM
from storage.users import Users
from storage.versions import ModelVersions, TrainingRuns

T = TypeVar("T")


class Store:
    """Typed access to the Anirec database, one attribute per table family."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.db = Database(self.path)
        self.catalog = Catalog(self.db)
        self.users = Users(self.db)
        self.ratings = Ratings(self.db)
        self.chats = Chats(self.db)
        self.members = ChatMembers(self.db)
        self.item_stats = ItemStats(self.db)
        self.versions = ModelVersions(self.db)
        self.runs = TrainingRuns(self.db)
        self.audit = AuditLog(self.db)
        self.kv = KeyValues(self.db)
        self.lobbies = Lobbies(self.db)
        self.franchises = Franchises(self.db)
        self.notifications = SentNotifications(self.db)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write_batch(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in one transaction: importers that must be all-or-nothing pass
        ``conn`` on to the repositories' bulk methods (``catalog.upsert(rows, conn)``, ...)."""
        return self.db.write(fn)

    def stats(self) -> Stats:
        """Row counts across the tables, in one statement."""
        row = self.db.query(
            """
            SELECT (SELECT COUNT(*) FROM anime),
                   (SELECT COUNT(*) FROM users),
                   (SELECT COUNT(*) FROM ratings),
                   (SELECT COUNT(*) FROM ratings WHERE score IS NOT NULL),
                   (SELECT COUNT(*) FROM users WHERE platform != ?),
                   (SELECT COUNT(*) FROM anime WHERE nsfw = 1),
                   (SELECT COUNT(*) FROM model_versions)
            """,
            (DATASET_PLATFORM,),
        )[0]
        return Stats(
            anime=row[0],
            users=row[1],
            ratings=row[2],
            scored=row[3],
            chat_users=row[4],
            nsfw_anime=row[5],
            model_versions=row[6],
        )
