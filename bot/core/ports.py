"""Ports: what the core needs from parts that are plugged in from outside (retraining).

The retraining issue implements :class:`RetrainControl` (APScheduler job, trainer subprocess,
quality gate) and hands it to ``Core(retrain=...)`` or ``Core.set_retrain_control``. Until one is
plugged in, the core answers ``/model`` from storage and ``/retrain`` with "not configured".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

#: Tells the admin who asked (in the chat where they asked) how a run ended: one line of text.
Notify = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class RetrainTicket:
    """The answer to a retrain request.

    ``started`` is False when a run was already going (then ``run_id``, ``started_at`` and
    ``progress`` describe that run, e.g. progress "epoch 3/12").
    """

    started: bool
    run_id: int | None = None
    started_at: str | None = None  # ISO 8601
    progress: str | None = None  # "epoch 3/12", "evaluating", ...
    message: str = ""  # optional extra line for the admin


@dataclass(frozen=True)
class RetrainStatus:
    """What ``/model`` shows."""

    serving_version: str | None = None
    serving_path: str | None = None
    serving_metrics: dict[str, float] = field(default_factory=dict)
    trained_at: str | None = None
    last_run: dict[str, Any] | None = None  # a training_runs row (storage's dict form)
    next_run: str | None = None  # ISO 8601, from the scheduler
    running: RetrainTicket | None = None  # the run in progress, if any


@runtime_checkable
class RetrainControl(Protocol):
    """Start retraining on request and report on it. Implemented by the retraining issue."""

    async def request(
        self, trigger: str, requested_by: str | None, notify: Notify | None = None
    ) -> RetrainTicket:
        """Queue a retrain (``trigger``: "admin", "schedule", "cli"); never two at once.

        Returns at once (the run goes on in the background); ``notify`` is awaited with the
        outcome ("promoted v7: NDCG@10 0.31 -> 0.33" / "rejected ..." / "failed: ...").
        """
        ...

    async def status(self) -> RetrainStatus:
        """The serving version and its metrics, the last run and the next scheduled run."""
        ...
