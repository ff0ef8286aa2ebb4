"""Staging for big imports: validate into private temporary tables, then publish in one step.

A big import must neither hold memory in proportion to its file nor hold the database's write
lock while it reads. So an importer streams its rows, in bounded chunks, into TEMP tables of a
connection of its own (temporary tables live in a private file, take no lock on the database
and vanish with the connection, even after kill -9). Only when the whole file has been read and
validated does :meth:`Staging.publish` copy the rows into the real tables, in one short
``BEGIN IMMEDIATE`` transaction of plain SQL: readers never wait (WAL), chat writes queue behind
that one transaction for about a second, and the import stays all or nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from storage.db import open_database, transaction, with_retry

#: Rows staged per transaction of the temporary table: bounds the memory an import holds.
STAGE_CHUNK_ROWS = 20_000
T = TypeVar("T")


class Staging:
    """A private connection to the database file ``path``, for one import's temporary tables."""

    def __init__(self, path: str | Path) -> None:
        self._db = open_database(path)
        self.conn: sqlite3.Connection = self._db.conn
        # Never in RAM, whatever the build's default: the staged rows may be gigabytes.
        self.conn.execute("PRAGMA temp_store = FILE")

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
        while chunk := list(islice(iterator, STAGE_CHUNK_ROWS)):
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
        """Run ``fn(conn)`` in one write transaction on the real tables, retried while busy."""

        def attempt() -> T:
            with transaction(self._db) as conn:
                return fn(conn)

        return with_retry(attempt)
