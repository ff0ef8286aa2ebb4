"""Where the core can post on its own (retrain notifications): one sender per platform."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from bot.core.ports import Notify
from bot.core.types import Caller, Reply

log = logging.getLogger(__name__)

#: Sends a reply into a chat on one platform (registered by each running adapter).
Sender = Callable[[str, Reply], Awaitable[None]]
#: A chat id of the form ``user:ID`` means "a direct message to user ID" (on Discord a DM
#: channel has an id of its own, opened on demand; on Telegram it is the user's id).
DM_PREFIX = "user:"


class Notifier(Protocol):
    """The core's outgoing port for messages nobody asked for (radar posts, airing DMs)."""

    async def deliver(self, platform: str, chat_id: str, reply: Reply) -> bool:
        """Post ``reply`` into a chat (``user:ID``: a DM); False when it did not go out."""
        ...


class Senders:
    """The running adapters' senders, by platform."""

    def __init__(self) -> None:
        self._by_platform: dict[str, Sender] = {}

    def register(self, platform: str, sender: Sender) -> None:
        self._by_platform[platform] = sender

    async def notify(self, platform: str, chat_id: str, text: str) -> bool:
        """Post ``text`` into a chat; False when no adapter for that platform is running."""
        return await self.deliver(platform, chat_id, Reply(text))

    async def deliver(self, platform: str, chat_id: str, reply: Reply) -> bool:
        """Post ``reply`` (buttons and cards too) into a chat, or a DM for ``user:ID``; False
        when no adapter for that platform is running or the platform refused it."""
        sender = self._by_platform.get(platform)
        if sender is None:
            return False
        try:
            await sender(chat_id, reply)
        except Exception:  # a failed notification must not break the job that sent it
            log.exception("could not notify %s chat %s", platform, chat_id)
            return False
        return True

    def notifier(self, caller: Caller) -> Notify | None:
        """Tells the caller's chat (or DM) later; None when their platform cannot be reached."""
        if caller.platform not in self._by_platform:
            return None
        chat = caller.chat_id or f"{DM_PREFIX}{caller.user_id}"

        async def notify(text: str) -> None:
            await self.notify(caller.platform, chat, text)

        return notify
