"""Recommender commands: `import aliases`, and the debugging helpers `recommend`, `similar` and
`search` (the same calls the chat commands make, printed as a table or JSON)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli.batch import read_candidates, run_batch
from bot.cli.common import app, import_app, open_store, out, progress_bar, say, settings
from bot.identity import parse_identity
from bot.settings import Settings
from recommender.types import Filters, Pick
from storage.aliases import DEFAULT_MAX_ALIAS_BYTES, import_aliases
from storage.repository import Store
from training.registry import LEGACY, Registry, load_serving

if TYPE_CHECKING:  # the model stack (torch) loads only for commands that rank
    from recommender import Recommender


@import_app.command("aliases")
def import_aliases_cmd(
    path: Annotated[Path, typer.Argument(help="anime-offline-database JSON, minified or JSONL")],
    all_scripts: Annotated[
        bool, typer.Option("--all-scripts", help="keep synonyms in non-Latin scripts too")
    ] = False,
    max_mb: Annotated[int, typer.Option(help="refuse larger files")] = (
        DEFAULT_MAX_ALIAS_BYTES // 2**20
    ),
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Import title aliases (English names, synonyms) for the anime in the catalog."""
    with open_store() as store:
        bar, update = progress_bar(f"aliases {path.name}")
        with bar:
            report = import_aliases(store, path, update, max_mb * 2**20, all_scripts)
    if as_json:
        out.print_json(json.dumps(report.__dict__))
    else:
        say(report.summary())


def _recommender(store: Store, checkpoint: Path | None, cfg: Settings) -> Recommender:
    from recommender import Recommender

    """The model the bot serves (through the registry), or the checkpoint given."""
    if checkpoint is not None:
        return Recommender(store, checkpoint)
    rec = Recommender(store)
    if load_serving(Registry(cfg.model_dir), rec.swap) is None:
        raise typer.BadParameter(
            f"no trained model is served from {cfg.model_dir}: run `anirec demo`, "
            f"`anirec retrain`, or `anirec train --out {cfg.model_dir / LEGACY}` first"
        )
    return rec


Checkpoint = Annotated[
    Path | None, typer.Option("--checkpoint", help="a checkpoint file (default: the serving one)")
]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON")]
Nsfw = Annotated[bool, typer.Option("--nsfw", help="allow adult titles")]


@app.command()
def recommend(
    user: Annotated[
        str | None, typer.Option("--user", help="whose picks: PLATFORM:ID, e.g. console:alice")
    ] = None,
    ratings: Annotated[
        Path | None,
        typer.Option(
            "--ratings",
            help="instead of --user: picks for every user of a user_id,anime_id,score CSV "
            "(score 1-10; 0 or empty: listed, unscored); each user's rows must be consecutive "
            "(grouped by user); nothing is stored. With --json: one line per user, "
            "with user_id, picks (anime ids, best first) and predicted (id: 1-10 score)",
        ),
    ] = None,
    candidates: Annotated[
        Path | None,
        typer.Option(
            "--candidates", help="with --ratings: rank only these anime ids (one per line)"
        ),
    ] = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=1000, help="how many picks")] = 10,
    genre: Annotated[
        list[str] | None, typer.Option("--genre", help="only anime with any of these genres")
    ] = None,
    exclude_genre: Annotated[
        list[str] | None, typer.Option("--exclude-genre", help="no anime with these genres")
    ] = None,
    kind: Annotated[
        list[str] | None, typer.Option("--type", help="TV, Movie, OVA, ONA, Special, Music")
    ] = None,
    min_members: Annotated[int, typer.Option("--min-members", min=0, help="popularity floor")] = 0,
    nsfw: Nsfw = False,
    checkpoint: Checkpoint = None,
    as_json: AsJson = False,
) -> None:
    """A user's personal picks with the reason for each, or batch picks for a ratings file."""
    filters = Filters(
        frozenset(genre or ()),
        frozenset(exclude_genre or ()),
        frozenset(kind or ()),
        min_members,
        nsfw,
    )
    if (user is None) == (ratings is None):
        raise typer.BadParameter("give either --user or --ratings (not both)")
    if candidates is not None and ratings is None:
        raise typer.BadParameter("--candidates goes with --ratings")
    cfg = settings()
    if ratings is not None:
        _batch(cfg, ratings, candidates, k, filters, checkpoint, as_json)
    else:
        _personal(cfg, user or "", k, filters, checkpoint, as_json)


def _batch(
    cfg: Settings,
    ratings: Path,
    candidates: Path | None,
    k: int,
    filters: Filters,
    checkpoint: Path | None,
    as_json: bool,
) -> None:
    """Batch picks for every user of a ratings file (nothing is stored)."""
    with open_store(cfg) as store:
        wanted = None if candidates is None else read_candidates(candidates, store.catalog.ids())
        rec = _recommender(store, checkpoint, cfg)
        report = run_batch(rec, ratings, k, filters, wanted, as_json)
    say(f"{report.users:,} users, {report.rows:,} rows", err=True)


def _personal(
    cfg: Settings, user: str, k: int, filters: Filters, checkpoint: Path | None, as_json: bool
) -> None:
    """One stored user's picks, with the reason for each."""
    try:
        platform, platform_id = parse_identity(user)
    except ValueError:
        raise typer.BadParameter("--user must look like PLATFORM:ID, e.g. console:alice") from None
    with open_store(cfg) as store:
        found = store.users.find(platform, platform_id)
        if found is None:
            raise typer.BadParameter(f"no user {user} in {cfg.database}")
        rec = _recommender(store, checkpoint, cfg)
        picks = rec.recommend(found.id, k, filters)
    if as_json:
        out.print_json(json.dumps([_pick_json(p) for p in picks]))
        return
    for n, p in enumerate(picks, start=1):
        say(
            f"{n:>2}. {p.anime.title} [{p.anime.type or '?'}; {', '.join(p.anime.genres)}]"
            f" predicted {p.predicted_score:.1f} - {p.reason}"
        )


def _pick_json(p: Pick) -> dict[str, object]:
    return {
        "anime_id": p.anime.anime_id,
        "title": p.anime.title,
        "genres": list(p.anime.genres),
        "type": p.anime.type,
        "predicted_score": p.predicted_score,
        "because": [a.title for a in p.because],
        "reason": p.reason,
    }


@app.command()
def similar(
    title: Annotated[str, typer.Argument(help="a title, abbreviation or MyAnimeList id")],
    k: Annotated[int, typer.Option("-k", min=1, max=100, help="how many")] = 10,
    nsfw: Nsfw = False,
    checkpoint: Checkpoint = None,
    as_json: AsJson = False,
) -> None:
    """Anime nearest to TITLE in the learned space."""
    cfg = settings()
    with open_store(cfg) as store:
        rec = _recommender(store, checkpoint, cfg)
        anime = rec.resolve_title(title, nsfw=True)
        picks = rec.similar(anime.anime_id, k, Filters(nsfw=nsfw))
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "anime_id": anime.anime_id,
                    "title": anime.title,
                    "similar": [
                        {
                            "anime_id": p.anime.anime_id,
                            "title": p.anime.title,
                            "similarity": p.similarity,
                            "shared_genres": list(p.shared_genres),
                        }
                        for p in picks
                    ],
                }
            )
        )
        return
    say(f"like {anime.title}:")
    for n, p in enumerate(picks, start=1):
        say(f"{n:>2}. {p.anime.title} ({p.similarity:.2f}; {', '.join(p.shared_genres)})")


@app.command()
def search(
    text: Annotated[str, typer.Argument(help="what you would type: a title, typo or abbreviation")],
    limit: Annotated[int, typer.Option("--limit", min=1, max=100)] = 10,
    nsfw: Nsfw = False,
    as_json: AsJson = False,
) -> None:
    """Title search as /rate autocomplete sees it (no model needed)."""
    from recommender import Recommender

    with open_store() as store:
        matches = Recommender(store).search(text, limit, nsfw)
    if as_json:
        out.print_json(
            json.dumps(
                [
                    {
                        "anime_id": m.anime.anime_id,
                        "title": m.anime.title,
                        "score": m.score,
                        "matched": m.matched,
                    }
                    for m in matches
                ]
            )
        )
        return
    if not matches:
        say(f"no match for {text!r}")
    for m in matches:
        via = "" if m.matched == m.anime.title else f"  (via {m.matched!r})"
        say(f"{m.anime.anime_id:>6}  {m.score:5.1f}  {m.anime.title}{via}")
