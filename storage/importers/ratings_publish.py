"""The ratings import's publish: staged users and rows into the real tables, chunk by chunk.

Each chunk is one write transaction (see :meth:`storage.staging.Staging.publish_chunks`) over a
range of the per-file user numbers the importer staged (``stage_users``, ``stage_ratings``,
``stage_anime``); the connection runs without per-row foreign-key checks, so each chunk first
checks the staged anime against the catalog itself.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from storage.db import utcnow
from storage.ratings import RATING_UPSERT
from storage.schema import DATASET_PLATFORM, RATINGS_ANIME_INDEX
from storage.staging import Staging

#: A publish of at least this many times the stored rows rebuilds the anime index at its end.
INDEX_REBUILD_RATIO = 2

#: A staged anime no longer in the catalog (it changed since the rows were checked).
_GONE_ANIME = """
SELECT s.anime_id FROM temp.stage_anime s
WHERE NOT EXISTS (SELECT 1 FROM main.anime a WHERE a.anime_id = s.anime_id) LIMIT 1
"""
_PUBLISH_USERS = """
INSERT INTO main.users (platform, platform_user_id, created_at)
SELECT ?1, user, ?2 FROM temp.stage_users
WHERE num > ?3 AND num <= ?4 ORDER BY num
ON CONFLICT (platform, platform_user_id) DO NOTHING
"""
# Same rule as Ratings.upsert_rows: an identical row is left alone, updated_at too. The join
# order (CROSS JOIN fixes it) looks each user up once and reads the staged rows in key order,
# so no sort is needed and new users' rows append to the ratings B-tree.
_PUBLISH_RATINGS = (
    """
INSERT INTO main.ratings (user_id, anime_id, score, status, source, updated_at)
SELECT u.id, s.anime_id, s.score, s.status, 'dataset', ?2
FROM temp.stage_users su
CROSS JOIN main.users u
CROSS JOIN temp.stage_ratings s
WHERE su.num > ?3 AND su.num <= ?4
  AND u.platform = ?1 AND u.platform_user_id = su.user
  AND s.num = su.num
ORDER BY su.num, s.anime_id
"""
    + RATING_UPSERT
)


def user_ranges(per_user: list[tuple[Any, ...]], rows_per_chunk: int) -> list[tuple[int, int]]:
    """(after, up to) user-number bounds of chunks of about ``rows_per_chunk`` staged rows
    each, from (user number, rows, ...) in number order; a user's rows always stay in one
    chunk. No staged rows, no chunks."""
    bounds: list[tuple[int, int]] = []
    after, last, count = 0, 0, 0
    for num, rows, *_ in per_user:
        count, last = count + rows, num
        if count >= rows_per_chunk:
            bounds.append((after, num))
            after, count = num, 0
    if count:
        bounds.append((after, last))
    return bounds


def rebuilds_index(staging: Staging, staged: int) -> bool:
    """Whether the publish drops ``ratings_anime`` and builds it again at the end: when the
    staged rows outnumber those stored ``INDEX_REBUILD_RATIO`` times, one sort of the whole
    table costs far less than a B-tree insert per staged row (a re-import, where the file's
    rows are already stored, keeps the index and so writes nothing)."""
    stored = staging.query("SELECT COUNT(*) FROM main.ratings")[0][0]
    return staged > 0 and staged >= INDEX_REBUILD_RATIO * stored


def publisher(
    bounds: list[tuple[int, int]], rebuild_index: bool
) -> tuple[
    Callable[[sqlite3.Connection, tuple[int, int]], int],
    Callable[[sqlite3.Connection], None] | None,
]:
    """(:func:`_publish_range`, the step that ends the publish or None): with
    ``rebuild_index`` the index is dropped in the first chunk's transaction and made again in
    a transaction of its own after the last chunk (so no chunk holds the write lock for the
    whole sort). Readers in between find every row, by a scan instead of the index; a publish
    cut short leaves the index out until the database is next opened (:class:`Store` makes
    it again), and the rest of its rows until the import is run again."""

    def publish(conn: sqlite3.Connection, chunk: tuple[int, int]) -> int:
        if rebuild_index and chunk == bounds[0]:
            conn.execute("DROP INDEX IF EXISTS ratings_anime")
        return _publish_range(conn, chunk)

    def build_index(conn: sqlite3.Connection) -> None:
        conn.execute(RATINGS_ANIME_INDEX)

    return publish, (build_index if rebuild_index and bounds else None)


def _publish_range(conn: sqlite3.Connection, bounds: tuple[int, int]) -> int:
    """Publish the staged users (and their rows) numbered ``after < num <= up_to``."""
    after, up_to = bounds
    now = utcnow()
    params = (DATASET_PLATFORM, now, after, up_to)
    conn.execute(_PUBLISH_USERS, params)
    gone = conn.execute(_GONE_ANIME).fetchone()
    if gone:
        raise sqlite3.IntegrityError(f"anime {gone[0]} is no longer in the catalog")
    before = conn.total_changes
    conn.execute(_PUBLISH_RATINGS, params)
    return conn.total_changes - before
