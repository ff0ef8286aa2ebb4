"""/night: a group anime night (named members or a lobby to join), its picks, votes and vetoes.

Picks respect an optional time budget and every member's vetoes; each pick says, per member,
which of their titles it follows from. Votes come from Discord's select menu or Telegram's
native poll (both arrive as ``nv`` presses); "Decide" counts them and closes the vote.
"""

from __future__ import annotations

import asyncio

from bot.core import actions as act
from bot.core import cards
from bot.core.budget import Budget, from_code
from bot.core.commands.common import no_model
from bot.core.context import Context
from bot.core.night import MAX_MEMBERS, Lobby
from bot.core.parsing import read_int
from bot.core.types import AnimeCard, Button, Caller, Choice, Poll, Reply, Request
from bot.core.users import display_name
from recommender.types import Filters, GroupPick
from storage.rows import User

#: How many candidates to rank when a budget or vetoes will discard some.
OVERFETCH = 4
MAX_CANDIDATES = 60


async def night(ctx: Context, request: Request) -> Reply:
    caller = request.caller
    if not request.members and not request.names and not caller.is_group:
        return Reply(
            "Name who is watching: /night NAME NAME ... (or use /night in a "
            "group to open a lobby).",
            kind="error",
            ephemeral=True,
        )
    who = await ctx.users.ensure(caller)  # a lobby keys its members by their user rows
    if not request.members and not request.names:
        lobby = await asyncio.to_thread(
            ctx.lobbies.open,
            caller.platform,
            caller.chat_id,
            who.id,
            {who.id: who.name},
            request.budget,
        )
        return lobby_reply(lobby)
    members: dict[int, str] = {who.id: who.name}
    for member in request.members:
        user = await asyncio.to_thread(
            ctx.store.users.ensure, caller.platform, member.user_id, member.display_name
        )
        members[user.id] = display_name(user)
    missing = []
    for name in request.names:
        found = await _find_by_name(ctx, caller.platform, name)
        if found is None:
            missing.append(name)
        else:
            members[found.id] = display_name(found)
    if missing:
        return Reply(
            f"I don't know {', '.join(missing)} here yet; they need to /rate something first.",
            kind="error",
        )
    if len(members) > MAX_MEMBERS:
        return Reply(f"That's a big party! At most {MAX_MEMBERS} people per night.", kind="error")
    lobby = await asyncio.to_thread(
        ctx.lobbies.open, caller.platform, caller.chat_id, who.id, members, request.budget
    )
    return await night_picks(ctx, lobby, caller)


async def _find_by_name(ctx: Context, platform: str, name: str) -> User | None:
    found = await asyncio.to_thread(ctx.store.users.find_by_name, platform, name)
    if found:
        return found[0]
    return await asyncio.to_thread(ctx.store.users.find, platform, name)


def _budget_note(lobby: Lobby) -> str:
    budget = from_code(lobby.budget)
    return f" (time budget: {budget.describe()})" if budget else ""


def lobby_reply(lobby: Lobby, edit: bool = False) -> Reply:
    names = ", ".join(lobby.members.values())
    return Reply(
        f"Anime night{_budget_note(lobby)}! Press Join to take part, then Pick when everyone "
        f"is in.\nIn so far ({len(lobby.members)}): {names}",
        title="Anime night",
        buttons=(
            (
                Button("Join", act.encode(act.NIGHT_JOIN, lobby.id), "success"),
                Button("Pick!", act.encode(act.NIGHT_GO, lobby.id), "primary"),
            ),
        ),
        kind="lobby",
        edit=edit,
    )


async def _nsfw(ctx: Context, lobby: Lobby, caller: Caller) -> bool:
    if caller.is_group:
        return await ctx.users.chat_nsfw(caller)
    users = [await asyncio.to_thread(ctx.store.users.get, uid) for uid in lobby.members]
    return all(u is not None and u.settings.get("nsfw", False) for u in users)


def _choose(ctx: Context, lobby: Lobby, budget: Budget | None, nsfw: bool) -> list[GroupPick]:
    """The best picks for the lobby's members within the budget, vetoed titles left out."""
    filters = Filters(
        nsfw=nsfw, types=frozenset({"Movie"}) if budget and budget.movie else frozenset()
    )
    extra = len(lobby.vetoed) + (ctx.page_size * OVERFETCH if budget else 0)
    ranked = ctx.recommender.anime_night(
        list(lobby.members), min(ctx.page_size + extra, MAX_CANDIDATES), filters
    )
    vetoed = set(lobby.vetoed)
    kept = [
        p
        for p in ranked
        if p.anime.anime_id not in vetoed
        and (budget is None or budget.allows(p.anime.type, p.anime.episodes))
    ]
    return kept[: ctx.page_size]


def _reasons(ctx: Context, lobby: Lobby, pick: GroupPick) -> str:
    """One line per member: which of their titles this pick follows from."""
    lines = []
    for uid, name in lobby.members.items():
        liked = ctx.recommender.because(uid, pick.anime.anime_id)
        if liked:
            lines.append(f"for {name}: you liked {liked[0].title}")
    return "\n".join(lines)


async def night_picks(ctx: Context, lobby: Lobby, caller: Caller, edit: bool = False) -> Reply:
    if not ctx.recommender.ready:
        return no_model()
    nsfw = await _nsfw(ctx, lobby, caller)
    budget = from_code(lobby.budget)
    picks = await asyncio.to_thread(_choose, ctx, lobby, budget, nsfw)
    if not picks:
        within = f" within {budget.describe()}" if budget else ""
        return Reply(f"I couldn't find anything{within} none of you has seen. Impressive!")
    reasons = await asyncio.to_thread(lambda: [_reasons(ctx, lobby, p) for p in picks])
    made = [
        _with_veto(cards.from_group(p, lobby.members), lobby, why)
        for p, why in zip(picks, reasons, strict=True)
    ]
    titles = {c.anime_id: c.title for c in made}

    def store_picks(current: Lobby) -> bool:
        current.picks = titles
        current.votes = {v: a for v, a in current.votes.items() if a in titles}
        current.round += 1
        return True

    saved = await asyncio.to_thread(ctx.lobbies.change, lobby.id, store_picks)
    lobby = saved or lobby
    text = "\n".join(cards.line(c, i + 1) for i, c in enumerate(made))
    poll = Poll(
        "What do we watch tonight?",
        tuple(Choice(c.title[:100], str(c.anime_id)) for c in made),
        act.encode(act.NIGHT_VOTE, lobby.id, lobby.round),
    )
    decide = Button("Decide", act.encode(act.NIGHT_DECIDE, lobby.id), "primary")
    return Reply(
        f"Anime night for {', '.join(lobby.members.values())}{_budget_note(lobby)}:\n{text}",
        title="Anime night picks",
        picks=tuple(made),
        poll=poll,
        buttons=((decide,),),
        edit=edit,
        closes_poll=act.encode(act.NIGHT_VOTE, lobby.id, lobby.round - 1) if edit else None,
    )


def _with_veto(card: AnimeCard, lobby: Lobby, reason: str) -> AnimeCard:
    veto = Button("Veto", act.encode(act.NIGHT_VETO, lobby.id, card.anime_id), "danger")
    return AnimeCard(**{**card.__dict__, "reason": reason, "buttons": (veto,)})


# -- button presses and votes ------------------------------------------------------------------
def _ended() -> Reply:
    return Reply(
        "This anime night has ended. Start a new one with /night.", kind="error", ephemeral=True
    )


async def _lobby(ctx: Context, parts: list[str]) -> Lobby | None:
    return await asyncio.to_thread(ctx.lobbies.get, parts[0] if parts else "")


async def press_join(ctx: Context, caller: Caller, parts: list[str], value: str | None) -> Reply:
    """``nj:LOBBY``."""
    if await _lobby(ctx, parts) is None:
        return _ended()
    who = await ctx.users.ensure(caller)
    refusal: list[str] = []

    def join(lobby: Lobby) -> bool:
        if who.id in lobby.members:
            refusal.append("You're already in.")
        elif lobby.picks:
            refusal.append("The picks are out already; start a new /night.")
        elif len(lobby.members) >= MAX_MEMBERS:
            refusal.append(f"The lobby is full ({MAX_MEMBERS}).")
        else:
            lobby.members[who.id] = who.name
        return not refusal

    lobby = await asyncio.to_thread(ctx.lobbies.change, parts[0], join)
    if lobby is None:
        return _ended()
    if refusal:
        return Reply(refusal[0], ephemeral=True)
    return lobby_reply(lobby, edit=True)


async def press_go(ctx: Context, caller: Caller, parts: list[str], value: str | None) -> Reply:
    """``ng:LOBBY``: compute the picks for the lobby's members."""
    lobby = await _lobby(ctx, parts)
    if lobby is None:
        return _ended()
    who = await ctx.users.find(caller)
    if who.user is None or who.id not in lobby.members:
        return Reply("Join first, then pick.", ephemeral=True)
    return await night_picks(ctx, lobby, caller)


async def press_vote(ctx: Context, caller: Caller, parts: list[str], value: str | None) -> Reply:
    """``nv:LOBBY[:ROUND]`` with the chosen anime id as ``value``."""
    lobby = await _lobby(ctx, parts)
    if lobby is None:
        return _ended()
    if lobby.closed:
        return Reply("The vote is over: tonight's anime is decided.", ephemeral=True)
    choice = read_int(value) if value is not None else None
    if choice is None or choice not in lobby.picks:
        return Reply("That isn't one of tonight's picks.", kind="error", ephemeral=True)
    who = await ctx.users.ensure(caller)

    def vote(current: Lobby) -> bool:
        if choice not in current.picks or current.closed:
            return False
        current.votes[who.id] = choice
        return True

    lobby = await asyncio.to_thread(ctx.lobbies.change, lobby.id, vote) or lobby
    tally = ", ".join(f"{t}: {n}" for t, n in lobby.tally())
    return Reply(f"You voted for {lobby.picks[choice]}. Votes so far: {tally}.", ephemeral=True)


async def press_veto(ctx: Context, caller: Caller, parts: list[str], value: str | None) -> Reply:
    """``nx:LOBBY:ANIME``: a member turns a pick down; the list is redrawn without it."""
    lobby = await _lobby(ctx, parts)
    if lobby is None:
        return _ended()
    who = await ctx.users.find(caller)
    if who.user is None or who.id not in lobby.members:
        return Reply("Only people in this anime night can veto.", ephemeral=True)
    if lobby.closed:
        return Reply("Tonight's anime is decided already.", ephemeral=True)
    anime_id = read_int(parts[1]) if len(parts) > 1 else None
    if anime_id is None or anime_id not in lobby.picks:
        return Reply("That pick is gone already.", ephemeral=True)

    def veto(current: Lobby) -> bool:
        if anime_id in current.vetoed:
            return False
        current.vetoed.append(anime_id)
        return True

    lobby = await asyncio.to_thread(ctx.lobbies.change, lobby.id, veto) or lobby
    return await night_picks(ctx, lobby, caller, edit=True)


async def press_decide(ctx: Context, caller: Caller, parts: list[str], value: str | None) -> Reply:
    """``nd:LOBBY``: count the votes (menu and poll alike), name the anime, close the vote."""
    lobby = await _lobby(ctx, parts)
    if lobby is None:
        return _ended()
    who = await ctx.users.find(caller)
    if who.user is None or who.id not in lobby.members:
        return Reply("Only people in this anime night can decide.", ephemeral=True)

    def close(current: Lobby) -> bool:
        current.closed = True
        return True

    lobby = await asyncio.to_thread(ctx.lobbies.change, lobby.id, close) or lobby
    winner = lobby.winner()
    if winner is None:
        return Reply("There are no picks to decide between yet.", ephemeral=True)
    votes = sum(1 for a in lobby.votes.values() if a == winner)
    tally = ", ".join(f"{t}: {n}" for t, n in lobby.tally()) or "no votes, so the group's top pick"
    return Reply(
        f"Tonight: {lobby.picks[winner]} ({votes} vote{'s' if votes != 1 else ''}). "
        f"Votes: {tally}.",
        title="Anime night",
        closes_poll=act.encode(act.NIGHT_VOTE, lobby.id, lobby.round),
    )
