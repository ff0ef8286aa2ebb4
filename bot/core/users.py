"""Who is asking: the caller's user row (read-only unless a command writes) and NSFW policy.

Reading commands look the caller up and never create a row; a person without one is treated as
someone with an empty list (internal id 0, which no row ever has). Commands that write
(rating, settings, import, a /night lobby) call :meth:`Users.ensure` first.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bot.core.types import Caller
from storage.repository import Store
from storage.rows import User

#: The internal id of someone without a user row: buttons made for them carry it.
NO_USER = 0


@dataclass(frozen=True)
class Who:
    """A caller resolved to the internal user (``user`` None: never wrote anything)."""

    user: User | None
    name: str

    @property
    def id(self) -> int:
        return self.user.id if self.user is not None else NO_USER

    @property
    def nsfw(self) -> bool:
        """The person's own opt-in (the chat's is checked separately in groups)."""
        return bool(self.user is not None and self.user.settings.get("nsfw", False))


def display_name(user: User) -> str:
    return user.display_name or user.platform_user_id


def _who(caller: Caller, user: User | None) -> Who:
    if user is None:
        return Who(None, caller.display_name or caller.user_id)
    return Who(user, display_name(user))


class Users:
    """User and chat lookups for the commands; one SELECT per lookup, writes only on demand."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def find(self, caller: Caller) -> Who:
        """The caller as they are stored now (one read, no write)."""
        user = await asyncio.to_thread(self.store.users.find, caller.platform, caller.user_id)
        return _who(caller, user)

    async def ensure(self, caller: Caller) -> Who:
        """The caller's row, created (and its display name refreshed) now: for writing commands."""
        user = await asyncio.to_thread(
            self.store.users.ensure, caller.platform, caller.user_id, caller.display_name
        )
        return _who(caller, user)

    async def chat_nsfw(self, caller: Caller) -> bool:
        """The chat's NSFW opt-in (a read; a chat nobody configured is off)."""
        if not caller.chat_id:
            return False
        chat = await asyncio.to_thread(self.store.chats.find, caller.platform, caller.chat_id)
        return bool(chat is not None and chat.settings.get("nsfw", False))

    async def nsfw(self, caller: Caller, who: Who) -> bool:
        """Adult titles only when the person opted in, and in a group only if the chat did too."""
        if not who.nsfw:
            return False
        return await self.chat_nsfw(caller) if caller.is_group else True
