"""Chat commands: ``anirec chat`` (the console adapter) and ``anirec run`` (the chat bots)."""

from __future__ import annotations

import asyncio
import getpass
import logging

import typer

from bot.cli.common import app, settings
from bot.logsafety import configure_logging
from bot.settings import Settings


def default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "me"


def run_console_chat(cfg: Settings, user: str) -> int:
    """Talk to the bot on stdin/stdout as console user ``user`` (no rate limit: one local user)."""
    from bot.adapters.console import ConsoleChat
    from bot.app import build_context

    configure_logging(logging.WARNING)
    ctx = build_context(cfg, rate_limited=False)
    try:
        if not ctx.recommender.ready:
            print("(no model trained yet: /rate and /profile work; `anirec demo` trains one)")
        from bot.retraining import console_session

        return asyncio.run(console_session(ctx, ConsoleChat(ctx.core, user).run()))
    finally:
        ctx.store.close()


@app.command()
def chat(
    user: str = typer.Option(
        None, "--user", help="your name in the console chat (default: your login name)"
    ),
) -> None:
    """Talk to the bot in this terminal: one command per line (/help lists them)."""
    name = (user or default_user()).strip()
    if not name or ":" in name:
        raise typer.BadParameter("--user must be a plain name, e.g. --user alice")
    raise typer.Exit(run_console_chat(settings(), name))


@app.command()
def run() -> None:
    """Run the Discord and/or Telegram bot (whichever has a token) until Ctrl-C or SIGTERM."""
    from bot.app import run as run_bots

    cfg = settings()
    tokens = (t.get_secret_value() for t in (cfg.telegram_token, cfg.discord_token) if t)
    configure_logging(cfg.log_level, tokens)  # before any library logs: tokens masked
    run_bots(cfg)
