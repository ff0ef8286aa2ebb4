"""Taste between people: /compat with someone, your /twin in this group, the /fans of a title.

Only people who turned sharing on (/settings share on) are ever shown to others, and /twin and
/fans look only among people seen in this chat (those who used a writing command here). Names
are user text: they go through :mod:`bot.text_safety` before they are shown.
"""

from __future__ import annotations

import asyncio

from bot.core import actions as act
from bot.core.commands.common import did_you_mean, no_model, resolve
from bot.core.commands.prefs import sharing
from bot.core.context import Context
from bot.core.limits import BUTTON_TITLE_CHARS
from bot.core.parsing import ArgumentError
from bot.core.types import Button, Caller, Reply, Request
from bot.core.users import Who, display_name
from bot.text_safety import defuse_mentions, printable
from recommender.errors import UnknownTitleError
from recommender.taste import LOVED, Compatibility
from storage.rows import Anime, User

#: At most this many people are compared for /twin (the most recently seen).
TWIN_POOL = 50
#: Fans listed at most.
MAX_FANS = 15
GROUP_ONLY = "That works in a group or server, among the people there who share their taste."
OPT_IN = "Turn it on for yourself with /settings share on."


def safe_name(name: str) -> str:
    """A display name as shown to others: one printable line that pings nobody."""
    return defuse_mentions(printable(name, keep_newlines=False))[:64]


async def _remember(ctx: Context, caller: Caller, who: Who) -> None:
    """Note that ``who`` uses the bot in this group (for /twin and /fans)."""
    if caller.is_group and caller.chat_id and who.user is not None:
        await asyncio.to_thread(ctx.store.members.seen, caller.platform, caller.chat_id, who.id)


async def _target(ctx: Context, request: Request) -> User | None:
    caller = request.caller
    if request.members:
        member = request.members[0]
        return await asyncio.to_thread(ctx.store.users.find, caller.platform, member.user_id)
    for name in request.names:
        found = await asyncio.to_thread(ctx.store.users.find_by_name, caller.platform, name)
        if found:
            return found[0]
        return await asyncio.to_thread(ctx.store.users.find, caller.platform, name)
    return None


def _describe(result: Compatibility, me: str, them: str) -> str:
    lines = [f"{me} and {them}: {result.score}% compatible."]
    if result.both_loved:
        loved = ", ".join(f"{a.title} ({x} / {y})" for a, x, y in result.both_loved)
        lines.append(f"Both loved: {loved}.")
    if result.disagreement is not None:
        a, x, y = result.disagreement
        lines.append(f"Biggest disagreement: {a.title} ({me} {x}, {them} {y}).")
    if result.for_a is not None:
        anime, predicted = result.for_a
        lines.append(f"{them} loves {anime.title}; I'd guess {me} would give it {predicted:.1f}.")
    basis = f"{result.shared} title{'s' if result.shared != 1 else ''} you both rated"
    lines.append(f"Based on your tastes overall and {basis}.")
    return "\n".join(lines)


async def compat(ctx: Context, request: Request) -> Reply:
    caller = request.caller
    if not request.members and not request.names:
        raise ArgumentError("Who with?")
    if not ctx.recommender.ready:
        return no_model()
    who = await ctx.users.find(caller)
    other = await _target(ctx, request)
    if other is None:
        return Reply("I don't know them yet; they need to /rate something first.", kind="error")
    if other.id == who.id:
        return Reply("That's you! Try /compat with someone else.", kind="error")
    if not other.settings.get("share", False):
        return Reply(
            f"{safe_name(display_name(other))} doesn't share their taste. They can turn it on "
            "with /settings share on.",
            kind="denied",
        )
    if who.user is None:
        return Reply("Rate a few anime first (/rate TITLE SCORE), then compare.", kind="error")
    await _remember(ctx, caller, who)
    result = await asyncio.to_thread(ctx.recommender.compatibility, who.id, other.id)
    text = _describe(result, safe_name(who.name), safe_name(display_name(other)))
    return Reply(text, title="Taste compatibility")


async def twin(ctx: Context, request: Request) -> Reply:
    caller = request.caller
    if not caller.is_group or not caller.chat_id:
        return Reply(GROUP_ONLY, kind="error", ephemeral=True)
    if not ctx.recommender.ready:
        return no_model()
    who = await ctx.users.find(caller)
    if who.user is None:
        return Reply("Rate a few anime first (/rate TITLE SCORE), then ask again.", kind="error")
    await _remember(ctx, caller, who)
    people = await asyncio.to_thread(ctx.store.members.of_chat, caller.platform, caller.chat_id)
    shown = [u for u in people if u.id != who.id and u.settings.get("share", False)]
    if not shown:
        return Reply(
            "Nobody else here shares their taste yet. They can turn it on with /settings share on.",
        )
    best: tuple[Compatibility, User] | None = None
    for other in shown[:TWIN_POOL]:
        result = await asyncio.to_thread(ctx.recommender.compatibility, who.id, other.id)
        if best is None or result.score > best[0].score:
            best = (result, other)
    assert best is not None
    result, other = best
    name = safe_name(display_name(other))
    text = f"Your taste twin here: {name}.\n" + _describe(result, safe_name(who.name), name)
    if not sharing(who):
        text += f"\n(You're not shown to others. {OPT_IN})"
    return Reply(text, title="Taste twin")


async def fans(ctx: Context, request: Request) -> Reply:
    caller, title = request.caller, (request.title or "").strip()
    if not title:
        raise ArgumentError("Which anime?")
    if not caller.is_group or not caller.chat_id:
        return Reply(GROUP_ONLY, kind="error", ephemeral=True)
    who = await ctx.users.find(caller)
    await _remember(ctx, caller, who)
    try:
        found = await resolve(ctx, title)
    except UnknownTitleError as exc:

        def make(a: Anime) -> Button:
            return Button(a.title[:BUTTON_TITLE_CHARS], act.encode(act.SIMILAR, a.anime_id))

        reply = await did_you_mean(ctx, caller, title, exc, make, who)
        return Reply(reply.text, kind=reply.kind)
    people = await asyncio.to_thread(ctx.store.members.of_chat, caller.platform, caller.chat_id)
    shown = {u.id: u for u in people if u.settings.get("share", False)}
    scores = await asyncio.to_thread(ctx.store.members.scores_of, list(shown), found.anime_id)
    loved = sorted(
        ((s, uid) for uid, s in scores.items() if s >= LOVED), key=lambda t: (-t[0], t[1])
    )
    if not loved:
        return Reply(f"Nobody here who shares their taste loved {found.title} (8+) yet.")
    names = "\n".join(
        f"- {safe_name(display_name(shown[uid]))}: {s}/10" for s, uid in loved[:MAX_FANS]
    )
    return Reply(f"Fans of {found.title} here:\n{names}", title=f"Fans of {found.title}")
