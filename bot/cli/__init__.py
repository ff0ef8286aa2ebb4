"""The ``anirec`` command line. Each module in this package adds one group of commands.

Errors never show a traceback: the message is printed on one line and the exit code is 1
(set ``ANIREC_DEBUG=1`` to see the traceback).
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from bot.cli.common import app, fail_message

# Modules that register commands on ``app``; add yours here.
COMMAND_MODULES = (
    "bot.cli.data",
    "bot.cli.chat",
    "bot.cli.recommend",
    "bot.cli.retrain",
    "bot.cli.model",
    "bot.cli.franchise",
)
for _name in COMMAND_MODULES:
    importlib.import_module(_name)


def main() -> None:
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as exc:  # usage errors: the command line's own message
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            print(f"error: {fail_message(exc)}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # the one place that turns errors into one line
        if os.environ.get("ANIREC_DEBUG"):
            raise
        print(f"error: {fail_message(exc)}", file=sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
