"""The SQLite connections, their pragmas, schema migrations and the one busy-database policy.

Every database goes through :class:`Database`: WAL, foreign keys and the busy timeout are always
on, and the schema is at the newest version before any query runs. A ``Database`` holds two
connections: readers use one (WAL readers never wait for a writer) and writers the other, so a
read never queues behind a write that is waiting for another process's lock.

The busy policy lives here and nowhere else: a write waits at most :data:`BUSY_WAIT_S` seconds
in total (for this process's other writers, then for SQLite's lock, inside SQLite's own busy
handler, never in a Python sleep loop), then raises :class:`DatabaseBusyError`. Callers do not
retry; they tell the person to try again.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from storage.schema import MIGRATIONS, RATINGS_ANIME_INDEX

#: The longest a write waits for the database before it gives up with DatabaseBusyError.
BUSY_WAIT_S = 4.0
T = TypeVar("T")
Params = Sequence[Any] | dict[str, Any]


class StorageError(Exception):
    """A storage failure worth showing to a person (one line, no traceback)."""


class DatabaseBusyError(StorageError):
    """Another writer held the database for longer than :data:`BUSY_WAIT_S`."""


def utcnow() -> str:
    """The timestamp format of every ``*_at`` column (ISO 8601, UTC, microseconds)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def is_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


def _busy_error(exc: sqlite3.OperationalError) -> DatabaseBusyError:
    return DatabaseBusyError(
        f"the database is busy (another writer held it for over {BUSY_WAIT_S:g} s); "
        "try again shortly"
    )


def connect(path: str | Path, busy_wait_s: float = BUSY_WAIT_S) -> sqlite3.Connection:
    """One autocommit connection with the house pragmas (WAL, foreign keys, busy timeout)."""
    path = Path(path)
    if str(path) == ":memory:":  # each connection would get its own empty database
        raise StorageError("Anirec needs a database file (its readers and writer share it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(
            str(path), timeout=busy_wait_s, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {int(busy_wait_s * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.OperationalError as exc:
        if is_busy(exc):
            raise _busy_error(exc) from exc
        raise StorageError(f"cannot open database {path}: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"cannot open database {path}: {exc}") from exc
    return conn


class transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error): one writer, all or nothing.

    IMMEDIATE takes the write lock up front, so two writers queue on the busy timeout instead of
    failing half way with a lock upgrade error. A busy database surfaces as DatabaseBusyError.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
                raise _busy_error(exc) from exc
            raise
        return self.conn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
            except sqlite3.OperationalError as error:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                if is_busy(error):
                    raise _busy_error(error) from error
                raise
        elif self.conn.in_transaction:
            self.conn.execute("ROLLBACK")


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every migration newer than the database's ``user_version``, each in a transaction."""
    current = schema_version(conn)
    if current > len(MIGRATIONS):
        raise StorageError(
            f"database schema version {current} is newer than this Anirec "
            f"({len(MIGRATIONS)}); upgrade Anirec"
        )
    for version, statements in enumerate(MIGRATIONS[current:], start=current + 1):
        with transaction(conn):
            if schema_version(conn) >= version:  # another process migrated meanwhile
                continue
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")
    if schema_version(conn) >= 1:
        conn.execute(RATINGS_ANIME_INDEX)  # see its comment: back after an interrupted import
    return schema_version(conn)


class Database:
    """A read connection and a write connection to one SQLite file, safe across threads.

    Reads are serialised on the read connection (fast: WAL readers never wait for a writer).
    Writes are serialised on the write connection and bounded by :data:`BUSY_WAIT_S` in total.
    """

    def __init__(self, path: str | Path, busy_wait_s: float = BUSY_WAIT_S) -> None:
        self.path = Path(path)
        self.busy_wait_s = busy_wait_s
        self._writer = connect(self.path, busy_wait_s)
        try:
            migrate(self._writer)
            self._reader = connect(self.path, busy_wait_s)
        except BaseException:
            self._writer.close()
            raise
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._busy_ms = int(busy_wait_s * 1000)

    def close(self) -> None:
        with self._write_lock:
            self._writer.close()
        with self._read_lock:
            self._reader.close()

    def query(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """All rows of one read statement."""
        with self._read_lock:
            try:
                rows: list[sqlite3.Row] = self._reader.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                if is_busy(exc):
                    raise _busy_error(exc) from exc
                raise
        return rows

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in one IMMEDIATE transaction; DatabaseBusyError past the bound."""
        deadline = time.monotonic() + self.busy_wait_s
        if not self._write_lock.acquire(timeout=self.busy_wait_s):
            raise DatabaseBusyError(
                f"the database is busy (this process's writers queued for over "
                f"{self.busy_wait_s:g} s); try again shortly"
            )
        try:
            self._set_busy_timeout(deadline - time.monotonic())
            with transaction(self._writer) as conn:
                return fn(conn)
        finally:
            self._write_lock.release()

    def _set_busy_timeout(self, seconds: float) -> None:
        """Shorten SQLite's wait by the time already spent queueing in this process."""
        ms = max(1, int(seconds * 1000))
        if abs(ms - self._busy_ms) > 50:
            self._writer.execute(f"PRAGMA busy_timeout = {ms}")
            self._busy_ms = ms

    def trace(self, callback: Callable[[str], object] | None) -> None:
        """Call ``callback(sql)`` for every statement either connection runs (None: stop)."""
        with self._write_lock, self._read_lock:
            self._writer.set_trace_callback(callback)
            self._reader.set_trace_callback(callback)

    def checkpoint(self) -> None:
        """Fold the WAL back into the database file (so its size on disk is the real size)."""
        with self._write_lock:
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
