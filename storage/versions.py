"""Trained model versions and the training runs that produced them."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from storage.db import Database, utcnow
from storage.rows import ModelVersion, TrainingRun, json_doc

_VERSION_COLS = "id, path, created_at, promoted_at, status, metrics, fingerprint, run_id"
_RUN_COLS = (
    "id, trigger, requested_by, started_at, finished_at, status, progress, data_size, "
    "candidate_metrics, serving_metrics, decision, error, pid"
)
#: The training_runs columns a run may change after it started.
RUN_FIELDS = frozenset(
    {
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
)


def _version(r: Sequence[Any]) -> ModelVersion:
    return ModelVersion(r[0], r[1], r[2], r[3], r[4], json_doc(r[5]), r[6], r[7])


def _run(r: Sequence[Any]) -> TrainingRun:
    return TrainingRun(
        id=r[0],
        trigger=r[1],
        requested_by=r[2],
        started_at=r[3],
        finished_at=r[4],
        status=r[5],
        progress=json_doc(r[6]),
        data_size=json_doc(r[7]),
        candidate_metrics=json_doc(r[8]),
        serving_metrics=json_doc(r[9]),
        decision=r[10],
        error=r[11],
        pid=r[12],
    )


class ModelVersions:
    """Rows of ``model_versions``; at most one has status ``serving``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(
        self,
        path: str,
        metrics: dict[str, Any],
        fingerprint: str | None,
        run_id: int | None = None,
        status: str = "candidate",
    ) -> int:
        def run(c: sqlite3.Connection) -> int:
            cur = c.execute(
                "INSERT INTO model_versions "
                "(path, created_at, status, metrics, fingerprint, run_id) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (path, utcnow(), status, json.dumps(metrics), fingerprint, run_id),
            )
            return int(cur.lastrowid or 0)

        return self._db.write(run)

    def promote(self, version_id: int) -> None:
        """Make ``version_id`` the serving version; the previous serving one is retired."""

        def run(c: sqlite3.Connection) -> None:
            c.execute("UPDATE model_versions SET status = 'retired' WHERE status = 'serving'")
            c.execute(
                "UPDATE model_versions SET status = 'serving', promoted_at = ? WHERE id = ?",
                (utcnow(), version_id),
            )

        self._db.write(run)

    def set_status(self, version_id: int, status: str) -> None:
        self._db.write(
            lambda c: c.execute(
                "UPDATE model_versions SET status = ? WHERE id = ?", (status, version_id)
            )
        )

    def all(self, status: str | None = None) -> list[ModelVersion]:
        """The versions (only those with ``status`` when given), newest first."""
        where, params = ("WHERE status = ?", (status,)) if status else ("", ())
        rows = self._db.query(
            f"SELECT {_VERSION_COLS} FROM model_versions {where} ORDER BY id DESC", params
        )
        return [_version(r) for r in rows]

    def serving(self) -> ModelVersion | None:
        rows = self.all("serving")
        return rows[0] if rows else None


class TrainingRuns:
    """Rows of ``training_runs``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def start(self, trigger: str, requested_by: str | None, pid: int | None = None) -> int:
        def run(c: sqlite3.Connection) -> int:
            cur = c.execute(
                "INSERT INTO training_runs (trigger, requested_by, started_at, status, pid) "
                "VALUES (?, ?, ?, 'running', ?)",
                (trigger, requested_by, utcnow(), pid),
            )
            return int(cur.lastrowid or 0)

        return self._db.write(run)

    def update(self, run_id: int, **fields: Any) -> None:
        """Set some of :data:`RUN_FIELDS`; dict values are stored as JSON."""
        unknown = set(fields) - RUN_FIELDS
        if unknown:
            raise ValueError(f"unknown training run fields: {sorted(unknown)}")
        values = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in fields.items()}
        assignments = ", ".join(f"{k} = :{k}" for k in values)
        self._db.write(
            lambda c: c.execute(
                f"UPDATE training_runs SET {assignments} WHERE id = :id", {**values, "id": run_id}
            )
        )

    def get(self, run_id: int) -> TrainingRun | None:
        rows = self._db.query(f"SELECT {_RUN_COLS} FROM training_runs WHERE id = ?", (run_id,))
        return _run(rows[0]) if rows else None

    def recent(self, status: str | None = None, limit: int = 20) -> list[TrainingRun]:
        """The newest runs (only those with ``status`` when given), newest first."""
        where, params = ("WHERE status = ?", (status,)) if status else ("", ())
        rows = self._db.query(
            f"SELECT {_RUN_COLS} FROM training_runs {where} ORDER BY id DESC LIMIT ?",
            (*params, limit),
        )
        return [_run(r) for r in rows]
