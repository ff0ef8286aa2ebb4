"""The periodic retrain: an APScheduler 3.11 ``AsyncIOScheduler`` inside the bot's loop.

One job, ``retrain``, on the crontab from the settings (``ANIREC_RETRAIN_CRON``) with
``max_instances=1`` (the job awaits its run, so a slow run is never doubled), ``coalesce=True``
(several missed fire times become one run) and a misfire grace time.

Surviving restarts without a SQLAlchemy job store: a crontab is the same after a restart, so the
only state worth keeping is when the next run was due. It is kept in the database's kv table
(``retrain.schedule.next_run``); on start, a due time that passed while the bot was down is run
once, at once, if it is no older than the grace time, and logged as skipped otherwise.

Crontab day-of-week numbers are translated to names first: APScheduler 3 counts 0 as Monday,
crontab counts 0 (and 7) as Sunday.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from storage.repository import Store

log = logging.getLogger(__name__)

KV_NEXT = "retrain.schedule.next_run"
KV_LAST = "retrain.schedule.last_fire"
JOB_ID = "retrain"
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
OFF = ("", "off", "none", "never", "disabled")


class ScheduleError(ValueError):
    """A crontab that cannot be read (the message says which part)."""


def _cron_days(field: str) -> str:
    """A crontab day-of-week field with numbers (0/7 = Sunday) as APScheduler day names."""
    if not any(ch.isdigit() for ch in field) or any(ch.isalpha() for ch in field):
        return field
    days: set[int] = set()
    for part in field.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            lo, hi = 0, 6
        elif "-" in span:
            a, b = span.split("-", 1)
            lo, hi = int(a), int(b)
        else:
            lo = int(span)
            hi = 6 if step_text else lo
        if not (0 <= lo <= 7 and 0 <= hi <= 7 and step >= 1):
            raise ValueError(f"day of week {part!r} is outside 0-7")
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return ",".join(DAYS[d] for d in sorted(days))


def crontab_trigger(expr: str, timezone: Any = None) -> CronTrigger:
    """``CronTrigger.from_crontab`` with crontab's own day-of-week numbering."""
    parts = expr.split()
    if len(parts) != 5:
        raise ScheduleError(
            f"retrain cron {expr!r} must have 5 fields: minute hour day month "
            "day-of-week, e.g. '30 3 * * *'"
        )
    try:
        parts[4] = _cron_days(parts[4])
        return CronTrigger.from_crontab(" ".join(parts), timezone=timezone)
    except ValueError as exc:
        raise ScheduleError(f"retrain cron {expr!r}: {exc}") from None


def single_job_scheduler(
    job: Callable[[], Awaitable[object]],
    trigger: BaseTrigger,
    job_id: str,
    name: str,
    timezone: Any = UTC,
    misfire_grace_time: int = 3600,
) -> AsyncIOScheduler:
    """An (unstarted) scheduler with one job: never two runs at once, missed runs coalesced
    into one, a run up to ``misfire_grace_time`` seconds late still made."""
    scheduler = AsyncIOScheduler(timezone=timezone)
    scheduler.add_job(
        job,
        trigger,
        id=job_id,
        name=name,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=misfire_grace_time,
        replace_existing=True,
    )
    return scheduler


class RetrainScheduler:
    """Fires ``service.request("schedule", ...)`` on a trigger; see the module docstring.

    ``service`` is a :class:`training.retrain.RetrainService` (``request`` and ``wait``).
    Pass ``cron`` (crontab text) or any APScheduler ``trigger`` (tests use an IntervalTrigger).
    """

    def __init__(
        self,
        service: Any,
        store: Store,
        *,
        cron: str | None = None,
        trigger: BaseTrigger | None = None,
        misfire_grace_time: int = 6 * 3600,
        timezone: Any = UTC,
    ) -> None:
        if trigger is None:
            if cron is None or cron.strip().lower() in OFF:
                raise ScheduleError("no retrain schedule given")
            trigger = crontab_trigger(cron, timezone)
        self.service = service
        self.store = store
        self.trigger = trigger
        self.grace = int(misfire_grace_time)
        self.timezone = timezone
        self.scheduler: AsyncIOScheduler | None = None
        self._catch_up: asyncio.Task[None] | None = None
        self.caught_up: str | None = None  # the missed due time run at start, if any

    async def start(self) -> None:
        self.scheduler = single_job_scheduler(
            self._fire, self.trigger, JOB_ID, "retrain", self.timezone, self.grace
        )
        due = await asyncio.to_thread(self.store.kv.get, KV_NEXT)
        self.scheduler.start()
        now = datetime.now(UTC)
        if due:
            try:
                due_at = datetime.fromisoformat(due)
            except ValueError:
                due_at = None
            if due_at is not None and due_at <= now:
                late = now - due_at
                if late <= timedelta(seconds=self.grace):
                    log.warning(
                        "retraining: the run due at %s was missed while the bot was "
                        "down; running it now",
                        due,
                    )
                    self.caught_up = due
                    self._catch_up = asyncio.create_task(
                        self._fire(missed=due), name="retrain-catch-up"
                    )
                else:
                    log.warning(
                        "retraining: the run due at %s was missed by %s, beyond the "
                        "grace time; skipped",
                        due,
                        late,
                    )
        await self._persist()
        log.info("retraining: next scheduled run %s", self.next_run_time())

    async def stop(self) -> None:
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self._catch_up is not None and not self._catch_up.done():
            self._catch_up.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._catch_up

    def next_run_time(self) -> datetime | None:
        if self.scheduler is None or not self.scheduler.running:
            return None
        job = self.scheduler.get_job(JOB_ID)
        return job.next_run_time if job is not None else None

    async def _persist(self) -> None:
        nxt = self.next_run_time()
        if nxt is not None:
            await asyncio.to_thread(
                self.store.kv.set, KV_NEXT, nxt.astimezone(UTC).isoformat(timespec="seconds")
            )

    async def _fire(self, missed: str | None = None) -> None:
        """One scheduled run: request it and wait for it (max_instances=1 then means one run)."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        await asyncio.to_thread(self.store.kv.set, KV_LAST, now)
        await self._persist()
        who = f"scheduler (missed {missed})" if missed else "scheduler"
        try:
            ticket = await self.service.request("schedule", who)
        except Exception:
            log.exception("retraining: the scheduled run could not start")
            return
        if not ticket.started:
            log.info("retraining: scheduled run skipped, run #%s is already going", ticket.run_id)
            return
        await self.service.wait(ticket.run_id)
