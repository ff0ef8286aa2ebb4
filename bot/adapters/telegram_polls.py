"""Native Telegram polls for /night votes: which poll stands for which core vote, kept in the
store so that answers given after a restart still count and the poll can still be stopped.

A poll answer arrives with only the poll's id and the option's index; :class:`PollBook` turns
that back into the core's vote action and the chosen value (an anime id).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

from telegram import Bot, PollAnswer
from telegram.error import TelegramError

from bot.core import Caller, Core, Reply
from bot.core.types import Poll

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SentPoll:
    action: str  # the core's vote action (Poll.action)
    values: tuple[str, ...]  # Choice.value per option, in option order
    chat_id: int
    message_id: int


class PollBook:
    """Poll id -> the vote it carries, and vote action -> the poll message (in ``store.kv``)."""

    def __init__(self, core: Core) -> None:
        self.kv = core.store.kv

    async def opened(
        self, poll_id: str, poll: Poll, options: int, chat_id: int, message_id: int
    ) -> None:
        sent = {
            "action": poll.action,
            "values": [c.value for c in poll.choices][:options],
            "chat_id": chat_id,
            "message_id": message_id,
        }
        text = json.dumps(sent)
        await asyncio.to_thread(self.kv.set, f"telegram:poll:{poll_id}", text)
        await asyncio.to_thread(self.kv.set, f"telegram:vote:{poll.action}", text)

    async def _load(self, key: str) -> SentPoll | None:
        raw = await asyncio.to_thread(self.kv.get, key)
        if not raw:
            return None
        doc = json.loads(raw)
        return SentPoll(
            str(doc["action"]),
            tuple(str(v) for v in doc["values"]),
            int(doc["chat_id"]),
            int(doc["message_id"]),
        )

    async def by_poll(self, poll_id: str) -> SentPoll | None:
        return await self._load(f"telegram:poll:{poll_id}")

    async def by_action(self, action: str) -> SentPoll | None:
        return await self._load(f"telegram:vote:{action}")


async def count_answer(core: Core, book: PollBook, answer: PollAnswer) -> Reply | None:
    """A member's answer to one of our polls, as a core vote (None: not ours, or retracted)."""
    sent = await book.by_poll(answer.poll_id)
    user = answer.user
    if sent is None or user is None or not answer.option_ids:
        return None
    index = answer.option_ids[0]
    if not 0 <= index < len(sent.values):
        return None
    caller = Caller(
        platform="telegram",
        user_id=str(user.id),
        display_name=user.username or user.full_name,
        chat_id=str(sent.chat_id),
        is_group=sent.chat_id < 0,
    )
    return await core.press(caller, sent.action, sent.values[index])


async def stop(bot: Bot, book: PollBook, action: str) -> None:
    """Close the poll that carried ``action``'s vote (already closed or gone: fine)."""
    sent = await book.by_action(action)
    if sent is None:
        return
    try:
        await bot.stop_poll(sent.chat_id, sent.message_id)
    except TelegramError as exc:
        log.info("telegram: could not stop a poll (%s)", exc)
