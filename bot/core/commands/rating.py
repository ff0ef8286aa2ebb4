"""/rate and /unrate, and the buttons that rate: score keys, "seen it", "not interested"."""

from __future__ import annotations

import asyncio

from bot.core import actions as act
from bot.core import cards
from bot.core.commands.common import anime, did_you_mean, owned, resolve
from bot.core.context import Context
from bot.core.limits import BUTTON_TITLE_CHARS, MAX_SCORE, MIN_SCORE
from bot.core.parsing import ArgumentError
from bot.core.statuses import after_rating
from bot.core.types import Button, Caller, Reply, Request
from bot.core.users import Who
from recommender.errors import UnknownTitleError
from storage.repository import Store
from storage.rows import Anime, Rating, ScoreError


def save_rating(
    ctx: Context, user_id: int, anime_id: int, score: int | None, status: str | None
) -> tuple[Rating | None, int]:
    """Upsert one list row (in a worker thread); the previous row and the list's size now.

    The storage layer owns retrying a busy database; when it gives up it raises
    ``DatabaseBusyError`` and the rating is not saved (the error guard tells the person).
    """
    store: Store = ctx.store
    ratings = store.ratings.of_user(user_id)
    previous = next((r for r in ratings if r.anime_id == anime_id), None)
    if score is not None:
        status = after_rating(previous, status)  # rating a planned title: they watched it
    store.ratings.upsert(user_id, anime_id, score, status, "chat")
    ctx.recommender.invalidate(user_id)
    return previous, len(ratings) + (previous is None)


def rate_keyboard(anime_: Anime, who: Who, caller: Caller) -> tuple[tuple[Button, ...], ...]:
    def button(score: int) -> Button:
        action = act.encode(act.RATE, anime_.anime_id, score, who.id)
        return Button(str(score), action, owner=caller.user_id)

    return (tuple(button(s) for s in range(1, 6)), tuple(button(s) for s in range(6, 11)))


def ask_score(anime_: Anime, who: Who, caller: Caller) -> Reply:
    return Reply(
        f"How would you rate {anime_.title}? (1 = awful, 10 = masterpiece)",
        buttons=rate_keyboard(anime_, who, caller),
        picks=(cards.card(anime_),),
    )


async def rate(ctx: Context, request: Request) -> Reply:
    caller, title, score = request.caller, (request.title or "").strip(), request.score
    if not title:
        raise ArgumentError("Tell me what to rate:")
    if score is not None and not MIN_SCORE <= score <= MAX_SCORE:
        raise ScoreError(score)
    who = await ctx.users.ensure(caller)
    try:
        found = await resolve(ctx, title)
    except UnknownTitleError as exc:

        def make(a: Anime) -> Button:
            label = a.title[:BUTTON_TITLE_CHARS]
            if score is None:
                return Button(
                    label, act.encode(act.RATE_ASK, a.anime_id, who.id), owner=caller.user_id
                )
            action = act.encode(act.RATE, a.anime_id, score, who.id)
            return Button(label, action, owner=caller.user_id)

        return await did_you_mean(ctx, caller, title, exc, make, who)
    if score is None:
        return ask_score(found, who, caller)
    return await rated(ctx, who, found, score, caller)


async def rated(
    ctx: Context, who: Who, anime_: Anime, score: int, caller: Caller, edit: bool = False
) -> Reply:
    """Save a score and answer with the list size and a "recommend now" button."""
    if who.user is None:
        who = await ctx.users.ensure(caller)
    previous, count = await asyncio.to_thread(
        save_rating, ctx, who.id, anime_.anime_id, score, None
    )
    if caller.is_group and caller.chat_id:  # seen here: /twin and /fans may find them
        await asyncio.to_thread(ctx.store.members.seen, caller.platform, caller.chat_id, who.id)
    was = f" (was {previous.score})" if previous and previous.score not in (None, score) else ""
    more = Button(
        "Recommend for me", act.encode(act.RECOMMEND, who.id), "primary", owner=caller.user_id
    )
    return Reply(
        f"Rated {anime_.title}: {score}/10{was}. You have {count} anime on your list.",
        buttons=((more,),),
        edit=edit,
    )


async def unrate(ctx: Context, request: Request) -> Reply:
    caller, title = request.caller, (request.title or "").strip()
    if not title:
        raise ArgumentError("Which anime?")
    who = await ctx.users.find(caller)
    try:
        found = await resolve(ctx, title)
    except UnknownTitleError as exc:

        def make(a: Anime) -> Button:
            action = act.encode(act.UNRATE, a.anime_id, who.id)
            return Button(a.title[:BUTTON_TITLE_CHARS], action, owner=caller.user_id)

        return await did_you_mean(ctx, caller, title, exc, make, who)
    return await _unrate(ctx, who, found)


async def _unrate(ctx: Context, who: Who, anime_: Anime, edit: bool = False) -> Reply:
    removed = who.user is not None and await asyncio.to_thread(
        ctx.store.ratings.delete, who.id, anime_.anime_id
    )
    if not removed:
        return Reply(f"{anime_.title} wasn't on your list.", edit=edit)
    await asyncio.to_thread(ctx.recommender.invalidate, who.id)
    return Reply(f"Removed {anime_.title} from your list.", edit=edit)


# -- button presses ----------------------------------------------------------------------------
async def press_rate(ctx: Context, caller: Caller, parts: list[str], value: str | None) -> Reply:
    """``rt:ANIME:SCORE:OWNER``."""
    who, (aid, score, _) = await owned(ctx, caller, parts, 3)
    if not MIN_SCORE <= score <= MAX_SCORE:
        raise ScoreError(score)
    return await rated(ctx, who, await anime(ctx, aid), score, caller, edit=True)


async def press_ask(ctx: Context, caller: Caller, parts: list[str], value: str | None) -> Reply:
    """``rs:ANIME:OWNER``: show the 1-10 keys."""
    who, (aid, _) = await owned(ctx, caller, parts, 2)
    return ask_score(await anime(ctx, aid), who, caller)


async def press_not_interested(
    ctx: Context, caller: Caller, parts: list[str], value: str | None
) -> Reply:
    """``ni:ANIME:OWNER``."""
    who, (aid, _) = await owned(ctx, caller, parts, 2)
    found = await anime(ctx, aid)
    if who.user is None:
        who = await ctx.users.ensure(caller)
    await asyncio.to_thread(save_rating, ctx, who.id, found.anime_id, None, "not_interested")
    return Reply(f"Got it, I won't suggest {found.title} again.", ephemeral=True)


async def press_unrate(ctx: Context, caller: Caller, parts: list[str], value: str | None) -> Reply:
    """``ur:ANIME:OWNER``."""
    who, (aid, _) = await owned(ctx, caller, parts, 2)
    return await _unrate(ctx, who, await anime(ctx, aid), edit=True)
