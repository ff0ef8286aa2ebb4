"""Retraining plugged into the bot: the core's ``RetrainControl`` plus the nightly schedule.

``retraining_service(ctx)`` is listed in ``bot.app.SERVICE_FACTORIES``: it builds a
:class:`training.retrain.RetrainService` (trainer subprocess, quality gate, hot swap into
``ctx.recommender``), hands it to the core and schedules it on ``ANIREC_RETRAIN_CRON``.
The outcome of every run goes to the admin who asked and to ``ANIREC_ADMIN_CHAT``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable
from typing import Any

from bot.core.ports import Notify
from bot.identity import parse_identity
from bot.settings import Settings
from storage.repository import Store
from training.retrain import JobOptions, RetrainService
from training.scheduler import OFF, RetrainScheduler

log = logging.getLogger(__name__)


def admin_announcer(core: Any, settings: Settings) -> Notify | None:
    """Posts into ``settings.admin_chat`` ("PLATFORM:CHAT_ID") through the core's senders."""
    target = (settings.admin_chat or "").strip()
    if not target:
        return None
    try:
        platform, chat_id = parse_identity(target)
    except ValueError:
        log.error(
            "ANIREC_ADMIN_CHAT must look like telegram:-100123 or discord:123; "
            "got %r: admin channel notifications are off",
            target,
        )
        return None

    async def announce(text: str) -> None:
        if not await core.notify(platform, chat_id, text):
            log.warning("retraining: could not post to the admin chat %s", target)

    return announce


def build_service(
    store: Store, settings: Settings, recommender: Any, core: Any = None, **options: Any
) -> RetrainService:
    """A RetrainService wired to the settings, the live recommender and the admin chat."""
    if settings.trainer_python:
        options.setdefault("python", str(settings.trainer_python))
    job = JobOptions(device=settings.device, keep=settings.retrain_keep, **options)
    return RetrainService(
        store,
        settings.model_dir,
        settings.database,
        options=job,
        swap=getattr(recommender, "swap", None),
        is_ready=(lambda: bool(recommender.ready)) if hasattr(recommender, "ready") else None,
        announce=admin_announcer(core, settings) if core else None,
    )


class RetrainingService:
    """Start/stop of the service and its scheduler, as ``bot.app`` expects of a Service."""

    def __init__(self, service: RetrainService, scheduler: RetrainScheduler | None) -> None:
        self.service = service
        self.scheduler = scheduler

    async def start(self) -> None:
        await self.service.start()
        if self.scheduler is not None:
            await self.scheduler.start()

    async def stop(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.stop()
        await self.service.stop()


def retraining_service(ctx: Any) -> RetrainingService:
    """``bot.app`` service factory: retraining on request and on the schedule."""
    settings: Settings = ctx.settings
    service = build_service(ctx.store, settings, ctx.recommender, ctx.core)
    scheduler = None
    if settings.retrain_cron.strip().lower() not in OFF:
        scheduler = RetrainScheduler(service, ctx.store, cron=settings.retrain_cron)
        service.next_run = scheduler.next_run_time
    ctx.core.set_retrain_control(service)
    return RetrainingService(service, scheduler)


async def console_session(ctx: Any, chat: Awaitable[int]) -> int:
    """``anirec chat`` with retraining: /retrain and /model work, the outcome is printed.

    No schedule here (the console is not a server). A run started in the session is waited for
    when input ends, so that ``echo /retrain | anirec chat`` does not kill its own trainer.
    """
    service = build_service(ctx.store, ctx.settings, ctx.recommender, ctx.core)
    ctx.core.set_retrain_control(service)

    async def show(_chat_id: str, reply: Any) -> None:
        print(reply.text, flush=True)

    if "console" not in getattr(ctx.core, "_senders", {}):
        ctx.core.register_sender("console", show)
    await service.start()
    try:
        return await chat
    finally:
        if service.running_pid is not None:
            print("(waiting for the retrain to finish...)", file=sys.stderr, flush=True)
        await service.stop(wait=True)
