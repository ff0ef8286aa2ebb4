"""Neutral replies -> Telegram message parts: plain text, inline keyboards, inline results,
and where an answer goes (a reply quote, a forum topic). Kept apart from the update handling
so the adapter stays about events."""

from __future__ import annotations

from typing import Any

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InputTextMessageContent,
    Message,
)
from telegram.constants import ChatType

from bot.core import cards as card_text
from bot.core.types import AnimeCard, Reply
from bot.text_safety import defuse_mentions, printable

MAX_TEXT = 4096


def text(reply: Reply) -> str:
    """The message: title and text, printable, mentions defused, within Telegram's limit."""
    shown = f"{reply.title}\n\n{reply.text}" if reply.title else reply.text
    shown = defuse_mentions(printable(shown))
    return shown if len(shown) <= MAX_TEXT else shown[: MAX_TEXT - 1] + "\u2026"


def keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    """Per-card buttons (numbered when there are several cards), then the reply's rows."""
    rows: list[list[InlineKeyboardButton]] = []
    numbered = len(reply.picks) > 1
    for number, anime in enumerate(reply.picks, start=1):
        if anime.buttons:
            rows.append(
                [
                    InlineKeyboardButton(
                        label(f"{number}. {b.label}" if numbered else b.label),
                        callback_data=b.action,
                    )
                    for b in anime.buttons
                ]
            )
    for row in reply.buttons:
        rows.append([InlineKeyboardButton(label(b.label), callback_data=b.action) for b in row])
    return InlineKeyboardMarkup(rows) if rows else None


def inline_result(anime: AnimeCard) -> InlineQueryResultArticle:
    """One title to share from inline mode, with its poster as the thumbnail when known."""
    blurb = defuse_mentions(printable(card_text.describe(anime)))
    picture = anime.picture if (anime.picture or "").startswith("https://") else None
    return InlineQueryResultArticle(
        id=str(anime.anime_id),
        title=label(anime.title),
        description=", ".join(anime.genres[:4]) or (anime.type or ""),
        input_message_content=InputTextMessageContent(f"{blurb}\n{anime.url}"),
        url=anime.url,
        thumbnail_url=picture,
    )


def topic_of(message: Message | None) -> int | None:
    """The forum topic ``message`` is in (None: the chat's main thread, or not a forum)."""
    if message is None or not message.is_topic_message:
        return None
    return message.message_thread_id


def placement(message: Message) -> dict[str, Any]:
    """Where an answer to ``message`` goes: in a group, as a reply to it, in its topic."""
    if message.chat.type not in (ChatType.GROUP, ChatType.SUPERGROUP):
        return {}
    return {"thread": topic_of(message), "reply_to": message.message_id}


def label(text: str) -> str:
    """A button, poll or result label: one printable line that mentions nobody."""
    return defuse_mentions(printable(text, keep_newlines=False))
