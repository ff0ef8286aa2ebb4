"""/recommend and /similar, and the buttons that page ("More") or ask for picks."""

from __future__ import annotations

import asyncio

from bot.core import actions as act
from bot.core import cards
from bot.core.commands import lists, onboarding, series, steering
from bot.core.commands.common import anime, did_you_mean, no_model, owned, resolve
from bot.core.context import Context
from bot.core.limits import BUTTON_TITLE_CHARS, MAX_K, PAGE_CAP
from bot.core.parsing import ArgumentError
from bot.core.types import AnimeCard, Button, Caller, Reply, Request
from bot.core.users import Who
from recommender.errors import UnknownTitleError
from recommender.types import Filters, Pick
from storage.rows import Anime

COLD_START = (
    "You haven't rated anything yet, so these are popular, well-liked picks. "
    "Rate a few with /rate TITLE SCORE for personal ones.\n"
)


async def recommend(ctx: Context, request: Request) -> Reply:
    k = request.k or ctx.page_size
    if not 1 <= k <= MAX_K:
        raise ArgumentError(f"How many picks, from 1 to {MAX_K}:")
    who = await ctx.users.find(request.caller)
    return await page(ctx, who, request.caller, offset=0, k=k)


async def page(ctx: Context, who: Who, caller: Caller, offset: int, k: int) -> Reply:
    """One page of picks. The recommender says whether the list is empty, so the ratings are
    not read again here."""
    if not ctx.recommender.ready:
        return no_model()
    nsfw = await ctx.users.nsfw(caller, who)
    found = await asyncio.to_thread(
        ctx.recommender.recommend_page,
        who.id if who.user is not None else None,
        k,
        Filters(nsfw=nsfw),
        offset,
    )
    if not found.picks:
        return Reply(
            "I have nothing more to suggest right now. Rate a few more anime and ask again!"
        )
    made = [_card(p, who, caller) for p in found.picks]
    text = "\n".join(cards.line(c, offset + i + 1) for i, c in enumerate(made))
    if not found.scored:
        text = COLD_START + text
    buttons: tuple[tuple[Button, ...], ...] = ()
    row: list[Button] = []
    if offset + k < PAGE_CAP:
        row.append(Button("More", act.encode(act.MORE, offset + k, who.id), owner=caller.user_id))
    if offset == 0 and found.scored < onboarding.NEW_USER_RATINGS:
        row.append(onboarding.offer(who, caller))
    if row:
        buttons = (tuple(row),)
    return Reply(text, title=f"Picks for {who.name}", picks=tuple(made), buttons=buttons)


def _card(pick: Pick, who: Who, caller: Caller) -> AnimeCard:
    aid, owner = pick.anime.anime_id, caller.user_id
    seen = Button("Seen it / rate", act.encode(act.RATE_ASK, aid, who.id), "primary", owner=owner)
    skip = Button(
        "Not interested", act.encode(act.NOT_INTERESTED, aid, who.id), "danger", owner=owner
    )
    plan = lists.plan_button(aid, who, caller)
    return cards.from_pick(pick, (seen, skip, steering.less_button(pick, who, caller), plan))


async def similar(ctx: Context, request: Request) -> Reply:
    caller, title = request.caller, (request.title or "").strip()
    if not title:
        raise ArgumentError("Which anime?")
    try:
        found = await resolve(ctx, title)
    except UnknownTitleError as exc:

        def make(a: Anime) -> Button:
            return Button(a.title[:BUTTON_TITLE_CHARS], act.encode(act.SIMILAR, a.anime_id))

        return await did_you_mean(ctx, caller, title, exc, make)
    return await _similar(ctx, caller, found)


async def _similar(ctx: Context, caller: Caller, anime_: Anime) -> Reply:
    if not ctx.recommender.ready:
        return no_model()
    who = await ctx.users.find(caller)
    nsfw = await ctx.users.nsfw(caller, who)
    uid = who.id if who.user is not None else None
    found = await asyncio.to_thread(
        ctx.recommender.similar, anime_.anime_id, ctx.page_size, Filters(nsfw=nsfw), uid
    )
    if not found:
        return Reply(f"I don't know anything similar to {anime_.title} yet.")
    made = [
        cards.from_similar(
            p,
            (
                Button(
                    "Seen it / rate",
                    act.encode(act.RATE_ASK, p.anime.anime_id, who.id),
                    owner=caller.user_id,
                ),
            ),
        )
        for p in found
    ]
    text = "\n".join(cards.line(c, i + 1) for i, c in enumerate(made))
    same = await series.same_series_line(ctx, anime_, nsfw)
    text = f"{same}\n{text}" if same else text
    return Reply(text, title=f"Like {anime_.title}", picks=tuple(made))


# -- button presses ----------------------------------------------------------------------------
async def press_more(ctx: Context, caller: Caller, parts: list[str], value: str | None) -> Reply:
    """``mo:OFFSET:OWNER``: the next page."""
    who, (offset, _) = await owned(ctx, caller, parts, 2)
    return await page(ctx, who, caller, offset=max(0, min(offset, PAGE_CAP)), k=ctx.page_size)


async def press_recommend(
    ctx: Context, caller: Caller, parts: list[str], value: str | None
) -> Reply:
    """``rc:OWNER``: "recommend for me" after rating."""
    who, _ = await owned(ctx, caller, parts, 1)
    return await page(ctx, who, caller, offset=0, k=ctx.page_size)


async def press_similar(ctx: Context, caller: Caller, parts: list[str], value: str | None) -> Reply:
    """``sm:ANIME``: anyone may press."""
    (aid,) = act.ints(parts, 1)
    return await _similar(ctx, caller, await anime(ctx, aid))
