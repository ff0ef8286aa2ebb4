"""Ports: what the core needs from parts that are plugged in from outside (retraining).

:class:`training.retrain.RetrainService` implements :class:`RetrainControl` (APScheduler job,
trainer subprocess, quality gate) and is handed to ``Core(retrain=...)`` or
``Core.set_retrain_control``. Until one is plugged in, the core answers ``/model`` from storage
and ``/retrain`` with "not configured".
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from training.retrain_types import Notify, RetrainStatus, RetrainTicket

__all__ = ["Notify", "RetrainControl", "RetrainStatus", "RetrainTicket"]


@runtime_checkable
class RetrainControl(Protocol):
    """Start retraining on request, report on it, and reload the serving model."""

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

    async def reload(self) -> str:
        """Load the serving model again through the registry; a line saying what serves now."""
        ...
