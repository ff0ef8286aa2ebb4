"""/next ("continue the series") and the one line /similar adds about the title's own series."""

from __future__ import annotations

import asyncio

from bot.core import actions as act
from bot.core import cards
from bot.core.commands.common import no_model
from bot.core.context import Context
from bot.core.types import Button, Reply, Request
from recommender.types import Filters
from storage.rows import Anime

#: /next is a short list: one entry per series, the best few.
NEXT_K = 5
#: How many titles of a series the /similar line names before "and N more".
SAME_SERIES_NAMES = 3


async def next_(ctx: Context, request: Request) -> Reply:
    """The next unseen entry of every series the caller is watching, best predicted first."""
    if not ctx.recommender.ready:
        return no_model()
    caller = request.caller
    who = await ctx.users.find(caller)
    if who.user is None:
        return Reply("You have no list yet. Rate what you've watched with /rate TITLE SCORE.")
    nsfw = await ctx.users.nsfw(caller, who)
    found = await asyncio.to_thread(
        ctx.recommender.next_up, who.id, min(NEXT_K, ctx.page_size), Filters(nsfw=nsfw)
    )
    if not found:
        return Reply(
            "Nothing to continue: no series on your list has an unseen next entry. "
            "Try /recommend for something new."
        )
    made = [
        cards.from_pick(
            p,
            (
                Button(
                    "Seen it / rate",
                    act.encode(act.RATE_ASK, p.anime.anime_id, who.id),
                    "primary",
                    owner=caller.user_id,
                ),
            ),
        )
        for p in found
    ]
    text = "\n".join(cards.line(c, i + 1) for i, c in enumerate(made))
    return Reply(text, title=f"Continue the series, {who.name}", picks=tuple(made))


async def same_series_line(ctx: Context, anime: Anime, nsfw: bool) -> str:
    """ "Same series: A, B and 3 more" for /similar (empty when ``anime`` stands alone)."""
    graph = await asyncio.to_thread(ctx.recommender.franchises)
    relatives = graph.relatives(anime.anime_id)
    if not relatives:
        return ""
    named: list[str] = []
    for anime_id in relatives:
        other = await asyncio.to_thread(ctx.store.catalog.get, anime_id)
        if other is not None and (nsfw or not other.nsfw):
            named.append(other.title)
        if len(named) == SAME_SERIES_NAMES:
            break
    if not named:
        return ""
    more = len(relatives) - len(named)
    tail = f" and {more} more" if more > 0 else ""
    return "Same series (left out): " + ", ".join(named) + tail
