"""One person's updates in the order they were sent; different people still run at once.

Why: a chat library hands each update to its own task, so ``/rate X 9`` followed by
``/recommend`` could be answered out of order ("you haven't rated anything yet"). Each update
holds a lock per key (the user, and the message a button was pressed on) while it runs; asyncio
locks wake waiters first come, first served, so updates with a common key run in arrival order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

T = TypeVar("T")


class KeyedLocks:
    """An asyncio.Lock per key, forgotten again once nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @asynccontextmanager
    async def hold(self, *keys: str) -> AsyncIterator[None]:
        """Hold every lock of ``keys`` (taken in sorted order, so two holders never deadlock)."""
        ordered = sorted(set(keys))
        for key in ordered:
            lock, users = self._locks.get(key, (asyncio.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        taken: list[asyncio.Lock] = []
        try:
            for key in ordered:
                lock = self._locks[key][0]
                await lock.acquire()
                taken.append(lock)
            yield
        finally:
            for lock in reversed(taken):
                lock.release()
            for key in ordered:
                lock, users = self._locks[key]
                if users <= 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)

    async def run(self, keys: tuple[str, ...], work: Awaitable[T]) -> T:
        """Await ``work`` while holding ``keys``."""
        async with self.hold(*keys):
            return await work


def telegram_keys(update: Any) -> tuple[str, ...]:
    """The user who sent an update, and for a button press the message it was pressed on."""
    keys: list[str] = []
    user = getattr(update, "effective_user", None)
    if user is not None:
        keys.append(f"user:{user.id}")
    query = getattr(update, "callback_query", None)
    message = getattr(query, "message", None) if query is not None else None
    if message is not None:
        keys.append(f"message:{message.chat.id}:{message.message_id}")
    return tuple(keys)
