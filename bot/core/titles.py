"""Title language: a person who chose English titles (/settings titles english) sees them in
every reply, button, picker and search result; the romaji title stays where no English one is
known. Applied once to the finished reply, so no command has to think about it."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from bot.core.commands.prefs import title_language
from bot.core.context import Context
from bot.core.types import AnimeCard, Button, Caller, Field, Poll, Reply
from recommender.english import Renamer


async def _renamer(ctx: Context, caller: Caller) -> tuple[dict[int, str], Renamer] | None:
    """The English names and renamer when the caller wants them (and any are known)."""
    found = ctx.recommender.english_titles_ready()  # the warm path: no thread hop
    if found is None:
        found = await asyncio.to_thread(ctx.recommender.english_titles)
    names, renamer = found
    if not names:
        return None  # nothing to swap: no need to look the person up
    if title_language(await ctx.users.find(caller)) != "english":
        return None
    return names, renamer


def _card(card: AnimeCard, names: dict[int, str], rename: Renamer) -> AnimeCard:
    return replace(
        card,
        title=names.get(card.anime_id, card.title),
        reason=rename(card.reason),
        buttons=tuple(_button(b, rename) for b in card.buttons),
    )


def _button(button: Button, rename: Renamer) -> Button:
    return replace(button, label=rename(button.label))


def _poll(poll: Poll, rename: Renamer) -> Poll:
    choices = tuple(replace(c, label=rename(c.label)) for c in poll.choices)
    return replace(poll, question=rename(poll.question), choices=choices)


async def localize(ctx: Context, caller: Caller, reply: Reply) -> Reply:
    """``reply`` with the caller's title language applied."""
    found = await _renamer(ctx, caller)
    if found is None:
        return reply
    names, rename = found
    return replace(
        reply,
        text=rename(reply.text),
        title=rename(reply.title) if reply.title else reply.title,
        fields=tuple(Field(f.name, rename(f.value), f.inline) for f in reply.fields),
        buttons=tuple(tuple(_button(b, rename) for b in row) for row in reply.buttons),
        picks=tuple(_card(c, names, rename) for c in reply.picks),
        poll=_poll(reply.poll, rename) if reply.poll else None,
    )


async def localize_cards(ctx: Context, caller: Caller, cards: list[AnimeCard]) -> list[AnimeCard]:
    """Search results and pickers in the caller's title language."""
    found = await _renamer(ctx, caller)
    if found is None:
        return cards
    names, rename = found
    return [_card(c, names, rename) for c in cards]
