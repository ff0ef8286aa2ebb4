"""Opening the SQLite database: pragmas, schema migrations and retry on a busy database.

Every connection goes through :func:`open_database` so that WAL, the busy timeout and foreign
keys are always on, and the schema is always at the newest version before any query runs.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import sqlite_utils

from storage.schema import MIGRATIONS

BUSY_TIMEOUT_MS = 10_000
T = TypeVar("T")


class StorageError(Exception):
    """A storage failure worth showing to a person (one line, no traceback)."""


class DatabaseBusyError(StorageError):
    """The database stayed locked by another writer for longer than we were willing to wait."""


def open_database(path: str | Path) -> sqlite_utils.Database:
    """Open (creating if needed) the database at ``path`` and migrate it to the newest schema."""
    path = Path(path)
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(
            str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"cannot open database {path}: {exc}") from exc
    db = sqlite_utils.Database(conn)
    migrate(db)
    return db


def schema_version(db: sqlite_utils.Database) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite_utils.Database) -> int:
    """Apply every migration newer than the database's ``user_version``, each in a transaction."""
    current = schema_version(db)
    if current > len(MIGRATIONS):
        raise StorageError(
            f"database schema version {current} is newer than this Anirec "
            f"({len(MIGRATIONS)}); upgrade Anirec"
        )
    for version, statements in enumerate(MIGRATIONS[current:], start=current + 1):

        def apply(statements: tuple[str, ...] = statements, version: int = version) -> None:
            with transaction(db):
                for statement in statements:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {version}")

        with_retry(apply)
    return schema_version(db)


class transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error): one writer, all or nothing.

    IMMEDIATE takes the write lock up front, so two writers queue on the busy timeout instead of
    failing half way with a lock upgrade error.
    """

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.conn = db.conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        elif self.conn.in_transaction:
            self.conn.execute("ROLLBACK")


def is_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


def with_retry(fn: Callable[[], T], attempts: int = 8, first_delay: float = 0.05) -> T:
    """Run ``fn`` again when SQLite says the database is locked; never drop the write."""
    delay = first_delay
    for attempt in range(attempts):
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or attempt == attempts - 1:
                if is_busy(exc):
                    raise DatabaseBusyError(
                        "the database is busy (another writer holds it); try again shortly"
                    ) from exc
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
    raise AssertionError("unreachable")
