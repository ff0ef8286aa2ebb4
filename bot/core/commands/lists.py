"""List statuses in chat: /status, /ptw ("what should I watch tonight") and the status buttons.

``/status TITLE STATUS`` sets one (``/status TITLE`` shows it, with a button per status);
``/ptw`` picks from the plan-to-watch list by predicted score, ``/ptw add TITLE`` and
``/ptw remove TITLE`` keep the list. The rules of what a change keeps live in
:mod:`bot.core.statuses`.
"""

from __future__ import annotations

import asyncio

from bot.core import actions as act
from bot.core import cards
from bot.core.commands.common import anime, did_you_mean, owned, resolve
from bot.core.context import Context
from bot.core.limits import BUTTON_TITLE_CHARS, MAX_K
from bot.core.parsing import ArgumentError, read_int
from bot.core.statuses import (
    CODE_OF,
    CODES,
    HELP,
    SETTABLE,
    StatusRefused,
    after_status_change,
    label,
    split_status,
)
from bot.core.types import AnimeCard, Button, Caller, Command, Reply, Request
from bot.core.users import Who
from recommender.errors import UnknownTitleError
from recommender.types import Filters, Pick
from storage.rows import Anime, Rating

PTW = "plan_to_watch"


# -- parsing -----------------------------------------------------------------------------------
def parse_status(command: Command, caller: Caller, rest: str) -> Request:
    """``/status TITLE [STATUS]``: the status is read from the end of the line."""
    if not rest.strip():
        raise ArgumentError(f"Which anime, and which status ({HELP})?")
    title, status = split_status(rest)
    return Request(command, caller, text=rest, title=title, option=status)


def parse_ptw(command: Command, caller: Caller, rest: str) -> Request:
    """``/ptw``, ``/ptw N``, ``/ptw add TITLE``, ``/ptw remove TITLE``."""
    head, _, title = rest.strip().partition(" ")
    word = head.casefold()
    if not word:
        return Request(command, caller, text=rest)
    if word in ("add", "remove"):
        if not title.strip():
            raise ArgumentError(f"Which anime should I {word}?")
        return Request(command, caller, text=rest, setting=word, title=title.strip())
    k = read_int(rest)
    if k is None or not 1 <= k <= MAX_K:
        raise ArgumentError(f"Say /ptw (or /ptw 1-{MAX_K}), /ptw add TITLE or /ptw remove TITLE:")
    return Request(command, caller, text=rest, k=k)


# -- setting a status --------------------------------------------------------------------------
def save_status(ctx: Context, user_id: int, anime_: Anime, status: str) -> Rating | None:
    """Write one status (in a worker thread), keeping the score; the row it replaced.

    Raises :class:`StatusRefused` for a change the rules refuse (nothing is written then).
    """
    previous = next(
        (r for r in ctx.store.ratings.of_user(user_id) if r.anime_id == anime_.anime_id), None
    )
    score = after_status_change(previous, status, anime_.title)
    ctx.store.ratings.upsert(user_id, anime_.anime_id, score, status, "chat")
    ctx.recommender.invalidate(user_id)
    return previous


async def set_status(
    ctx: Context, who: Who, caller: Caller, anime_: Anime, status: str, edit: bool = False
) -> Reply:
    if who.user is None:
        who = await ctx.users.ensure(caller)
    try:
        previous = await asyncio.to_thread(save_status, ctx, who.id, anime_, status)
    except StatusRefused as exc:
        return Reply(str(exc), kind="error", ephemeral=True)
    was = ""
    if previous is not None and previous.status not in (None, status):
        was = f" (was {label(previous.status)})"
    extra = ""
    if status == "dropped":
        extra = " I won't suggest it or the rest of its series again."
    elif status == PTW:
        extra = " /ptw picks from that list."
    return Reply(f"{anime_.title}: {label(status)}{was}.{extra}", edit=edit)


def status_buttons(anime_id: int, who: Who, caller: Caller) -> tuple[Button, ...]:
    return tuple(
        Button(
            label(status).capitalize(),
            act.encode(act.STATUS, anime_id, CODE_OF[status], who.id),
            owner=caller.user_id,
        )
        for status in SETTABLE
    )


async def status(ctx: Context, request: Request) -> Reply:
    caller, title = request.caller, (request.title or "").strip()
    if not title:
        raise ArgumentError(f"Which anime, and which status ({HELP})?")
    who = await ctx.users.find(caller)
    try:
        found = await resolve(ctx, title)
    except UnknownTitleError as exc:
        code = CODE_OF.get(request.option or "", "?")  # "?": show the title's status buttons

        def make(a: Anime) -> Button:
            action = act.encode(act.STATUS, a.anime_id, code, who.id)
            return Button(a.title[:BUTTON_TITLE_CHARS], action, owner=caller.user_id)

        return await did_you_mean(ctx, caller, title, exc, make, who)
    if request.option is None:
        return await _show(ctx, who, caller, found)
    return await set_status(ctx, who, caller, found, request.option)


async def _show(ctx: Context, who: Who, caller: Caller, anime_: Anime) -> Reply:
    rows = await asyncio.to_thread(ctx.store.ratings.of_user, who.id) if who.user else []
    row = next((r for r in rows if r.anime_id == anime_.anime_id), None)
    now = "not on your list" if row is None else label(row.status)
    if row is not None and row.score is not None:
        now += f", rated {row.score}/10"
    return Reply(
        f"{anime_.title}: {now}. Set its status:",
        buttons=(status_buttons(anime_.anime_id, who, caller),),
        picks=(cards.card(anime_),),
    )


# -- /ptw --------------------------------------------------------------------------------------
async def ptw(ctx: Context, request: Request) -> Reply:
    caller = request.caller
    if request.setting in ("add", "remove"):
        return await _keep_list(ctx, request)
    who = await ctx.users.find(caller)
    rows = await asyncio.to_thread(ctx.store.ratings.of_user, who.id) if who.user else []
    planned = [r.anime_id for r in rows if r.status == PTW]
    if not planned:
        return Reply(
            "Your plan-to-watch list is empty. Add titles with /ptw add TITLE, the "
            "\u201cPlan to watch\u201d button on your picks, or /import your MyAnimeList list."
        )
    nsfw = await ctx.users.nsfw(caller, who)
    k = request.k or ctx.page_size
    picks = await asyncio.to_thread(_ptw_order, ctx, who, planned, nsfw)
    if not picks:
        return Reply("Everything on your plan-to-watch list is hidden here (adult titles).")
    made = [_ptw_card(p, who, caller) for p in picks[:k]]
    head = f"From your plan-to-watch list ({len(planned)} titles), best first:\n"
    text = head + "\n".join(cards.line(c, i + 1) for i, c in enumerate(made))
    return Reply(text, title=f"Tonight, {who.name}?", picks=tuple(made))


def _ptw_order(ctx: Context, who: Who, planned: list[int], nsfw: bool) -> list[Pick]:
    """The plan-to-watch titles by predicted score; without a model, by MyAnimeList score."""
    if ctx.recommender.ready:
        return ctx.recommender.rank_titles(who.id, planned, Filters(nsfw=nsfw), by="predicted")
    found = [a for a in (ctx.store.catalog.get(i) for i in planned) if a is not None]
    found = [a for a in found if nsfw or not a.nsfw]
    found.sort(key=lambda a: (-(a.mal_score or 0.0), a.anime_id))
    return [
        Pick(a, a.mal_score or 0.0, a.mal_score or 0.0, reason="MyAnimeList score") for a in found
    ]


def _ptw_card(pick: Pick, who: Who, caller: Caller) -> AnimeCard:
    aid, owner = pick.anime.anime_id, caller.user_id
    start = Button(
        "Watching now", act.encode(act.STATUS, aid, CODE_OF["watching"], who.id), "primary", owner
    )
    seen = Button("Seen it / rate", act.encode(act.RATE_ASK, aid, who.id), owner=owner)
    return cards.from_pick(pick, (start, seen))


async def _keep_list(ctx: Context, request: Request) -> Reply:
    """``/ptw add TITLE`` (the status rules apply) and ``/ptw remove TITLE``."""
    caller, title = request.caller, (request.title or "").strip()
    who = await ctx.users.find(caller)
    try:
        found = await resolve(ctx, title)
    except UnknownTitleError as exc:

        def make(a: Anime) -> Button:
            action = act.encode(act.STATUS, a.anime_id, CODE_OF[PTW], who.id)
            return Button(a.title[:BUTTON_TITLE_CHARS], action, owner=caller.user_id)

        return await did_you_mean(ctx, caller, title, exc, make, who)
    if request.setting == "add":
        return await set_status(ctx, who, caller, found, PTW)
    rows = await asyncio.to_thread(ctx.store.ratings.of_user, who.id) if who.user else []
    if not any(r.anime_id == found.anime_id and r.status == PTW for r in rows):
        return Reply(f"{found.title} isn't on your plan-to-watch list.")
    await asyncio.to_thread(ctx.store.ratings.delete, who.id, found.anime_id)
    await asyncio.to_thread(ctx.recommender.invalidate, who.id)
    return Reply(f"Took {found.title} off your plan-to-watch list.")


def plan_button(anime_id: int, who: Who, caller: Caller) -> Button:
    """The "Plan to watch" button of a pick card."""
    action = act.encode(act.STATUS, anime_id, CODE_OF[PTW], who.id)
    return Button("Plan to watch", action, owner=caller.user_id)


# -- button presses ----------------------------------------------------------------------------
async def press_status(ctx: Context, caller: Caller, parts: list[str], value: str | None) -> Reply:
    """``st:ANIME:CODE:OWNER`` (CODE ``?``: show the title's status and its buttons)."""
    if len(parts) < 3:
        raise act.BadAction("action id too short")
    who, (aid, _) = await owned(ctx, caller, [parts[0], parts[2]], 2)
    found = await anime(ctx, aid)
    if parts[1] == "?":
        return await _show(ctx, who, caller, found)
    wanted = CODES.get(parts[1])
    if wanted is None:
        raise act.BadAction(f"unknown status code {parts[1]!r}")
    reply = await set_status(ctx, who, caller, found, wanted)
    return Reply(reply.text, kind=reply.kind, ephemeral=True)
