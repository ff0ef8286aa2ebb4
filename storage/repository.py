"""The repository: the one place that knows each table. No SQL lives outside ``storage/``.

``Store`` is cheap to construct and holds one SQLite connection. It is safe to share between
threads of one process (a lock serialises use of the connection); each process opens its own.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import numpy as np
import sqlite_utils

from storage.db import open_database, transaction, with_retry
from storage.schema import DATASET_PLATFORM, STATUSES


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Anime:
    anime_id: int
    title: str
    genres: tuple[str, ...]
    type: str | None
    episodes: int | None
    mal_score: float | None
    members: int
    nsfw: bool


@dataclass(frozen=True)
class User:
    id: int
    platform: str
    platform_user_id: str
    display_name: str | None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.platform}:{self.platform_user_id}"


@dataclass(frozen=True)
class Rating:
    anime_id: int
    score: int | None  # None: on the list, not scored
    status: str | None
    source: str
    updated_at: str


@dataclass(frozen=True)
class Chat:
    platform: str
    chat_id: str
    title: str | None
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InteractionArrays:
    """Every rating row as parallel arrays, for training. ``score`` is 0 where unscored."""

    user_ids: np.ndarray  # int64, internal users.id
    anime_ids: np.ndarray  # int64, MyAnimeList ids
    scores: np.ndarray  # int8, 0 = watched but not scored
    statuses: np.ndarray  # object, may hold None
    platforms: np.ndarray  # object, per row: the user's platform
    updated_at: np.ndarray  # object, ISO timestamps


class ScoreError(ValueError):
    """A score outside 1-10."""


def validate_score(score: int | None) -> int | None:
    if score is None:
        return None
    if isinstance(score, bool) or not isinstance(score, int | np.integer) or not 1 <= score <= 10:
        raise ScoreError(f"score must be a whole number from 1 to 10, got {score!r}")
    return int(score)


def split_genres(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    return tuple(g.strip() for g in text.split(",") if g.strip())


class Store:
    """Typed access to the Anirec database."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.db: sqlite_utils.Database = open_database(self.path)
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self.db.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------------------------
    def _query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return with_retry(lambda: self.db.execute(sql, params).fetchall())

    def _write(self, fn) -> Any:
        """Run ``fn(conn)`` in one IMMEDIATE transaction, retried while the database is busy."""

        def attempt():
            with self._lock, transaction(self.db) as conn:
                return fn(conn)

        return with_retry(attempt)

    def write_batch(self, fn) -> Any:
        """Public form of :meth:`_write` for importers that must be all-or-nothing."""
        return self._write(fn)

    # -- catalog -----------------------------------------------------------------------------
    def upsert_anime(self, rows: Iterable[Anime], conn: sqlite3.Connection | None = None) -> int:
        """Insert or update catalog rows; returns how many rows were new or changed."""

        def run(c: sqlite3.Connection) -> int:
            before = c.total_changes
            c.executemany(
                """
                INSERT INTO anime (anime_id, title, genres, type, episodes, mal_score, members, nsfw)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(anime_id) DO UPDATE SET
                    title=excluded.title, genres=excluded.genres, type=excluded.type,
                    episodes=excluded.episodes, mal_score=excluded.mal_score,
                    members=excluded.members, nsfw=excluded.nsfw
                WHERE (anime.title, anime.genres, anime.type, anime.episodes, anime.mal_score,
                       anime.members, anime.nsfw)
                   IS NOT (excluded.title, excluded.genres, excluded.type, excluded.episodes,
                           excluded.mal_score, excluded.members, excluded.nsfw)
                """,
                [
                    (
                        a.anime_id,
                        a.title,
                        ", ".join(a.genres),
                        a.type,
                        a.episodes,
                        a.mal_score,
                        a.members,
                        int(a.nsfw),
                    )
                    for a in rows
                ],
            )
            return c.total_changes - before

        return run(conn) if conn is not None else self._write(run)

    def anime_ids(self) -> set[int]:
        return {r[0] for r in self._query("SELECT anime_id FROM anime")}

    def get_anime(self, anime_id: int) -> Anime | None:
        rows = self._query(f"SELECT {_ANIME_COLS} FROM anime WHERE anime_id = ?", (anime_id,))
        return _anime(rows[0]) if rows else None

    def all_anime(self) -> list[Anime]:
        return [
            _anime(r) for r in self._query(f"SELECT {_ANIME_COLS} FROM anime ORDER BY anime_id")
        ]

    def anime_rating_counts(self) -> dict[int, int]:
        """How many list rows each anime has (popularity inside our own data)."""
        return dict(self._query("SELECT anime_id, COUNT(*) FROM ratings GROUP BY anime_id"))

    # -- aliases -----------------------------------------------------------------------------
    def add_aliases(
        self,
        pairs: Iterable[tuple[str, int]],
        source: str = "import",
        conn: sqlite3.Connection | None = None,
    ) -> int:
        def run(c: sqlite3.Connection) -> int:
            before = c.total_changes
            c.executemany(
                "INSERT OR IGNORE INTO anime_aliases (alias, anime_id, source) VALUES (?, ?, ?)",
                [(alias.strip(), int(aid), source) for alias, aid in pairs if alias.strip()],
            )
            return c.total_changes - before

        return run(conn) if conn is not None else self._write(run)

    def aliases(self) -> list[tuple[str, int]]:
        return [(r[0], r[1]) for r in self._query("SELECT alias, anime_id FROM anime_aliases")]

    # -- users -------------------------------------------------------------------------------
    def get_or_create_user(
        self, platform: str, platform_user_id: str | int, display_name: str | None = None
    ) -> User:
        """The user for a platform identity, created on first sight; the name is kept fresh."""
        pid = str(platform_user_id)

        def run(c: sqlite3.Connection) -> None:
            c.execute(
                """
                INSERT INTO users (platform, platform_user_id, display_name, created_at)
                VALUES (?, ?, ?, ?)
                ON CONFLICT(platform, platform_user_id) DO UPDATE SET
                    display_name = COALESCE(excluded.display_name, users.display_name)
                WHERE excluded.display_name IS NOT NULL
                  AND excluded.display_name IS NOT users.display_name
                """,
                (platform, pid, display_name, utcnow()),
            )

        self._write(run)
        user = self.get_user(platform, pid)
        assert user is not None
        return user

    def get_user(self, platform: str, platform_user_id: str | int) -> User | None:
        rows = self._query(
            f"SELECT {_USER_COLS} FROM users WHERE platform = ? AND platform_user_id = ?",
            (platform, str(platform_user_id)),
        )
        return _user(rows[0]) if rows else None

    def get_user_by_id(self, user_id: int) -> User | None:
        rows = self._query(f"SELECT {_USER_COLS} FROM users WHERE id = ?", (user_id,))
        return _user(rows[0]) if rows else None

    def find_users_by_name(self, platform: str, display_name: str) -> list[User]:
        rows = self._query(
            f"SELECT {_USER_COLS} FROM users WHERE platform = ? AND display_name = ? COLLATE NOCASE",
            (platform, display_name),
        )
        return [_user(r) for r in rows]

    def update_user_settings(self, user_id: int, **changes: Any) -> dict[str, Any]:
        def run(c: sqlite3.Connection) -> dict[str, Any]:
            row = c.execute("SELECT settings FROM users WHERE id = ?", (user_id,)).fetchone()
            if row is None:
                raise KeyError(f"no user {user_id}")
            settings = {**json.loads(row[0]), **changes}
            c.execute("UPDATE users SET settings = ? WHERE id = ?", (json.dumps(settings), user_id))
            return settings

        return self._write(run)

    def ensure_dataset_users(
        self, dataset_ids: Iterable[str], conn: sqlite3.Connection
    ) -> dict[str, int]:
        """Create the data-set users that do not exist yet; map data-set id -> users.id."""
        ids = sorted(set(dataset_ids))
        now = utcnow()
        conn.executemany(
            "INSERT OR IGNORE INTO users (platform, platform_user_id, created_at) VALUES (?, ?, ?)",
            [(DATASET_PLATFORM, i, now) for i in ids],
        )
        mapping: dict[str, int] = {}
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            marks = ",".join("?" * len(chunk))
            for pid, uid in conn.execute(
                f"SELECT platform_user_id, id FROM users WHERE platform = ? "
                f"AND platform_user_id IN ({marks})",
                (DATASET_PLATFORM, *chunk),
            ):
                mapping[pid] = uid
        return mapping

    # -- ratings -----------------------------------------------------------------------------
    def upsert_rating(
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
        self._write(
            lambda c: self.upsert_ratings_rows(c, [(user_id, anime_id, score, status)], source)
        )

    @staticmethod
    def upsert_ratings_rows(
        conn: sqlite3.Connection,
        rows: Iterable[tuple[int, int, int | None, str | None]],
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
            """
            INSERT INTO ratings (user_id, anime_id, score, status, source, updated_at)
            VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT(user_id, anime_id) DO UPDATE SET
                score = excluded.score,
                status = COALESCE(excluded.status, ratings.status),
                source = excluded.source,
                updated_at = excluded.updated_at
            WHERE ratings.score IS NOT excluded.score
               OR (excluded.status IS NOT NULL AND ratings.status IS NOT excluded.status)
               OR ratings.source IS NOT excluded.source
            """,
            ((u, a, s, st, source, now) for u, a, s, st in rows),
        )
        return conn.total_changes - before

    def delete_rating(self, user_id: int, anime_id: int) -> bool:
        def run(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "DELETE FROM ratings WHERE user_id = ? AND anime_id = ?", (user_id, anime_id)
            )
            return cur.rowcount > 0

        return self._write(run)

    def user_ratings(self, user_id: int) -> list[Rating]:
        rows = self._query(
            "SELECT anime_id, score, status, source, updated_at FROM ratings WHERE user_id = ? "
            "ORDER BY updated_at, anime_id",
            (user_id,),
        )
        return [Rating(*r) for r in rows]

    def rating_stamp(self, user_id: int) -> tuple[int, str | None, float]:
        """(number of list rows, latest updated_at, sum of scores) of a user: a cheap change
        detector that lets a cache notice a rating written by any path (one indexed query)."""
        row = self._query(
            "SELECT COUNT(*), MAX(updated_at), TOTAL(score) FROM ratings WHERE user_id = ?",
            (user_id,),
        )[0]
        return int(row[0]), row[1], float(row[2])

    def user_ratings_many(self, user_ids: Sequence[int]) -> dict[int, list[Rating]]:
        result: dict[int, list[Rating]] = {u: [] for u in user_ids}
        if not user_ids:
            return result
        marks = ",".join("?" * len(user_ids))
        for r in self._query(
            "SELECT user_id, anime_id, score, status, source, updated_at FROM ratings "
            f"WHERE user_id IN ({marks}) ORDER BY updated_at, anime_id",
            tuple(user_ids),
        ):
            result[r[0]].append(Rating(*r[1:]))
        return result

    def interaction_arrays(self, platforms: Sequence[str] | None = None) -> InteractionArrays:
        """All rating rows as numpy arrays (one query, no per-row Python objects kept)."""
        where, params = "", ()
        if platforms:
            where = f"WHERE u.platform IN ({','.join('?' * len(platforms))})"
            params = tuple(platforms)
        rows = self._query(
            "SELECT r.user_id, r.anime_id, COALESCE(r.score, 0), r.status, u.platform, "
            f"r.updated_at FROM ratings r JOIN users u ON u.id = r.user_id {where} "
            "ORDER BY r.user_id, r.anime_id",
            params,
        )
        if not rows:
            empty = np.empty(0, dtype=object)
            return InteractionArrays(
                np.empty(0, np.int64),
                np.empty(0, np.int64),
                np.empty(0, np.int8),
                empty,
                empty,
                empty,
            )
        cols = list(zip(*rows, strict=True))
        return InteractionArrays(
            user_ids=np.asarray(cols[0], dtype=np.int64),
            anime_ids=np.asarray(cols[1], dtype=np.int64),
            scores=np.asarray(cols[2], dtype=np.int8),
            statuses=np.asarray(cols[3], dtype=object),
            platforms=np.asarray(cols[4], dtype=object),
            updated_at=np.asarray(cols[5], dtype=object),
        )

    # -- chats -------------------------------------------------------------------------------
    def get_or_create_chat(
        self, platform: str, chat_id: str | int, title: str | None = None
    ) -> Chat:
        cid = str(chat_id)
        self._write(
            lambda c: c.execute(
                "INSERT INTO chats (platform, chat_id, title, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(platform, chat_id) DO UPDATE SET title = COALESCE(excluded.title, "
                "chats.title) WHERE excluded.title IS NOT NULL AND excluded.title IS NOT chats.title",
                (platform, cid, title, utcnow()),
            )
        )
        row = self._query(
            "SELECT platform, chat_id, title, settings FROM chats WHERE platform = ? AND chat_id = ?",
            (platform, cid),
        )[0]
        return Chat(row[0], row[1], row[2], json.loads(row[3]))

    def update_chat_settings(
        self, platform: str, chat_id: str | int, **changes: Any
    ) -> dict[str, Any]:
        self.get_or_create_chat(platform, chat_id)

        def run(c: sqlite3.Connection) -> dict[str, Any]:
            row = c.execute(
                "SELECT settings FROM chats WHERE platform = ? AND chat_id = ?",
                (platform, str(chat_id)),
            ).fetchone()
            settings = {**json.loads(row[0]), **changes}
            c.execute(
                "UPDATE chats SET settings = ? WHERE platform = ? AND chat_id = ?",
                (json.dumps(settings), platform, str(chat_id)),
            )
            return settings

        return self._write(run)

    # -- models and training runs ------------------------------------------------------------
    def add_model_version(
        self,
        path: str,
        metrics: dict[str, Any],
        fingerprint: str | None,
        run_id: int | None = None,
        status: str = "candidate",
    ) -> int:
        def run(c: sqlite3.Connection) -> int:
            cur = c.execute(
                "INSERT INTO model_versions (path, created_at, status, metrics, fingerprint, run_id)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (path, utcnow(), status, json.dumps(metrics), fingerprint, run_id),
            )
            return int(cur.lastrowid)

        return self._write(run)

    def promote_model_version(self, version_id: int) -> None:
        """Make ``version_id`` the serving version; the previous serving one is retired."""

        def run(c: sqlite3.Connection) -> None:
            c.execute("UPDATE model_versions SET status = 'retired' WHERE status = 'serving'")
            c.execute(
                "UPDATE model_versions SET status = 'serving', promoted_at = ? WHERE id = ?",
                (utcnow(), version_id),
            )

        self._write(run)

    def set_model_version_status(self, version_id: int, status: str) -> None:
        self._write(
            lambda c: c.execute(
                "UPDATE model_versions SET status = ? WHERE id = ?", (status, version_id)
            )
        )

    def model_versions(self, status: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM model_versions"
        params: tuple = ()
        if status:
            sql += " WHERE status = ?"
            params = (status,)
        with self._lock:
            cur = with_retry(lambda: self.db.execute(sql + " ORDER BY id DESC", params))
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        return [_decode(dict(zip(names, r, strict=True)), "metrics") for r in rows]

    def serving_model_version(self) -> dict[str, Any] | None:
        rows = self.model_versions("serving")
        return rows[0] if rows else None

    def start_training_run(
        self, trigger: str, requested_by: str | None, pid: int | None = None
    ) -> int:
        def run(c: sqlite3.Connection) -> int:
            cur = c.execute(
                "INSERT INTO training_runs (trigger, requested_by, started_at, status, pid) "
                "VALUES (?, ?, ?, 'running', ?)",
                (trigger, requested_by, utcnow(), pid),
            )
            return int(cur.lastrowid)

        return self._write(run)

    def update_training_run(self, run_id: int, **fields: Any) -> None:
        allowed = {
            "finished_at",
            "status",
            "progress",
            "data_size",
            "candidate_metrics",
            "serving_metrics",
            "decision",
            "error",
            "pid",
        }
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown training run fields: {sorted(unknown)}")
        values = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in fields.items()}
        assignments = ", ".join(f"{k} = :{k}" for k in values)
        self._write(
            lambda c: c.execute(
                f"UPDATE training_runs SET {assignments} WHERE id = :id", {**values, "id": run_id}
            )
        )

    def training_runs(self, status: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        sql = "SELECT * FROM training_runs"
        params: tuple = ()
        if status:
            sql += " WHERE status = ?"
            params = (status,)
        with self._lock:
            cur = with_retry(
                lambda: self.db.execute(sql + " ORDER BY id DESC LIMIT ?", (*params, limit))
            )
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        return [
            _decode(
                dict(zip(names, r, strict=True)),
                "progress",
                "data_size",
                "candidate_metrics",
                "serving_metrics",
            )
            for r in rows
        ]

    # -- audit and key/value -----------------------------------------------------------------
    def audit(self, actor: str, action: str, **details: Any) -> None:
        self._write(
            lambda c: c.execute(
                "INSERT INTO audit_log (at, actor, action, details) VALUES (?, ?, ?, ?)",
                (utcnow(), actor, action, json.dumps(details, default=str)),
            )
        )

    def audit_entries(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT id, at, actor, action, details FROM audit_log ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [
            {"id": r[0], "at": r[1], "actor": r[2], "action": r[3], "details": json.loads(r[4])}
            for r in rows
        ]

    def get_value(self, key: str, default: str | None = None) -> str | None:
        rows = self._query("SELECT value FROM kv WHERE key = ?", (key,))
        return rows[0][0] if rows else default

    def set_value(self, key: str, value: str) -> None:
        self._write(
            lambda c: c.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
        )

    # -- statistics --------------------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        row = self._query(
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
        return {
            "anime": row[0],
            "users": row[1],
            "ratings": row[2],
            "scored": row[3],
            "chat_users": row[4],
            "nsfw_anime": row[5],
            "model_versions": row[6],
        }

    def iter_table(self, table: str) -> Iterator[dict[str, Any]]:
        """Rows of a table as dicts (admin and debugging use)."""
        yield from self.db[table].rows


_ANIME_COLS = "anime_id, title, genres, type, episodes, mal_score, members, nsfw"
_USER_COLS = "id, platform, platform_user_id, display_name, settings"


def _anime(r: Sequence[Any]) -> Anime:
    return Anime(r[0], r[1], split_genres(r[2]), r[3], r[4], r[5], r[6], bool(r[7]))


def _user(r: Sequence[Any]) -> User:
    return User(r[0], r[1], r[2], r[3], json.loads(r[4]))


def _decode(row: dict[str, Any], *json_fields: str) -> dict[str, Any]:
    for name in json_fields:
        if row.get(name) is not None:
            row[name] = json.loads(row[name])
    return row
