"""The first minute: a short deck of telling titles to rate (or skip), one card at a time.

The deck comes from the model (:meth:`Recommender.onboarding_deck`): popular titles spread over
the model's space and divisive, so a handful of answers places a new person well. Titles the
person already has on their list are passed over.
"""

from __future__ import annotations

import asyncio

from bot.core import actions as act
from bot.core import cards
from bot.core.commands.common import anime, no_model, owned
from bot.core.commands.rating import save_rating
from bot.core.context import Context
from bot.core.limits import MAX_SCORE, MIN_SCORE
from bot.core.types import Button, Caller, Reply
from bot.core.users import Who
from storage.rows import ScoreError

DECK_SIZE = 10
#: Fewer scored titles than this and /start and /recommend offer the deck.
NEW_USER_RATINGS = 5


def offer(who: Who, caller: Caller) -> Button:
    """The button that opens the deck."""
    return Button(
        "Quick start: rate 10 titles",
        act.encode(act.DECK, 0, who.id),
        "success",
        owner=caller.user_id,
    )


async def card_at(
    ctx: Context, who: Who, caller: Caller, pos: int, note: str = "", edit: bool = False
) -> Reply:
    """The deck's first card at or after ``pos`` that is not on the person's list."""
    if not ctx.recommender.ready:
        return no_model()
    nsfw = await ctx.users.nsfw(caller, who)
    deck = await asyncio.to_thread(ctx.recommender.onboarding_deck, DECK_SIZE, nsfw)
    listed: set[int] = set()
    if who.user is not None:
        rows = await asyncio.to_thread(ctx.store.ratings.of_user, who.id)
        listed = {r.anime_id for r in rows}
    pos = max(pos, 0)
    while pos < len(deck) and deck[pos].anime_id in listed:
        pos += 1
    prefix = f"{note}\n" if note else ""
    if pos >= len(deck):
        more = Button(
            "Recommend for me", act.encode(act.RECOMMEND, who.id), "primary", owner=caller.user_id
        )
        return Reply(
            prefix + "That's the deck! Your picks are ready: /recommend.",
            buttons=((more,),),
            edit=edit,
        )
    shown = deck[pos]

    def key(score: int) -> Button:
        action = act.encode(act.DECK_RATE, shown.anime_id, score, pos, who.id)
        return Button(str(score), action, owner=caller.user_id)

    skip = Button("Haven't seen it", act.encode(act.DECK, pos + 1, who.id), owner=caller.user_id)
    return Reply(
        f"{prefix}Quick start {pos + 1}/{len(deck)}: how would you rate {shown.title}? "
        "(1 = awful, 10 = masterpiece)",
        picks=(cards.card(shown),),
        buttons=(
            tuple(key(s) for s in range(1, 6)),
            tuple(key(s) for s in range(6, 11)),
            (skip,),
        ),
        edit=edit,
    )


async def press_deck(ctx: Context, caller: Caller, parts: list[str], value: str | None) -> Reply:
    """``ob:POS:OWNER``: show (or skip to) a deck card."""
    who, (pos, _) = await owned(ctx, caller, parts, 2)
    return await card_at(ctx, who, caller, pos, edit=pos > 0)


async def press_rate(ctx: Context, caller: Caller, parts: list[str], value: str | None) -> Reply:
    """``od:ANIME:SCORE:POS:OWNER``: rate a deck card, then the next one."""
    who, (aid, score, pos, _) = await owned(ctx, caller, parts, 4)
    if not MIN_SCORE <= score <= MAX_SCORE:
        raise ScoreError(score)
    found = await anime(ctx, aid)
    if who.user is None:
        who = await ctx.users.ensure(caller)
    await asyncio.to_thread(save_rating, ctx, who.id, found.anime_id, score, None)
    note = f"Rated {found.title}: {score}/10."
    return await card_at(ctx, who, caller, pos + 1, note, edit=True)
