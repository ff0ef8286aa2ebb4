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
    ) -> int:
        """Run ``fn(conn, chunk)`` for each chunk in its own write transaction; sum the results.

        The first transaction records ``what`` under :data:`PUBLISHING_KEY`; the last one
        removes it.
        """
        pending = list(chunks)
        total = 0
        for number, chunk in enumerate(pending):
            first, last = number == 0, number == len(pending) - 1

            def step(
                conn: sqlite3.Connection,
                chunk: tuple[Any, ...] = chunk,
                first: bool = first,
                last: bool = last,
            ) -> int:
                if first and not last:
                    conn.execute(
                        "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)",
                        (PUBLISHING_KEY, json.dumps({"import": what, "chunks": len(pending)})),
                    )
                done = fn(conn, chunk)
                if last and not first:
                    conn.execute("DELETE FROM kv WHERE key = ?", (PUBLISHING_KEY,))
                return done

            total += self.publish(step)
            if not last:
                time.sleep(CHUNK_PAUSE_S)
        return total
