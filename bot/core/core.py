"""The command core: dispatch, the error guard and the rate limiter, for every platform.

Adapters build a :class:`~bot.core.types.Request` (or parse a text line with
:meth:`Core.parse`), await :meth:`Core.handle` and render the :class:`~bot.core.types.Reply`.
Button presses come back through :meth:`Core.press` with the button's action id. What each
command does lives in :mod:`bot.core.commands` (one module per feature, one table); store and
recommender calls run in worker threads (``asyncio.to_thread``) so the event loop never stalls.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from bot.core import actions as act
from bot.core.commands import BY_NAME, COMMAND_INFO, PRESSES, parse_line, with_usage
from bot.core.commands.common import NotOwner, no_model, not_yours, search_titles
from bot.core.context import Context
from bot.core.limiter import RateLimiter
from bot.core.limits import PAGE_SIZE
from bot.core.night import Lobbies
from bot.core.parsing import ArgumentError, UsageError
from bot.core.ports import RetrainControl
from bot.core.senders import Sender
from bot.core.titles import localize, localize_cards
from bot.core.types import AnimeCard, Caller, Choice, CommandInfo, Member, Reply, Request
from recommender.errors import NoModelError
from storage.db import DatabaseBusyError
from storage.repository import Store
from storage.rows import ScoreError

if TYPE_CHECKING:
    from bot.settings import Settings
    from recommender import Recommender

log = logging.getLogger(__name__)

EXPIRED = "That button has expired. Please run the command again."
BUSY = "The database is busy, try again in a moment."


class Core:
    """The platform-free bot. One instance per process, shared by every adapter.

    ``recommender`` not ready = no model trained yet. ``retrain`` is plugged in by the
    retraining service (see :mod:`bot.core.ports`). ``limiter`` replaces the default per-user
    limit; ``rate_limited=False`` turns it off (the console has one local user). ``page_size``
    is the default number of picks per /recommend page.
    """

    def __init__(
        self,
        store: Store,
        recommender: Recommender,
        settings: Settings | None = None,
        *,
        retrain: RetrainControl | None = None,
        limiter: RateLimiter | None = None,
        rate_limited: bool = True,
        page_size: int = PAGE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ctx = Context(
            store, recommender, settings, Lobbies(store), page_size, retrain, commands=COMMAND_INFO
        )
        self.limiter = (limiter or RateLimiter(clock=clock)) if rate_limited else None

    @property
    def store(self) -> Store:
        return self.ctx.store

    @property
    def recommender(self) -> Recommender:
        return self.ctx.recommender

    @property
    def settings(self) -> Settings | None:
        return self.ctx.settings

    # -- public API for adapters ---------------------------------------------------------------
    def parse(self, caller: Caller, line: str) -> Request | Reply | None:
        """A text line -> a Request; a friendly error Reply when malformed; None if no command."""
        try:
            return parse_line(caller, line)
        except UsageError as exc:
            return Reply(str(exc), kind="error", ephemeral=True)

    async def handle_text(self, caller: Caller, line: str) -> Reply | None:
        """Parse and handle a text line (console, Telegram); None when it is not a command."""
        parsed = self.parse(caller, line)
        if parsed is None or isinstance(parsed, Reply):
            return parsed
        return await self.handle(parsed)

    async def handle(self, request: Request) -> Reply:
        """Run one command. Never raises for anything a user can cause."""
        wait = self._limited(request.caller)
        if wait:
            return wait
        spec = BY_NAME.get(request.command)
        if spec is None:
            return Reply(f"I don't know /{request.command}. Try /help.", kind="error")
        reply = await self._guard(spec.handler(self.ctx, request), request.command)
        return await self._guard(localize(self.ctx, request.caller, reply))

    async def press(self, caller: Caller, action: str, value: str | None = None) -> Reply:
        """A button press (or select-menu choice ``value``) with an action id the core made."""
        wait = self._limited(caller)
        if wait:
            return wait
        try:
            kind, parts = act.decode(action)
        except act.BadAction:
            return Reply(EXPIRED, kind="error", ephemeral=True)
        reply = await self._guard(PRESSES[kind](self.ctx, caller, parts, value))
        return await self._guard(localize(self.ctx, caller, reply))

    async def search_titles(self, caller: Caller, text: str, limit: int = 10) -> list[AnimeCard]:
        """Matching titles for inline mode / autocomplete (no model needed, not rate limited)."""
        found = await search_titles(self.ctx, caller, text, limit)
        return await localize_cards(self.ctx, caller, found)

    async def autocomplete(self, caller: Caller, text: str, limit: int = 25) -> list[Choice]:
        """Title choices; the value ``#ID`` resolves exactly wherever a title is accepted."""
        found = await self.search_titles(caller, text, limit)
        return [Choice(c.title[:100], f"#{c.anime_id}", c.type or "") for c in found]

    def commands(self, admin: bool = False) -> list[CommandInfo]:
        """The command list for menus (Telegram setMyCommands) and /help."""
        return [c for c in COMMAND_INFO if admin or not c.admin]

    def is_admin(self, caller: Caller) -> bool:
        return self.ctx.is_admin(caller)

    def register_sender(self, platform: str, sender: Sender) -> None:
        """An adapter registers how to post into its chats (for retrain notifications)."""
        self.ctx.senders.register(platform, sender)

    async def notify(self, platform: str, chat_id: str, text: str) -> bool:
        """Post ``text`` into a chat; False when no adapter for that platform is running."""
        return await self.ctx.senders.notify(platform, chat_id, text)

    def set_retrain_control(self, control: RetrainControl | None) -> None:
        self.ctx.retrain = control

    # -- plumbing ------------------------------------------------------------------------------
    def _limited(self, caller: Caller) -> Reply | None:
        if self.limiter is None:
            return None
        wait = self.limiter.take(caller.key)
        if not wait:
            return None
        seconds = max(1, round(wait))
        return Reply(
            f"Easy there! Too many requests - try again in {seconds} second"
            f"{'s' if seconds != 1 else ''}.",
            kind="cooldown",
            ephemeral=True,
        )

    async def _guard(self, work: Awaitable[Reply], command: str = "") -> Reply:
        """The one place that turns failures into answers (and logs the unexpected ones)."""
        try:
            return await work
        except NoModelError:
            return no_model()
        except ArgumentError as exc:
            return Reply(str(with_usage(exc, command)), kind="error", ephemeral=True)
        except UsageError as exc:
            return Reply(str(exc), kind="error", ephemeral=True)
        except ScoreError:
            return Reply(
                "Scores go from 1 to 10, e.g. /rate Cowboy Bebop 9.", kind="error", ephemeral=True
            )
        except NotOwner:
            return not_yours()
        except act.BadAction:
            return Reply(EXPIRED, kind="error", ephemeral=True)
        except DatabaseBusyError:
            return Reply(BUSY, kind="error", ephemeral=True)
        except Exception:  # log it, answer kindly, keep the bot alive
            log.exception("command failed")
            return Reply(
                "Sorry, something went wrong on my side. It has been logged.",
                kind="error",
                ephemeral=True,
            )


__all__ = ["Core", "Member", "Sender"]
