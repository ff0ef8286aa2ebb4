"""/night on Discord: who is watching (named members, the caller's voice channel, or a lobby)
and the optional time budget, turned into the core's Request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import discord

from bot.core import Caller, Member, Reply, Request
from bot.core.budget import split_budget


def night_request(
    interaction: discord.Interaction,
    voice: bool | None,
    named: Sequence[discord.User | discord.Member],
    budget: str | None = None,
) -> Callable[[Caller], Awaitable[Request | Reply]]:
    """/night: named members, else the caller's voice channel, else a lobby (in a server)."""

    async def build(caller: Caller) -> Request | Reply:
        found = budget_code(budget)
        if isinstance(found, Reply):
            return found
        me = interaction.user
        people: dict[int, discord.abc.User] = {
            m.id: m for m in named if not m.bot and m.id != me.id
        }
        state = me.voice if isinstance(me, discord.Member) else None
        if voice is True and (state is None or state.channel is None):
            return Reply(
                "Join a voice channel first, or leave out voice to open a lobby.",
                kind="error",
                ephemeral=True,
            )
        if voice is not False and not people and state is not None and state.channel:
            people = {m.id: m for m in state.channel.members if not m.bot and m.id != me.id}
            if voice is True and not people:
                return Reply(
                    f"You're alone in {state.channel.name}. Open a lobby instead: "
                    "/night voice:False",
                    kind="error",
                    ephemeral=True,
                )
        if not people and not caller.is_group:
            return Reply(
                "In a DM, name who is watching: /night member1:@friend ...",
                kind="error",
                ephemeral=True,
            )
        members = tuple(Member(str(m.id), m.display_name) for m in people.values())
        return Request("night", caller, members=members, budget=found)

    return build


def budget_code(text: str | None) -> str | None | Reply:
    """The /night budget option as the core's code; a Reply when it cannot be read."""
    if not text:
        return None
    try:
        found, rest = split_budget(text)
    except ValueError:
        found, rest = None, text
    if found is None or rest.strip():
        return Reply(
            "I couldn't read that budget. Try: a movie, 12 episodes, 3 hours.",
            kind="error",
            ephemeral=True,
        )
    return found.code
