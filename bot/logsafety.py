"""Logging that never writes a secret: the one place the process's log handlers are set up.

Why: chat libraries log request URLs at DEBUG, and Telegram's URLs carry the bot token
(``https://api.telegram.org/bot<token>/getMe``). A filter on every root handler rewrites each
record (message, arguments, traceback, stack) with every configured secret and anything shaped
like a Telegram token replaced by ``***``, whatever the level and whichever library logged.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

MASK = "***"
#: A Telegram bot token anywhere (``123456:AA...``), with or without the ``bot`` URL prefix.
_TELEGRAM_TOKEN = re.compile(r"(?<![\w-])(bot)?\d{3,}:[\w-]{10,}")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactSecrets(logging.Filter):
    """Replace secrets in a record before any handler formats it (always lets it through)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        """Mask these too (empty values and very short ones, which would mask words, are not)."""
        self.secrets.update(s for s in secrets if s and len(s) >= 6)

    def redact(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return _TELEGRAM_TOKEN.sub(lambda m: (m.group(1) or "") + MASK, text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep its parts, masked
            message = f"{record.msg} {record.args}"
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
            record.exc_info = None  # formatted already; a handler must not re-render it raw
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


#: The process-wide filter; ``configure_logging`` installs it on every root handler.
REDACTOR = RedactSecrets()


def configure_logging(level: str | int = "INFO", secrets: Iterable[str | None] = ()) -> None:
    """Log to stderr at ``level`` with every secret masked, before any library logs anything.

    Safe to call again (adds secrets, resets the level, re-attaches the filter to every root
    handler, including ones added since).
    """
    REDACTOR.add(*secrets)
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    protect_handlers()
    # httpx logs every request URL at INFO; keep that noise out of a normal log.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def protect_handlers(logger: logging.Logger | None = None) -> None:
    """Attach the redacting filter to every handler of ``logger`` (default: the root)."""
    for handler in (logger or logging.getLogger()).handlers:
        if REDACTOR not in handler.filters:
            handler.addFilter(REDACTOR)
    last = logging.lastResort
    if last is not None and REDACTOR not in last.filters:
        last.addFilter(REDACTOR)
