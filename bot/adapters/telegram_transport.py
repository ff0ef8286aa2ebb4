"""How the Telegram application talks and schedules: an HTTP client that reports outages, and
an update processor that keeps one person's updates in order while others run alongside."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from telegram.error import NetworkError
from telegram.ext import BaseUpdateProcessor
from telegram.request import HTTPXRequest

from bot.adapters.ordering import KeyedLocks, telegram_keys
from bot.adapters.resilience import Outage


class WatchedRequest(HTTPXRequest):
    """PTB's HTTP client, telling an :class:`Outage` how each Bot API request went."""

    def __init__(self, outage: Outage, **options: Any) -> None:
        super().__init__(**options)
        self.outage = outage

    async def do_request(
        self, url: str, method: str, *args: Any, **kwargs: Any
    ) -> tuple[int, bytes]:
        try:
            code, payload = await super().do_request(url, method, *args, **kwargs)
        except NetworkError as exc:  # also TimedOut: httpx errors arrive as these
            self.outage.failed(exc)
            raise
        if code == 401 or (code == 404 and url.endswith(("/getMe", "/getUpdates"))):
            self.outage.refuse(f"HTTP {code} from the Bot API")
        elif code >= 500:
            self.outage.failed(f"HTTP {code} from the Bot API")
        else:
            self.outage.ok()
        return code, payload


class InOrderPerUser(BaseUpdateProcessor):
    """Runs updates concurrently, except that updates sharing a user (or the message a button
    was pressed on) run one after another in the order they arrived."""

    def __init__(self, max_concurrent_updates: int) -> None:
        super().__init__(max_concurrent_updates)
        self.order = KeyedLocks()

    async def process_update(  # type: ignore[misc]  # order first, then the concurrency cap
        self, update: object, coroutine: Awaitable[Any]
    ) -> None:
        async with self.order.hold(*telegram_keys(update)), self._semaphore:
            await self.do_process_update(update, coroutine)

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        await coroutine

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to free."""
