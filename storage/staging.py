"""Staging for big imports: validate into private temporary tables, then publish in one step.

A big import must neither hold memory in proportion to its file nor hold the database's write
lock while it reads. So an importer streams its rows, in bounded chunks, into TEMP tables of a
connection of its own (temporary tables live in a private file, take no lock on the database
and vanish with the connection, even after kill -9). Only when the whole file has been read and
validated does :meth:`Staging.publish` copy the rows into the real tables, in one short
``BEGIN IMMEDIATE`` transaction of plain SQL: readers never wait (WAL), chat writes queue behind
that one transaction for about two seconds, and the import stays all or nothing.

Publishing waits for the write lock under the one busy policy (:data:`storage.db.BUSY_WAIT_S`,
inside SQLite's busy handler); past it the publish fails with ``DatabaseBusyError`` and nothing
of that transaction is written. There is no retry loop here: the person runs the import again.

A staged set too big for one short transaction is published by :meth:`Staging.publish_chunks`
in bounded transactions with a pause between them, so chat writes get in within about a second.
Every row was validated before the first chunk, so only a crash, or a chunk that cannot get the
write lock within the busy bound, can stop it half way; a marker row in ``kv`` says so until the
last chunk commits, and running the same import again (imports are idempotent) completes it.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from storage.db import connect, migrate, transaction

#: Rows staged per transaction of the temporary table: bounds the memory an import holds.
STAGE_CHUNK_ROWS = 20_000
#: Rows per multi-row INSERT of :meth:`Staging.load_values` (measured: 10 beat 50 and 200).
VALUES_PER_STATEMENT = 10
#: The ``kv`` key present while a chunked publish is under way (left behind by a crash).
PUBLISHING_KEY = "import.publishing"
#: Pause between publish chunks: longer than SQLite's longest busy-handler sleep (100 ms), so
#: a chat write waiting for the lock gets it before the next chunk.
CHUNK_PAUSE_S = 0.15
#: Page cache of the staging connection for the database file (the temporary tables get half).
CACHE_KIB = 16 * 1024
T = TypeVar("T")


class Staging:
    """A private connection to the database file ``path``, for one import's temporary tables."""

    def __init__(self, path: str | Path) -> None:
        self.conn: sqlite3.Connection = connect(path)
        try:
            migrate(self.conn)
        except BaseException:
            self.conn.close()
            raise
        # Never in RAM, whatever the build's default: the staged rows may be gigabytes.
        self.conn.execute("PRAGMA temp_store = FILE")
        # A bounded page cache of its own: a bulk publish rewrites the same index pages
        # (ratings by anime) over and over; with SQLite's 2 MB default they go to disk each time.
        self.conn.execute(f"PRAGMA main.cache_size = -{CACHE_KIB}")
        self.conn.execute(f"PRAGMA temp.cache_size = -{CACHE_KIB // 2}")
        # The temporary tables are private and thrown away on any failure, and nothing reaches
        # the real tables before the publish: they need neither a journal nor syncs.
        self.conn.execute("PRAGMA temp.journal_mode = OFF")
        self.conn.execute("PRAGMA temp.synchronous = OFF")

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the temporary tables with the connection; nothing was published unless asked."""
        self.conn.close()

    def create(self, ddl: str) -> None:
        """Create a TEMP table (``ddl`` must say ``CREATE TEMP TABLE``)."""
        if "TEMP" not in ddl.upper().split("TABLE", 1)[0]:
            raise ValueError("staging tables must be TEMP tables")
        self.conn.execute(ddl)

    def load(self, sql: str, rows: Iterable[tuple[Any, ...]]) -> None:
        """Run ``sql`` for every row, ``STAGE_CHUNK_ROWS`` rows per temporary-table transaction.

        The row iterator may raise (a bad line): what was staged stays private and unpublished.
        """
        iterator: Iterator[tuple[Any, ...]] = iter(rows)
        self.load_chunks(sql, iter(lambda: list(islice(iterator, STAGE_CHUNK_ROWS)), []))

    def load_chunks(self, sql: str, chunks: Iterable[Iterable[tuple[Any, ...]]]) -> None:
        """:meth:`load` for rows that come in bounded chunks already: one transaction each."""
        for chunk in chunks:
            self.conn.execute("BEGIN")
            try:
                self.conn.executemany(sql, chunk)
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def load_values(self, insert: str, width: int, tail: str, chunks: Iterable[list[Any]]) -> None:
        """Stage chunks of rows given flat (``width`` values per row, row after row), one
        transaction each, as ``insert VALUES (...), (...), ... tail`` statements of
        :data:`VALUES_PER_STATEMENT` rows: the sqlite3 module's cost per executed statement
        is then shared by several rows (1.0 against 1.9 µs a row for the ratings' stage)."""
        row = "(" + ",".join("?" * width) + ")"

        def sql(rows: int) -> str:
            return f"{insert} VALUES {','.join([row] * rows)} {tail}"

        many, step = sql(VALUES_PER_STATEMENT), VALUES_PER_STATEMENT * width
        for flat in chunks:
            full = len(flat) - len(flat) % step
            self.conn.execute("BEGIN")
            try:
                self.conn.executemany(many, (flat[i : i + step] for i in range(0, full, step)))
                if full < len(flat):
                    self.conn.execute(sql((len(flat) - full) // width), flat[full:])
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return list(self.conn.execute(sql, params).fetchall())

    def publish(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in one write transaction on the real tables.

        Waiting for the write lock is bounded by the busy policy; past it ``DatabaseBusyError``
        (a ``StorageError``) is raised and the transaction leaves nothing behind.
        """
        with transaction(self.conn) as conn:
            return fn(conn)

    def publish_chunks(
        self,
        chunks: Iterable[tuple[Any, ...]],
        fn: Callable[[sqlite3.Connection, tuple[Any, ...]], int],
        what: str,
        finish: Callable[[sqlite3.Connection], None] | None = None,
    ) -> int:
        """Run ``fn(conn, chunk)`` for each chunk in its own write transaction, then
        ``finish(conn)`` in one more (work that holds the lock long, like building an index,
        so that no chunk's transaction adds it); sum ``fn``'s results.

        The first transaction records ``what`` under :data:`PUBLISHING_KEY`; the last one
        removes it.
        """
        steps = [functools.partial(_chunk_step, fn, chunk) for chunk in chunks]
        if finish is not None:
            steps.append(functools.partial(_finished, finish))
        total = 0
        for number, run in enumerate(steps):
            first, last = number == 0, number == len(steps) - 1

            def step(
                conn: sqlite3.Connection,
                run: Callable[[sqlite3.Connection], int] = run,
                first: bool = first,
                last: bool = last,
            ) -> int:
                if first and not last:
                    conn.execute(
                        "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)",
                        (PUBLISHING_KEY, json.dumps({"import": what, "chunks": len(steps)})),
                    )
                done = run(conn)
                if last and not first:
                    conn.execute("DELETE FROM kv WHERE key = ?", (PUBLISHING_KEY,))
                return done

            total += self.publish(step)
            if not last:
                time.sleep(CHUNK_PAUSE_S)
        return total


def _chunk_step(
    fn: Callable[[sqlite3.Connection, tuple[Any, ...]], int],
    chunk: tuple[Any, ...],
    conn: sqlite3.Connection,
) -> int:
    return fn(conn, chunk)


def _finished(finish: Callable[[sqlite3.Connection], None], conn: sqlite3.Connection) -> int:
    """``finish`` as a publish step (it writes no counted rows)."""
    finish(conn)
    return 0
