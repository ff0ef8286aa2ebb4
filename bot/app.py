"""``anirec run``: one asyncio loop hosting every chat platform that has a token.

Telegram (long polling) and Discord (gateway) run side by side on one :class:`~bot.core.Core`,
plus the services named in :data:`SERVICE_FACTORIES` (the retraining scheduler plugs in there).
SIGINT/SIGTERM stop everything in reverse order of starting.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.core import Core
from bot.serving import build_recommender
from bot.settings import Settings
from storage.repository import Store

log = logging.getLogger(__name__)

NO_TOKEN = (
    "no chat token configured: set ANIREC_TELEGRAM_TOKEN and/or ANIREC_DISCORD_TOKEN "
    "(environment or .env), or talk to the bot in this terminal with `anirec chat`"
)

#: Services started with the bot, as "module:function"; each function takes the AppContext and
#: returns a Service (or None to stay off). The retraining issue adds its scheduler here, and
#: its factory may call ``ctx.core.set_retrain_control(...)``.
SERVICE_FACTORIES: list[str] = ["bot.retraining:retraining_service"]


class NoChatTokenError(RuntimeError):
    """Neither platform has a token."""


class Service(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class AppContext:
    """Everything the running bot shares; built once at start."""

    settings: Settings
    store: Store
    recommender: Any
    core: Core
    services: list[Service] = field(default_factory=list)


def build_context(
    settings: Settings, store: Store | None = None, **core_options: Any
) -> AppContext:
    store = store or Store(settings.database)
    recommender = build_recommender(store, settings)
    core = Core(store, recommender, settings, **core_options)
    return AppContext(settings, store, recommender, core)


def quiet_secret_loggers() -> None:
    """httpx logs every request URL at INFO, and Telegram's URLs carry the bot token."""
    for name in ("httpx", "httpcore", "telegram.request"):
        logging.getLogger(name).setLevel(logging.WARNING)


class TelegramService:
    """python-telegram-bot's Application, started and stopped by hand inside our loop."""

    def __init__(
        self, ctx: AppContext, base_url: str | None = None, base_file_url: str | None = None
    ) -> None:
        from bot.adapters.telegram_bot import build_telegram_application

        self.app = build_telegram_application(
            ctx.core, ctx.settings, base_url=base_url, base_file_url=base_file_url
        )

    async def start(self) -> None:
        await self.app.initialize()
        if self.app.post_init is not None:  # only run_polling() calls it by itself
            await self.app.post_init(self.app)
        await self.app.start()
        await self.app.updater.start_polling(drop_pending_updates=False)
        log.info("telegram: polling as @%s", self.app.bot.username)

    async def stop(self) -> None:
        if self.app.updater.running:
            await self.app.updater.stop()
        if self.app.running:
            await self.app.stop()
        await self.app.shutdown()


class DiscordService:
    """The Discord adapter's client (``bot.adapters.discord_bot``) on its own task."""

    def __init__(self, ctx: AppContext) -> None:
        from bot.adapters.discord_bot import build_discord_client

        self.client = build_discord_client(ctx.core, ctx.settings)
        self.token = ctx.settings.discord_token
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        assert self.token is not None
        self.task = asyncio.create_task(
            self.client.start(self.token.get_secret_value()), name="discord"
        )

    async def stop(self) -> None:
        await self.client.close()
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self.task, timeout=10)


def _plugins(ctx: AppContext) -> list[Service]:
    found = []
    for spec in SERVICE_FACTORIES:
        module, _, name = spec.partition(":")
        factory: Callable[[AppContext], Service | None] = getattr(
            importlib.import_module(module), name
        )
        service = factory(ctx)
        if service is not None:
            found.append(service)
    return found


async def serve(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    ctx: AppContext | None = None,
    telegram_base_url: str | None = None,
    telegram_base_file_url: str | None = None,
) -> None:
    """Run until ``stop`` is set (or a platform fails); stop everything that started."""
    if settings.telegram_token is None and settings.discord_token is None:
        raise NoChatTokenError(NO_TOKEN)
    quiet_secret_loggers()
    ctx = ctx or build_context(settings)
    stop = stop or asyncio.Event()
    chats: list[Service] = []
    root = (settings.telegram_api_root or "").rstrip("/")
    if root and telegram_base_url is None:
        telegram_base_url, telegram_base_file_url = f"{root}/bot", f"{root}/file/bot"
    if settings.telegram_token is not None:
        chats.append(TelegramService(ctx, telegram_base_url, telegram_base_file_url))
    if settings.discord_token is not None:
        chats.append(DiscordService(ctx))
    ctx.services = chats + _plugins(ctx)
    started: list[Service] = []
    try:
        for service in ctx.services:
            await service.start()
            started.append(service)
        watch = [asyncio.create_task(stop.wait(), name="stop")]
        watch += [s.task for s in started if isinstance(s, DiscordService) and s.task]
        done, _ = await asyncio.wait(watch, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task.get_name() != "stop" and task.exception() is not None:
                raise task.exception()
        watch[0].cancel()
    finally:
        for service in reversed(started):
            try:
                await service.stop()
            except Exception:  # keep stopping the others
                log.exception("error while stopping %s", type(service).__name__)


def run(settings: Settings) -> None:
    """``anirec run``: serve until SIGINT/SIGTERM."""

    async def main() -> None:
        if settings.telegram_token is None and settings.discord_token is None:
            raise NoChatTokenError(NO_TOKEN)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        ctx = build_context(settings)
        try:
            await serve(settings, stop=stop, ctx=ctx)
        finally:
            ctx.store.close()
        log.info("stopped")

    asyncio.run(main())
