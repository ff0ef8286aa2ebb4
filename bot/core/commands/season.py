"""/season [now|next]: this (or next) season's titles ranked for the caller, and the radar's
opt-out button.

Seasons follow the anime-offline-database: WINTER is January to March, SPRING April to June,
SUMMER July to September, FALL October to December. "Now" comes from ``Context.now`` (a fixed
date in tests). The weekly radar (:mod:`bot.radar`) builds its posts from the same functions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from bot.core import actions as act
from bot.core import cards
from bot.core.commands.common import no_model, owned
from bot.core.commands.lists import plan_button
from bot.core.context import Context
from bot.core.parsing import ArgumentError
from bot.core.types import AnimeCard, Button, Caller, Command, Reply, Request
from bot.core.users import Who
from recommender.types import Filters, Pick
from storage.rows import Rating

SEASONS = ("WINTER", "SPRING", "SUMMER", "FALL")
_NOW = frozenset({"now", "this", "current", "this season"})
_NEXT = frozenset({"next", "next season", "upcoming"})
#: List rows with these statuses still belong in a season ranking (marked as such).
KEEP_LISTED = frozenset({"plan_to_watch"})
RADAR_SETTING = "radar"


Season = tuple[str, int]


def season_of(when: datetime) -> Season:
    """The anime season a date falls in: ``("WINTER", 2026)`` for 2026-02-01."""
    return SEASONS[(when.month - 1) // 3], when.year


def next_season(season: Season) -> Season:
    name, year = season
    i = SEASONS.index(name)
    return (SEASONS[0], year + 1) if i == len(SEASONS) - 1 else (SEASONS[i + 1], year)


def season_name(season: Season) -> str:
    return f"{season[0].capitalize()} {season[1]}"


def parse_season(command: Command, caller: Caller, rest: str) -> Request:
    word = " ".join(rest.casefold().split())
    if not word or word in _NOW:
        return Request(command, caller, text=rest, option="now")
    if word in _NEXT:
        return Request(command, caller, text=rest, option="next")
    raise ArgumentError("Say now or next:")


def which(ctx: Context, option: str | None) -> Season:
    now = season_of(ctx.now())
    return next_season(now) if option == "next" else now


def season_picks(
    ctx: Context, user_id: int | None, season: Season, nsfw: bool, k: int
) -> tuple[list[Pick], int]:
    """(the season's best ``k`` for the user, how many titles the season has) (in a thread).

    What the person already has on their list is left out, except titles they plan to watch.
    """
    titles = ctx.store.catalog.in_season(*season)
    rows: Sequence[Rating] = ctx.store.ratings.of_user(user_id) if user_id is not None else ()
    listed = {r.anime_id for r in rows if r.status not in KEEP_LISTED}
    ids = [a.anime_id for a in titles if a.anime_id not in listed]
    ranked = ctx.recommender.rank_titles(user_id, ids, Filters(nsfw=nsfw), by="rank")
    return ranked[:k], len(titles)


async def season(ctx: Context, request: Request) -> Reply:
    if not ctx.recommender.ready:
        return no_model()
    caller = request.caller
    who = await ctx.users.find(caller)
    when = which(ctx, request.option)
    nsfw = await ctx.users.nsfw(caller, who)
    uid = who.id if who.user is not None else None
    picks, total = await asyncio.to_thread(season_picks, ctx, uid, when, nsfw, ctx.page_size)
    name = season_name(when)
    if total == 0:
        return Reply(
            f"I don't know the titles of {name} yet: the catalog has no season data for it "
            "(an admin can import the anime-offline-database)."
        )
    if not picks:
        return Reply(f"Nothing of {name}'s {total} titles is left to suggest to you.")
    planned = await _planned(ctx, who)
    made = [_card(p, who, caller, p.anime.anime_id in planned) for p in picks]
    text = f"{name}: {total} titles; the best for you:\n" + "\n".join(
        cards.line(c, i + 1) for i, c in enumerate(made)
    )
    return Reply(text, title=f"{name} for {who.name}", picks=tuple(made))


async def _planned(ctx: Context, who: Who) -> set[int]:
    rows = await asyncio.to_thread(ctx.store.ratings.of_user, who.id) if who.user else []
    return {r.anime_id for r in rows if r.status == "plan_to_watch"}


def _card(pick: Pick, who: Who, caller: Caller, planned: bool) -> AnimeCard:
    made = cards.from_pick(pick)
    if planned:
        return cards.card(
            pick.anime,
            predicted_score=made.predicted_score,
            reason="on your plan-to-watch list" + (f"; {made.reason}" if made.reason else ""),
        )
    return cards.card(
        pick.anime,
        predicted_score=made.predicted_score,
        reason=made.reason,
        buttons=(plan_button(pick.anime.anime_id, who, caller),),
    )


# -- the radar's one-tap opt-out -----------------------------------------------------------------
def chat_off_button() -> Button:
    return Button("Stop the radar here", act.encode(act.RADAR_OFF, "c"), "danger")


def user_off_button(user_id: int, platform_user_id: str) -> Button:
    return Button(
        "Stop radar messages",
        act.encode(act.RADAR_OFF, "u", user_id),
        "danger",
        owner=platform_user_id,
    )


async def press_radar_off(
    ctx: Context, caller: Caller, parts: list[str], value: str | None
) -> Reply:
    """``ro:c`` (a group's admins) or ``ro:u:OWNER``: the radar off, in one tap."""
    if parts[:1] == ["u"]:
        who, _ = await owned(ctx, caller, parts[1:], 1)
        if who.user is not None:
            await asyncio.to_thread(
                ctx.store.users.update_settings, who.id, **{RADAR_SETTING: False}
            )
        return Reply(
            "Seasonal radar off: no more radar messages. /settings radar on brings it back."
        )
    if parts[:1] != ["c"] or not caller.chat_id:
        raise act.BadAction("unknown radar action")
    if caller.is_group and not (caller.chat_admin or ctx.is_admin(caller)):
        return Reply(
            "Only the group's admins can stop the radar here.", kind="denied", ephemeral=True
        )
    await asyncio.to_thread(
        ctx.store.chats.update_settings, caller.platform, caller.chat_id, **{RADAR_SETTING: False}
    )
    return Reply("Seasonal radar off for this chat. /settings chat radar on brings it back.")
