"""/night: a group anime night (named members or a lobby to join), its picks and the vote."""

from __future__ import annotations

import asyncio

from bot.core import actions as act
from bot.core import cards
from bot.core.commands.common import no_model
from bot.core.context import Context
from bot.core.night import MAX_MEMBERS, Lobby
from bot.core.parsing import read_int
from bot.core.types import Button, Caller, Choice, Poll, Reply, Request
from bot.core.users import display_name
from recommender.types import Filters
from storage.rows import User


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
        return lobby_reply(ctx.lobbies.open(caller.platform, caller.chat_id, who.id, who.name))
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
    lobby = ctx.lobbies.open(caller.platform, caller.chat_id, who.id, who.name)
    lobby.members = members
    return await night_picks(ctx, lobby, caller)


async def _find_by_name(ctx: Context, platform: str, name: str) -> User | None:
    found = await asyncio.to_thread(ctx.store.users.find_by_name, platform, name)
    if found:
        return found[0]
    return await asyncio.to_thread(ctx.store.users.find, platform, name)


def lobby_reply(lobby: Lobby, edit: bool = False) -> Reply:
    names = ", ".join(lobby.members.values())
    return Reply(
        f"Anime night! Press Join to take part, then Pick when everyone is in.\n"
        f"In so far ({len(lobby.members)}): {names}",
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


async def night_picks(ctx: Context, lobby: Lobby, caller: Caller) -> Reply:
    if not ctx.recommender.ready:
        return no_model()
    if caller.is_group:
        nsfw = await ctx.users.chat_nsfw(caller)
    else:
        users = [await asyncio.to_thread(ctx.store.users.get, uid) for uid in lobby.members]
        nsfw = all(u is not None and u.settings.get("nsfw", False) for u in users)
    picks = await asyncio.to_thread(
        ctx.recommender.anime_night, list(lobby.members), ctx.page_size, Filters(nsfw=nsfw)
    )
    if not picks:
        return Reply("I couldn't find anything none of you has seen. Impressive!")
    made = [cards.from_group(p, lobby.members) for p in picks]
    lobby.picks = {c.anime_id: c.title for c in made}
    lobby.votes.clear()
    text = "\n".join(cards.line(c, i + 1) for i, c in enumerate(made))
    poll = Poll(
        "What do we watch tonight?",
        tuple(Choice(c.title[:100], str(c.anime_id)) for c in made),
        act.encode(act.NIGHT_VOTE, lobby.id),
    )
    return Reply(
        f"Anime night for {', '.join(lobby.members.values())}:\n{text}",
        title="Anime night picks",
        picks=tuple(made),
        poll=poll,
    )


# -- button presses and votes ------------------------------------------------------------------
def _ended() -> Reply:
    return Reply(
        "This anime night has ended. Start a new one with /night.", kind="error", ephemeral=True
    )


async def press_join(ctx: Context, caller: Caller, parts: list[str], value: str | None) -> Reply:
    """``nj:LOBBY``."""
    lobby = ctx.lobbies.get(parts[0] if parts else "")
    if lobby is None:
        return _ended()
    who = await ctx.users.ensure(caller)
    if who.id in lobby.members:
        return Reply("You're already in.", ephemeral=True)
    if lobby.picks:
        return Reply("The picks are out already; start a new /night.", ephemeral=True)
    if len(lobby.members) >= MAX_MEMBERS:
        return Reply(f"The lobby is full ({MAX_MEMBERS}).", ephemeral=True)
    lobby.members[who.id] = who.name
    return lobby_reply(lobby, edit=True)


async def press_go(ctx: Context, caller: Caller, parts: list[str], value: str | None) -> Reply:
    """``ng:LOBBY``: compute the picks for the lobby's members."""
    lobby = ctx.lobbies.get(parts[0] if parts else "")
    if lobby is None:
        return _ended()
    who = await ctx.users.find(caller)
    if who.user is None or who.id not in lobby.members:
        return Reply("Join first, then pick.", ephemeral=True)
    return await night_picks(ctx, lobby, caller)


async def press_vote(ctx: Context, caller: Caller, parts: list[str], value: str | None) -> Reply:
    """``nv:LOBBY`` with the chosen anime id as ``value``."""
    lobby = ctx.lobbies.get(parts[0] if parts else "")
    if lobby is None:
        return _ended()
    choice = read_int(value) if value is not None else None
    if choice is None or choice not in lobby.picks:
        return Reply("That isn't one of tonight's picks.", kind="error", ephemeral=True)
    who = await ctx.users.ensure(caller)
    lobby.votes[who.id] = choice
    tally = ", ".join(f"{t}: {n}" for t, n in lobby.tally())
    return Reply(f"You voted for {lobby.picks[choice]}. Votes so far: {tally}.", ephemeral=True)
