"""Riding out network trouble: one log line per outage, backoff, and which errors are fatal.

Why: a chat platform that cannot be reached (no DNS, no route, 5xx, 429) is a passing state;
the bot keeps retrying in the background with growing pauses, and the rest of the process (the
other platform, the scheduler) keeps running. Only a refused token ends the bot, with a message
that names the platform.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from bot.logsafety import REDACTOR

log = logging.getLogger("bot.network")


class PlatformAuthError(RuntimeError):
    """A platform refused the bot's token: retrying cannot help."""

    def __init__(self, platform: str, detail: str) -> None:
        variable = f"ANIREC_{platform.upper()}_TOKEN"
        super().__init__(f"{platform}: the bot token was refused ({detail}); check {variable}")
        self.platform = platform


def describe(exc: BaseException) -> str:
    """``Type: first line of the message``, with secrets masked."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return REDACTOR.redact(text)


class Outage:
    """Tracks whether a platform is reachable; logs once when it goes and once when it is back."""

    def __init__(self, platform: str) -> None:
        self.platform = platform
        self.since: float | None = None
        self.count = 0  # outages seen so far
        self.refused = asyncio.Event()
        self.refusal = ""

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException | str) -> None:
        if self.since is not None:
            return
        self.since = time.monotonic()
        self.count += 1
        reason = exc if isinstance(exc, str) else describe(exc)
        log.warning(
            "%s: cannot reach the platform (%s); retrying in the background", self.platform, reason
        )

    def ok(self) -> None:
        if self.since is None:
            return
        took = time.monotonic() - self.since
        self.since = None
        log.warning("%s: connected again after %.0f s", self.platform, took)

    def refuse(self, detail: str) -> None:
        """The platform refused the token: the service watching ``refused`` ends the bot."""
        self.refusal = detail
        self.refused.set()


class Backoff:
    """Pauses of 1, 2, 4 ... seconds up to ``cap``, with a little jitter; ``reset`` on success."""

    def __init__(self, first: float = 1.0, cap: float = 30.0) -> None:
        self.first, self.cap, self.tries = first, cap, 0

    def next(self) -> float:
        delay = min(self.cap, self.first * 2.0**self.tries)
        self.tries = min(self.tries + 1, 16)
        return float(delay * random.uniform(0.8, 1.0))

    def reset(self) -> None:
        self.tries = 0
