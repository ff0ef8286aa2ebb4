"""Shared pieces of the command line: the Typer app, settings, the store and a progress bar."""

from __future__ import annotations

from collections.abc import Callable

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from bot.settings import Settings, load_settings
from bot.text_safety import printable
from storage.repository import Store

app = typer.Typer(
    name="anirec",
    help="Anirec: anime recommendations in Discord, Telegram and the console.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
import_app = typer.Typer(
    help="Import the catalog, data-set ratings, list exports or aliases.", no_args_is_help=True
)
app.add_typer(import_app, name="import")

console = Console(stderr=True, soft_wrap=True, highlight=False)
out = Console(highlight=False, soft_wrap=True)


def say(text: str, err: bool = False) -> None:
    """Print ``text`` literally: never read as Rich markup or emoji codes, no control codes.

    Paths, titles and file contents are user text; ``[/b]`` in a file name must print as is.
    """
    (console if err else out).print(Text(printable(text)))


def settings() -> Settings:
    return load_settings()


def open_store(cfg: Settings | None = None) -> Store:
    cfg = cfg or settings()
    return Store(cfg.database)


def fail_message(exc: BaseException) -> str:
    """One line for a person: the exception's own message, or its type when it has none."""
    if isinstance(exc, typer.Abort):
        return "aborted"
    if isinstance(exc, typer.TyperException):
        return printable(exc.format_message()).strip() or type(exc).__name__
    text = printable(str(exc)).strip().splitlines()
    return text[0] if text else type(exc).__name__


def progress_bar(description: str) -> tuple[Progress, Callable[[int, int], None]]:
    """A Rich progress bar on stderr and the ``(done, total)`` callback that drives it."""
    bar = Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    task = bar.add_task(printable(description), total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return bar, update
