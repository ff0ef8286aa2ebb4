"""/profile, /settings, /start and /help: what the person has, and how to change it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from bot.core.commands import onboarding, prefs
from bot.core.context import Context
from bot.core.statuses import SETTABLE, label
from bot.core.types import Field, Reply, Request
from recommender.errors import NoModelError
from storage.repository import Store
from storage.rows import Anime, Rating


async def start(ctx: Context, request: Request) -> Reply:
    """The greeting; someone with few ratings is offered the quick-start deck."""
    who = await ctx.users.find(request.caller)
    text = (await help_(ctx, request)).text
    greeting = f"Hi {who.name}! I recommend anime from your ratings.\n\n{text}"
    rows = (await asyncio.to_thread(ctx.store.ratings.stamp, who.id)).rows if who.user else 0
    if ctx.recommender.ready and rows < onboarding.NEW_USER_RATINGS:
        return Reply(
            greeting + "\n\nNew here? Rate a few telling titles and your picks get personal.",
            buttons=((onboarding.offer(who, request.caller),),),
        )
    return Reply(greeting)


async def help_(ctx: Context, request: Request) -> Reply:
    admin = ctx.is_admin(request.caller)
    lines = [f"{c.usage}\n    {c.description}" for c in ctx.commands if admin or not c.admin]
    return Reply("Commands:\n" + "\n".join(lines), title="Anirec help")


async def profile(ctx: Context, request: Request) -> Reply:
    who = await ctx.users.find(request.caller)
    ratings = await asyncio.to_thread(ctx.store.ratings.of_user, who.id) if who.user else []
    if not ratings:
        return Reply(
            f"{who.name}, your list is empty. Start with /rate TITLE SCORE or "
            "/import your MyAnimeList export.",
            title="Your profile",
        )
    scored = [r for r in ratings if r.score is not None]
    ids = [r.anime_id for r in ratings]
    anime = {a.anime_id: a for a in await asyncio.to_thread(_anime_many, ctx.store, ids)}
    top = sorted(scored, key=lambda r: (-(r.score or 0), r.updated_at))[:5]
    top_text = (
        "\n".join(f"- {anime[r.anime_id].title}: {r.score}/10" for r in top if r.anime_id in anime)
        or "-"
    )
    genres = await _favourite_genres(ctx, who.id, scored, anime)
    skipped = sum(r.status == "not_interested" for r in ratings)
    lists = " \u00b7 ".join(
        f"{label(s)} {n}" for s in SETTABLE if (n := sum(r.status == s for r in ratings))
    )
    mean = sum(r.score or 0 for r in scored) / len(scored) if scored else None
    fields = (
        Field("On your list", str(len(ratings) - skipped), True),
        Field("Scored", str(len(scored)), True),
        Field("Mean score", f"{mean:.2f}" if mean is not None else "-", True),
        Field("Favourite genres", ", ".join(genres) or "-"),
        Field("Top rated", top_text),
        Field("Not interested", str(skipped), True),
        Field("Lists", lists or "-"),
        Field("NSFW", "on" if who.nsfw else "off", True),
    )
    text = "\n".join(
        f"{f.name}: {f.value}" if "\n" not in f.value else f"{f.name}:\n{f.value}" for f in fields
    )
    return Reply(text, title=f"{who.name}'s profile", fields=fields)


async def _favourite_genres(
    ctx: Context, user_id: int, scored: Sequence[Rating], anime: dict[int, Anime]
) -> list[str]:
    try:
        return list(await asyncio.to_thread(ctx.recommender.favourite_genres, user_id, 3))
    except NoModelError:
        pass
    weights: dict[str, float] = {}
    for r in scored:  # without a model: genres of what they liked, weighted by score
        for g in anime[r.anime_id].genres if r.anime_id in anime else ():
            weights[g] = weights.get(g, 0.0) + max((r.score or 0) - 5, 0)
    return [g for g, w in sorted(weights.items(), key=lambda kv: -kv[1]) if w > 0][:3]


def _anime_many(store: Store, ids: Sequence[int]) -> list[Anime]:
    return [a for a in (store.catalog.get(i) for i in ids) if a is not None]


async def settings(ctx: Context, request: Request) -> Reply:
    if request.scope == "chat":
        if request.setting not in (None, "nsfw", "radar"):
            return Reply("Only nsfw and radar are chat settings.", kind="error", ephemeral=True)
        return await _chat_settings(ctx, request)
    return await prefs.user_settings(ctx, request)


async def _chat_settings(ctx: Context, request: Request) -> Reply:
    caller = request.caller
    if not caller.is_group or not caller.chat_id:
        return Reply(
            "Chat settings only apply in a group. Here, use /settings nsfw on.",
            kind="error",
            ephemeral=True,
        )
    if request.value is not None:
        if not (caller.chat_admin or ctx.is_admin(caller)):
            return Reply(
                "Only the group's admins can change its settings.", kind="denied", ephemeral=True
            )
        change = {request.setting or "nsfw": request.value}
        await asyncio.to_thread(
            ctx.store.chats.update_settings, caller.platform, caller.chat_id, **change
        )
        await asyncio.to_thread(
            ctx.store.audit.record, caller.key, "chat_settings", chat=caller.chat_id, **change
        )
    chat_on = await ctx.users.chat_nsfw(caller)
    chat = await asyncio.to_thread(ctx.store.chats.find, caller.platform, caller.chat_id)
    radar = bool(chat is not None and chat.settings.get("radar", False))
    return Reply(
        f"NSFW titles in this chat: {'on' if chat_on else 'off'} (each person "
        "must also opt in with /settings nsfw on).\n"
        f"Seasonal radar here (a weekly post of the season's best picks for the people "
        f"here): {'on' if radar else 'off'}.",
        ephemeral=True,
    )
