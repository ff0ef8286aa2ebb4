"""Data commands: init, import catalog / ratings / mal-xml, stats, and the demo's data step."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from bot.cli.common import app, import_app, open_store, out, progress_bar, say, settings
from bot.identity import parse_identity
from bot.settings import Settings
from recommender import franchise_store
from storage.demo_data import demo_data
from storage.importers import (
    DEFAULT_MAX_CSV_BYTES,
    ImportReport,
    import_any_catalog,
    import_catalog,
    import_mal_xml_for,
    import_ratings,
    read_capped,
)
from storage.repository import Store
from storage.staging import PUBLISHING_KEY

DATA_HELP = """\
No data found, and this installation has no copy of the demo data inside it.
Anirec learns from the public CC0 "Anime Recommendations Database"
(CooperUnion, on Kaggle: https://www.kaggle.com/datasets/CooperUnion/anime-recommendations-database).
Put its files here:
  {catalog}      <- anime.csv (the catalog)
  {ratings}   <- user_id,anime_id,score rows (or its rating.csv: import it with
                                   `anirec import ratings PATH --skip-unknown`)
or point ANIREC_DATA_DIR at a folder holding anime/catalog.csv and anime/animelist.csv."""


@app.command()
def init() -> None:
    """Create the database (or migrate it to the newest schema) and print where it is."""
    cfg = settings()
    with open_store(cfg) as store:
        stats = store.stats()
    say(f"database ready: {cfg.database} ({stats['anime']:,} anime, {stats['ratings']:,} ratings)")


def _print_report(report: ImportReport, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(report.__dict__))
    else:
        say(report.summary())


@import_app.command("catalog")
def import_catalog_cmd(
    path: Path = typer.Argument(
        ...,
        help="a Kaggle anime.csv, or the anime-offline-database "
        "(anime-offline-database-minified.json or .jsonl, optionally .gz/.zst)",
    ),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Import (or refresh) the anime catalog."""
    with open_store() as store:
        bar, update = progress_bar(f"catalog {path.name}")
        with bar:
            report = import_any_catalog(store, path, update)
        franchise_store.rebuild(store)
    _print_report(report, as_json)


@import_app.command("ratings")
def import_ratings_cmd(
    path: Path = typer.Argument(
        ..., help="user_id,anime_id,score | rating.csv | origin animelist.csv"
    ),
    skip_unknown: bool = typer.Option(
        False, "--skip-unknown", help="skip (and count) rows whose anime is not in the catalog"
    ),
    max_mb: int = typer.Option(
        DEFAULT_MAX_CSV_BYTES // 2**20, help="refuse files larger than this"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Import a data-set rating file (all or nothing; re-importing changes nothing)."""
    with open_store() as store:
        bar, update = progress_bar(f"ratings {path.name}")
        with bar:
            report = import_ratings(store, path, update, skip_unknown, max_mb * 2**20)
    _print_report(report, as_json)


@import_app.command("mal-xml")
def import_mal_xml_cmd(
    path: Path = typer.Argument(..., help="a MyAnimeList list export (animelist_*.xml)"),
    user: str = typer.Option(..., "--user", help="whose list: PLATFORM:ID, e.g. telegram:12345"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Import one chat user's MyAnimeList list export."""
    try:
        platform, platform_id = parse_identity(user)
    except ValueError:
        raise typer.BadParameter("--user must look like PLATFORM:ID, e.g. telegram:12345") from None
    if platform == "dataset":
        raise typer.BadParameter("the 'dataset' platform is reserved for imported data sets")
    data = read_capped(path)
    with open_store() as store:
        report = import_mal_xml_for(store, platform, platform_id, data, str(path))
    _print_report(report, as_json)


@app.command()
def stats(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Counts of anime, users, ratings and models in the database."""
    with open_store() as store:
        numbers = store.stats()
        interrupted = store.kv.get(PUBLISHING_KEY)
    if interrupted:
        say(
            f"warning: an import was interrupted while publishing ({interrupted}); "
            "run that import again to complete it",
            err=True,
        )
    if as_json:
        out.print_json(json.dumps(numbers))
        return
    for key, value in numbers.items():
        say(f"{key:>15}: {value:,}")


def ensure_demo_data(cfg: Settings, store: Store) -> bool:
    """Import the data set when the database is empty: from ``cfg.data_dir`` when that folder
    holds it, else the copy shipped inside the package.

    Returns False (after telling the person where to get the data) when there is none.
    """
    numbers = store.stats()
    if numbers["anime"] and numbers["ratings"]:
        return True
    source = demo_data(cfg.data_dir)
    if source is None:
        say(DATA_HELP.format(catalog=cfg.catalog_csv, ratings=cfg.ratings_csv), err=True)
        return False
    say(f"importing {source.origin}", err=True)
    for label, fn, path in (
        ("catalog", import_catalog, source.catalog),
        ("ratings", import_ratings, source.ratings),
    ):
        bar, update = progress_bar(f"importing {label}")
        with bar:
            report = fn(store, path, update)
        say(report.summary(), err=True)
    franchise_store.rebuild(store)
    return True


@app.command()
def demo(
    train: bool = typer.Option(
        True, "--train/--no-train", help="train a model when none is serving yet"
    ),
    chat: bool = typer.Option(
        True, "--chat/--no-chat", help="end in the chat (console, or the bots when a token is set)"
    ),
    user: str = typer.Option(None, "--user", help="your name in the console chat"),
) -> None:
    """The embedded default: import the data set, train a model if none exists, then chat."""
    cfg = settings()
    with open_store(cfg) as store:
        if not ensure_demo_data(cfg, store):
            raise typer.Exit(2)
        numbers = store.stats()
        say(
            f"Anirec database {cfg.database}: {numbers['anime']:,} anime, "
            f"{numbers['users']:,} users, {numbers['ratings']:,} ratings "
            f"({numbers['scored']:,} scored)"
        )
        if train:
            ensure_demo_model(cfg, store)
    if not chat:
        return
    if cfg.telegram_token is not None or cfg.discord_token is not None:
        from bot.cli.chat import run as run_bots

        run_bots()
        return
    from bot.cli.chat import default_user, run_console_chat

    raise typer.Exit(run_console_chat(cfg, (user or default_user()).strip() or "me"))


def ensure_demo_model(cfg: Settings, store: Store) -> Path:
    """Train the serving checkpoint when there is none (a few minutes on the full data set)."""
    from bot.serving import serving_checkpoint_path

    path = serving_checkpoint_path(cfg)
    if path.exists():
        say(f"model: {path}", err=True)
        return path
    from training.train import train_from_store

    say(f"no model yet: training one into {path} (device {cfg.device})", err=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    bar, update = progress_bar("training")
    with bar:
        summary = train_from_store(store, device=cfg.device, out=path, progress=update)
    metrics = ", ".join(
        f"{k} {v:.4f}" for k, v in sorted(summary.metrics.items()) if isinstance(v, float)
    )
    say(
        f"trained {summary.config} on {summary.device} in {summary.train_seconds:.0f}s"
        + (f": {metrics}" if metrics else ""),
        err=True,
    )
    return Path(summary.checkpoint)
