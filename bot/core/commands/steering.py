""" "Less like this" on a pick, and undoing it from /settings.

What is weakened is what stood behind the pick: the title that explained it most, else its
favourite genre, else the pick itself. It is kept in the person's settings (``less``) and the
recommender's cached fold-in is dropped, so the next list already leans away from it.
"""

from __future__ import annotations

import asyncio

from bot.core import actions as act
from bot.core.commands.common import NotOwner, anime
from bot.core.context import Context
from bot.core.limits import BUTTON_TITLE_CHARS
from bot.core.types import Button, Caller, Reply
from bot.core.users import Who
from recommender.steering import LessLike
from recommender.types import Pick

TITLE, GENRE = "t", "g"
#: Undo buttons /settings shows at most.
MAX_UNDO = 8


def _genre_part(genre: str) -> str | None:
    """A genre as an action part (spaces as '_'); None when it cannot be one."""
    part = genre.replace(" ", "_")
    ok = part.isascii() and part.isprintable() and ":" not in part and len(part) <= 30
    return part if ok and part else None


def less_button(pick: Pick, who: Who, caller: Caller) -> Button:
    """The "Less like this" button of one pick."""
    target: tuple[str, str | int] = (TITLE, pick.anime.anime_id)
    if pick.because:
        target = (TITLE, pick.because[0].anime_id)
    elif pick.genres and _genre_part(pick.genres[0]):
        target = (GENRE, _genre_part(pick.genres[0]) or "")
    return Button(
        "Less like this", act.encode(act.LESS, *target, who.id), "secondary", owner=caller.user_id
    )


def read_less(who: Who) -> LessLike:
    return LessLike.from_settings(who.user.settings) if who.user is not None else LessLike()


async def _owned(ctx: Context, caller: Caller, parts: list[str]) -> tuple[Who, str, str]:
    """(presser, kind, target) of an ``ll``/``lu`` action; NotOwner for someone else's."""
    if len(parts) < 3 or parts[0] not in (TITLE, GENRE):
        raise act.BadAction("bad steering action")
    (owner,) = act.ints(parts[2:3], 1)
    who = await ctx.users.find(caller)
    if owner != who.id:
        raise NotOwner()
    if parts[0] == TITLE:
        act.ints(parts[1:2], 1)
    return who, parts[0], parts[1]


async def _save(ctx: Context, caller: Caller, who: Who, less: LessLike) -> Who:
    """Store the list and drop the cached fold-in, so the next picks already follow it."""
    if who.user is None:
        who = await ctx.users.ensure(caller)
    await asyncio.to_thread(ctx.store.users.update_settings, who.id, less=less.to_json())
    await asyncio.to_thread(ctx.recommender.invalidate, who.id)
    return who


async def _name(ctx: Context, kind: str, target: str) -> str:
    if kind == GENRE:
        return f"the genre {target.replace('_', ' ')}"
    found = await asyncio.to_thread(ctx.store.catalog.get, int(target))
    return found.title if found is not None else f"anime #{target}"


async def press_less(ctx: Context, caller: Caller, parts: list[str], value: str | None) -> Reply:
    """``ll:t:ANIME:OWNER`` / ``ll:g:GENRE:OWNER``."""
    who, kind, target = await _owned(ctx, caller, parts)
    less = read_less(who)
    if kind == TITLE:
        await anime(ctx, int(target))  # a made-up id is an expired button, not a setting
        less = less.with_title(int(target))
    else:
        less = less.with_genre(target.replace("_", " "))
    who = await _save(ctx, caller, who, less)
    name = await _name(ctx, kind, target)
    undo = Button("Undo", act.encode(act.LESS_UNDO, kind, target, who.id), owner=caller.user_id)
    return Reply(
        f"Got it: less like {name} from now on. Undo it here or in /settings.",
        buttons=((undo,),),
        ephemeral=True,
    )


async def press_undo(ctx: Context, caller: Caller, parts: list[str], value: str | None) -> Reply:
    """``lu:t:ANIME:OWNER`` / ``lu:g:GENRE:OWNER``."""
    who, kind, target = await _owned(ctx, caller, parts)
    less = read_less(who)
    after = (
        less.without_title(int(target))
        if kind == TITLE
        else less.without_genre(target.replace("_", " "))
    )
    name = await _name(ctx, kind, target)
    if after == less:
        return Reply(f"{name} wasn't on your less-like-this list.", ephemeral=True)
    await _save(ctx, caller, who, after)
    return Reply(f"Undone: {name} counts fully again.", ephemeral=True)


async def listing(ctx: Context, who: Who, caller: Caller) -> tuple[str, tuple[Button, ...]]:
    """The person's "less like this" list for /settings, and an Undo button per entry."""
    less = read_less(who)
    if not less:
        return "Less like this: nothing.", ()
    entries: list[tuple[str, str, str]] = []
    for aid in less.titles:
        entries.append((TITLE, str(aid), await _name(ctx, TITLE, str(aid))))
    for genre in less.genres:
        part = _genre_part(genre)
        if part:
            entries.append((GENRE, part, f"genre {genre}"))
    text = "Less like this: " + ", ".join(name for _, _, name in entries) + "."
    buttons = tuple(
        Button(
            f"Undo: {name}"[:BUTTON_TITLE_CHARS],
            act.encode(act.LESS_UNDO, kind, target, who.id),
            owner=caller.user_id,
        )
        for kind, target, name in entries[-MAX_UNDO:]
    )
    return text, buttons
