"""``anirec franchise TITLE``: a series' titles in watch order, from the stored graph."""

from __future__ import annotations

import typer

from bot.cli.common import app, open_store, say
from recommender import franchise_store
from recommender.titles import Titles


@app.command("franchise")
def franchise_cmd(
    title: str = typer.Argument(..., help="any title of the series (forgiving search)"),
    rebuild: bool = typer.Option(False, "--rebuild", help="work the franchises out afresh first"),
) -> None:
    """Show the franchise TITLE belongs to, in watch order (the entry point marked)."""
    with open_store() as store:
        catalog = store.catalog.all()
        if rebuild:
            franchise_store.rebuild(store, catalog)
        graph = franchise_store.load(store, catalog)
        anime = Titles(store).resolve(title)
        by_id = {a.anime_id: a for a in catalog}
    found = graph.franchise_of(anime.anime_id)
    if found is None:
        say(f"{anime.title} stands alone: no seasons, movies or side stories in the catalog.")
        return
    say(f"{found.name} ({len(found.members)} titles, in watch order):")
    for n, member in enumerate(found.members, 1):
        a = by_id[member]
        when = f", {a.year}" if a.year else ""
        mark = "  <- start here" if member == found.entry else ""
        say(f"{n:>3}. {a.title} [{a.type or '?'}{when}] (id {member}){mark}")
