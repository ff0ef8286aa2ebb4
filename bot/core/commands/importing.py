"""/import: a MyAnimeList XML export becomes the caller's list."""

from __future__ import annotations

import asyncio

from bot.core.context import Context
from bot.core.types import Reply, Request
from storage.importers import MAX_XML_BYTES, ImportFileError, import_mal_xml_for


async def import_(ctx: Context, request: Request) -> Reply:
    data = request.data
    if not data:
        return Reply(
            "Send your MyAnimeList export (the animelist_*.xml file from "
            "myanimelist.net/panel.php?go=export) with /import as its caption.",
            kind="error",
        )
    if len(data) > MAX_XML_BYTES:
        return Reply(f"That file is too big (limit {MAX_XML_BYTES // 2**20} MB).", kind="error")
    caller = request.caller
    name = request.filename or "upload.xml"
    try:
        # The caller's user row is written with the list, so a refused file creates none.
        report = await asyncio.to_thread(
            import_mal_xml_for,
            ctx.store,
            caller.platform,
            caller.user_id,
            data,
            name,
            caller.display_name,
        )
    except ImportFileError as exc:
        return Reply(f"I couldn't read that file: {exc}", kind="error")
    who = await ctx.users.find(caller)
    await asyncio.to_thread(ctx.recommender.invalidate, who.id)
    await asyncio.to_thread(
        ctx.store.audit.record,
        caller.key,
        "import_mal_xml",
        rows=report.rows,
        written=report.written,
    )
    skipped = (
        f" {report.unknown_anime} anime aren't in my catalog and were skipped."
        if report.unknown_anime
        else ""
    )
    return Reply(
        f"Imported {name}: {report.rows} entries, {report.scored} with a score, "
        f"{report.written} new or changed.{skipped}"
    )
