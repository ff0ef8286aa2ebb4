"""Helpers several features share: titles to anime, "did you mean", the no-model answer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bot.core import actions as act
from bot.core import cards
from bot.core.context import Context
from bot.core.limits import SUGGESTIONS
from bot.core.types import AnimeCard, Button, Caller, Reply
from bot.core.users import Who
from recommender.errors import UnknownTitleError
from storage.rows import Anime


def no_model() -> Reply:
    return Reply(
        "No model is trained yet, so I can't recommend anything. An admin can "
        "run /retrain (or `anirec demo` trains one). You can /rate anime meanwhile.",
        kind="no_model",
    )


def not_yours() -> Reply:
    return Reply(
        "These buttons belong to someone else. Use the command yourself to get your own.",
        kind="denied",
        ephemeral=True,
    )


async def resolve(ctx: Context, text: str) -> Anime:
    """A title (or ``#ID`` from autocomplete) -> Anime; UnknownTitleError when unknown."""
    text = text.strip()
    if text.startswith("#") and text[1:].isascii() and text[1:].isdigit() and len(text) < 12:
        anime = await asyncio.to_thread(ctx.store.catalog.get, int(text[1:]))
        if anime is not None:
            return anime
    return await asyncio.to_thread(ctx.recommender.resolve_title, text, True)


async def anime(ctx: Context, anime_id: int) -> Anime:
    """The catalog entry a button names; a stale button (unknown id) is a BadAction."""
    found = await asyncio.to_thread(ctx.store.catalog.get, anime_id)
    if found is None:
        raise act.BadAction(f"no anime {anime_id}")
    return found


async def owned(ctx: Context, caller: Caller, parts: list[str], n: int) -> tuple[Who, list[int]]:
    """The presser and the first ``n`` numbers of an action whose last one is its owner.

    Raises :class:`NotOwner` when someone else pressed it.
    """
    nums = act.ints(parts, n)
    who = await ctx.users.find(caller)
    if nums[n - 1] != who.id:
        raise NotOwner()
    return who, nums


class NotOwner(Exception):
    """A press on a button made for someone else."""


async def did_you_mean(
    ctx: Context,
    caller: Caller,
    text: str,
    exc: UnknownTitleError,
    make: Callable[[Anime], Button],
    who: Who | None = None,
) -> Reply:
    """Suggestions for an unknown title; exact titles resolve even when adult, but suggestions
    respect the NSFW opt-in."""
    who = who or await ctx.users.find(caller)
    nsfw = await ctx.users.nsfw(caller, who)
    found = [getattr(s, "anime", s) for s in getattr(exc, "suggestions", ())]
    found = [a for a in found if isinstance(a, Anime) and (nsfw or not a.nsfw)][:SUGGESTIONS]
    if not found:
        return Reply(
            f"I couldn't find an anime called \u201c{text}\u201d. Check the "
            "spelling or try a shorter part of the title.",
            kind="did_you_mean",
        )
    names = "\n".join(f"- {a.title}" for a in found)
    return Reply(
        f"I couldn't find \u201c{text}\u201d. Did you mean:\n{names}",
        buttons=tuple((make(a),) for a in found),
        kind="did_you_mean",
    )


async def search_titles(ctx: Context, caller: Caller, text: str, limit: int) -> list[AnimeCard]:
    """Matching titles for inline mode and autocomplete, the NSFW opt-in respected."""
    text = text.strip()
    if not text:
        return []
    nsfw = await ctx.users.nsfw(caller, await ctx.users.find(caller))
    matches = await asyncio.to_thread(ctx.recommender.search, text, limit, nsfw)
    return [cards.card(m.anime) for m in matches]
