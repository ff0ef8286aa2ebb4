"""``anirec run``: one asyncio loop hosting every chat platform that has a token.

Telegram (long polling) and Discord (gateway) run side by side on one :class:`~bot.core.Core`,
plus the services named in :data:`SERVICE_FACTORIES` (the retraining scheduler plugs in there).
SIGINT/SIGTERM stop everything in reverse order of starting.

Each platform connects in the background and rides out network trouble (backoff, one log line
per outage, see :mod:`bot.adapters.resilience`); only a refused token ends the bot.
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

from bot.adapters.resilience import Backoff, Outage, PlatformAuthError, describe
from bot.core import Core
from bot.logsafety import REDACTOR, configure_logging, protect_handlers
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
SERVICE_FACTORIES: list[str] = [
    "bot.retraining:retraining_service",
    "bot.catalog_refresh:catalog_refresh_service",
    "bot.radar:radar_service",
]


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


def quiet_secret_loggers(settings: Settings | None = None) -> None:
    """Mask the tokens in every log handler (whatever the level), and keep httpx's per-request
    INFO lines out of a normal log."""
    if settings is not None:
        REDACTOR.add(*(t.get_secret_value() for t in _tokens(settings)))
    protect_handlers()
    for name in ("httpx", "httpcore", "telegram.request"):
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))


def _tokens(settings: Settings) -> list[Any]:
    return [t for t in (settings.telegram_token, settings.discord_token) if t is not None]


class TelegramService:
    """python-telegram-bot's Application, started and stopped by hand inside our loop.

    ``start`` returns at once; :attr:`task` connects (retrying while the Bot API cannot be
    reached), polls, and fails with :class:`PlatformAuthError` only if the token is refused.
    """

    def __init__(
        self, ctx: AppContext, base_url: str | None = None, base_file_url: str | None = None
    ) -> None:
        from bot.adapters.telegram_bot import build_telegram_application

        self.outage = Outage("telegram")
        self.app = build_telegram_application(
            ctx.core,
            ctx.settings,
            base_url=base_url,
            base_file_url=base_file_url,
            outage=self.outage,
        )
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name="telegram")

    async def _connect(self) -> None:
        from telegram.error import InvalidToken, NetworkError, RetryAfter

        backoff = Backoff()
        while True:
            try:
                await self.app.initialize()
                if self.app.post_init is not None:  # only run_polling() calls it by itself
                    await self.app.post_init(self.app)
                return
            except InvalidToken as exc:
                raise PlatformAuthError("telegram", describe(exc)) from None
            except RetryAfter as exc:
                self.outage.failed(exc)
                await asyncio.sleep(_seconds(exc.retry_after) + 0.5)
            except NetworkError as exc:  # no DNS, no route, timeouts, 5xx
                self.outage.failed(exc)
                await asyncio.sleep(backoff.next())

    async def _run(self) -> None:
        await self._connect()
        self.outage.ok()
        await self.app.start()
        assert self.app.updater is not None  # built by ApplicationBuilder
        # The updater retries failed polls forever; its per-retry noise stays at DEBUG, and the
        # Outage (fed by every request) logs one line per outage.
        await self.app.updater.start_polling(
            drop_pending_updates=False, error_callback=self.outage.failed
        )
        log.info("telegram: polling as @%s", self.app.bot.username)
        await self.outage.refused.wait()
        raise PlatformAuthError("telegram", self.outage.refusal)

    async def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        if self.app.updater is not None and self.app.updater.running:
            await self.app.updater.stop()
        if self.app.running:
            await self.app.stop()
        await self.app.shutdown()


def _seconds(value: Any) -> float:
    return value.total_seconds() if hasattr(value, "total_seconds") else float(value)


class DiscordService:
    """The Discord adapter's client (``bot.adapters.discord_bot``) on its own task.

    The task logs in and holds the gateway, and after any network failure closes the client,
    waits (backoff) and starts over; it fails only when Discord refuses the token.
    """

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.outage = Outage("discord")
        self.client = self._new_client()
        self.token = ctx.settings.discord_token
        self.task: asyncio.Task[None] | None = None
        self.stopping = False
        self._quiet = _ReconnectNoise(self.outage)

    def _new_client(self) -> Any:
        from bot.adapters.discord_bot import build_discord_client

        client = build_discord_client(self.ctx.core, self.ctx.settings)
        client.outage = self.outage
        return client

    async def start(self) -> None:
        assert self.token is not None
        logging.getLogger("discord.client").addFilter(self._quiet)
        self.task = asyncio.create_task(self._run(self.token.get_secret_value()), name="discord")

    async def _run(self, token: str) -> None:
        import aiohttp
        import discord

        backoff = Backoff()
        while not self.stopping:
            try:
                await self.client.login(token)
                await self.client.connect(reconnect=True)
            except discord.LoginFailure as exc:
                raise PlatformAuthError("discord", describe(exc)) from None
            except discord.ConnectionClosed as exc:
                if exc.code in (4004, 4014):  # authentication failed / intents not allowed
                    raise PlatformAuthError("discord", f"gateway close code {exc.code}") from None
                self.outage.failed(exc)
            except (OSError, aiohttp.ClientError, discord.DiscordException, TimeoutError) as exc:
                self.outage.failed(exc)
            if self.stopping:
                return
            await self.client.close()
            self.client = self._new_client()  # a closed discord.py client cannot log in again
            await asyncio.sleep(backoff.next() if self.outage.down else 1.0)
            if not self.outage.down:
                backoff.reset()

    async def stop(self) -> None:
        self.stopping = True
        await self.client.close()
        if self.task is not None and self.outage.down:
            self.task.cancel()  # waiting out a backoff pause: nothing to finish
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError, PlatformAuthError, TimeoutError):
                await asyncio.wait_for(self.task, timeout=10)
        logging.getLogger("discord.client").removeFilter(self._quiet)


class _ReconnectNoise(logging.Filter):
    """discord.py logs a full traceback before each reconnect attempt; turn those into the
    Outage's one line per outage."""

    def __init__(self, outage: Outage) -> None:
        super().__init__()
        self.outage = outage

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("Attempting a reconnect"):
            return True
        error = record.exc_info[1] if record.exc_info else None
        self.outage.failed(error if error is not None else "gateway connection lost")
        return False


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
    quiet_secret_loggers(settings)
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
        watch: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait(), name="stop")]
        watch += [s.task for s in started if isinstance(s, _CHATS) and s.task]
        done, _ = await asyncio.wait(watch, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            error = None if task.get_name() == "stop" else task.exception()
            if error is not None:
                raise error
        watch[0].cancel()
    finally:
        for service in reversed(started):
            try:
                await service.stop()
            except Exception:  # keep stopping the others
                log.exception("error while stopping %s", type(service).__name__)


_CHATS = (TelegramService, DiscordService)


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

    configure_logging(settings.log_level, (t.get_secret_value() for t in _tokens(settings)))
    try:
        asyncio.run(main())
    except (NoChatTokenError, PlatformAuthError):
        raise
    except Exception as exc:  # one line for the CLI, never a secret in it
        raise RuntimeError(describe(exc)) from None
