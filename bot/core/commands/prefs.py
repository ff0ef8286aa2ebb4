"""A person's own settings: NSFW, sharing their taste with a group, title language, and the
"less like this" list (each entry with an Undo button)."""

from __future__ import annotations

import asyncio

from bot.core.commands import steering
from bot.core.context import Context
from bot.core.types import Button, Reply, Request
from bot.core.users import Who

TITLE_LANGUAGES = ("romaji", "english")


def sharing(who: Who) -> bool:
    """Whether the person lets others in their groups see their taste (/twin, /fans, /compat)."""
    return bool(who.user is not None and who.user.settings.get("share", False))


def title_language(who: Who) -> str:
    lang = who.user.settings.get("titles") if who.user is not None else None
    return lang if lang in TITLE_LANGUAGES else "romaji"


async def user_settings(ctx: Context, request: Request) -> Reply:
    """Change one of the caller's settings (when asked), then show them all."""
    caller = request.caller
    who = await ctx.users.find(caller)
    change: dict[str, object] = {}
    if request.setting == "nsfw" and request.value is not None:
        change["nsfw"] = request.value
    elif request.setting in ("share", "radar") and request.value is not None:
        change[request.setting] = request.value
    elif request.setting == "titles" and request.option in TITLE_LANGUAGES:
        change["titles"] = request.option
    if change:
        who = await ctx.users.ensure(caller)
        user = await asyncio.to_thread(ctx.store.users.update_settings, who.id, **change)
        who = Who(user, who.name)
        if caller.is_group and caller.chat_id:
            await asyncio.to_thread(ctx.store.members.seen, caller.platform, caller.chat_id, who.id)
    lines = [f"NSFW titles for you: {'on' if who.nsfw else 'off'}."]
    if caller.is_group:
        lines[0] += f" This chat: {'on' if await ctx.users.chat_nsfw(caller) else 'off'}."
    lines.append(
        f"Sharing your taste with groups (/twin, /fans, /compat): "
        f"{'on' if sharing(who) else 'off'}."
    )
    lines.append(f"Titles in: {title_language(who)}.")
    radar = who.user is not None and who.user.settings.get("radar", False)
    lines.append(
        f"Seasonal radar (weekly season picks, a DM when a planned title starts airing): "
        f"{'on' if radar else 'off'}."
    )
    less, undo = await steering.listing(ctx, who, caller)
    lines.append(less)
    lines.append(
        "Change them with /settings nsfw on|off, /settings share on|off, "
        "/settings radar on|off, /settings titles english|romaji."
    )
    buttons: tuple[tuple[Button, ...], ...] = tuple(undo[i : i + 2] for i in range(0, len(undo), 2))
    return Reply("\n".join(lines), buttons=buttons, ephemeral=True)
