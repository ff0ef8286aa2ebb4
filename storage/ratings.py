"""Users' lists: one row per (user, anime), with a score or without one."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from storage.db import Database, utcnow
from storage.rows import InteractionArrays, Rating, RatingStamp, validate_score
from storage.schema import STATUSES

#: Rows per page when :meth:`Ratings.arrays` reads the whole table.
ARRAY_CHUNK_ROWS = 100_000
#: (user_id, anime_id, score, status), as the bulk upsert takes them.
RatingRow = tuple[int, int, int | None, str | None]


#: The ratings-by-anime index as the schema makes it (bulk imports drop and rebuild it).

#: How a list row meets the one already stored: a changed score, status or source updates it
#: (a missing status keeps the stored one); an unchanged row is not rewritten. Shared by row
#: upserts and the importer's staged publish.
RATING_UPSERT = """
ON CONFLICT(user_id, anime_id) DO UPDATE SET
    score = excluded.score,
    status = COALESCE(excluded.status, ratings.status),
    source = excluded.source,
    updated_at = excluded.updated_at
WHERE ratings.score IS NOT excluded.score
   OR (excluded.status IS NOT NULL AND ratings.status IS NOT excluded.status)
   OR ratings.source IS NOT excluded.source
"""


class Ratings:
    """Rows of ``ratings``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def upsert(
        self,
        user_id: int,
        anime_id: int,
        score: int | None,
        status: str | None = None,
        source: str = "chat",
    ) -> None:
        """Record that a user has ``anime_id`` on their list, with a score or without one."""
        score = validate_score(score)
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown list status {status!r}; expected one of {STATUSES}")
        self._db.write(lambda c: self.upsert_rows(c, [(user_id, anime_id, score, status)], source))

    @staticmethod
    def upsert_rows(
        conn: sqlite3.Connection,
        rows: Iterable[RatingRow],
        source: str,
        updated_at: str | None = None,
    ) -> int:
        """Upsert (user_id, anime_id, score, status) rows inside the caller's transaction.

        A row identical to the stored one is left alone (its ``updated_at`` too), so that a
        re-import changes nothing. Returns the number of rows inserted or changed.
        """
        now = updated_at or utcnow()
        before = conn.total_changes
        conn.executemany(
            "INSERT INTO ratings (user_id, anime_id, score, status, source, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) " + RATING_UPSERT,
            ((u, a, s, st, source, now) for u, a, s, st in rows),
        )
        return conn.total_changes - before

    def delete(self, user_id: int, anime_id: int) -> bool:
        """Take ``anime_id`` off the user's list; False when it was not there."""

        def run(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "DELETE FROM ratings WHERE user_id = ? AND anime_id = ?", (user_id, anime_id)
            )
            return cur.rowcount > 0

        return self._db.write(run)

    def of_user(self, user_id: int) -> list[Rating]:
        """The user's list, oldest change first."""
        rows = self._db.query(
            "SELECT anime_id, score, status, source, updated_at FROM ratings WHERE user_id = ? "
            "ORDER BY updated_at, anime_id",
            (user_id,),
        )
        return [Rating(*r) for r in rows]

    def planned_by(self, anime_ids: Iterable[int]) -> list[tuple[int, int]]:
        """(user_id, anime_id) of every plan-to-watch row of ``anime_ids`` (the airing radar)."""
        ids = sorted({int(a) for a in anime_ids})
        found: list[tuple[int, int]] = []
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            found += [
                (int(r[0]), int(r[1]))
                for r in self._db.query(
                    "SELECT user_id, anime_id FROM ratings WHERE status = 'plan_to_watch' "
                    f"AND anime_id IN ({','.join('?' * len(chunk))}) ORDER BY user_id, anime_id",
                    chunk,
                )
            ]
        return found

    def stamp(self, user_id: int) -> RatingStamp:
        """A cheap change detector that lets a cache notice a rating written by any path (one
        indexed query). ``Users.find_with_stamp`` reads the same together with the user."""
        row = self._db.query(
            "SELECT COUNT(*), MAX(updated_at), TOTAL(score) FROM ratings WHERE user_id = ?",
            (user_id,),
        )[0]
        return RatingStamp(int(row[0]), row[1], float(row[2]))

    def arrays(
        self, platforms: Sequence[str] | None = None, chunk_rows: int = ARRAY_CHUNK_ROWS
    ) -> InteractionArrays:
        """All rating rows as numpy arrays, in (user, anime) order.

        Read ``chunk_rows`` rows per query (keyset pages in primary-key order), so that no
        per-row Python objects outlive a page: memory is the arrays themselves (their text
        columns share one string object per distinct value) plus one page. A rating written
        while the pages are read appears if its key is still ahead of the reader.
        """
        where, params = "", tuple[str, ...]()
        if platforms:
            where = f"AND u.platform IN ({','.join('?' * len(platforms))})"
            params = tuple(platforms)
        sql = (
            "SELECT r.user_id, r.anime_id, COALESCE(r.score, 0), r.status, u.platform, "
            "r.updated_at FROM ratings r JOIN users u ON u.id = r.user_id "
            f"WHERE (r.user_id, r.anime_id) > (?, ?) {where} "
            "ORDER BY r.user_id, r.anime_id LIMIT ?"
        )
        numbers: list[list[np.ndarray]] = [[], [], []]
        texts: list[list[Any]] = [[], [], []]
        shared: dict[Any, Any] = {}
        after = (-(2**63), -(2**63))
        while rows := self._db.query(sql, (*after, *params, chunk_rows)):
            cols = list(zip(*rows, strict=True))
            for out, col, dtype in zip(
                numbers, cols[:3], (np.int64, np.int64, np.int8), strict=True
            ):
                out.append(np.asarray(col, dtype=dtype))
            for out, col in zip(texts, cols[3:], strict=True):
                out.extend([shared.setdefault(v, v) for v in col])
            after = (rows[-1][0], rows[-1][1])
            if len(rows) < chunk_rows:
                break
        return InteractionArrays(
            user_ids=_joined(numbers[0], np.int64),
            anime_ids=_joined(numbers[1], np.int64),
            scores=_joined(numbers[2], np.int8),
            statuses=_objects(texts[0]),
            platforms=_objects(texts[1]),
            updated_at=_objects(texts[2]),
        )


def _joined(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def _objects(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
