"""The values a retrain request and a status query answer with.

Plain data, shared by the trainer side (:mod:`training.retrain`) and the bot core's
``RetrainControl`` port (:mod:`bot.core.ports`), so neither has to mirror the other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from storage.rows import TrainingRun

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
    last_run: TrainingRun | None = None
    next_run: str | None = None  # ISO 8601, from the scheduler
    running: RetrainTicket | None = None  # the run in progress, if any
