"""Text command lines (console, Telegram messages) -> :class:`Request`.

``/rate Cowboy Bebop 9`` and ``/rate Mob Psycho 100 9`` work: the score is the last number.
Telegram's ``/cmd@BotName`` form is accepted. Mistakes raise :class:`UsageError` with a line
that says how to write the command.
"""

from __future__ import annotations

import re

from bot.core.types import Caller, Command, Request

USAGE: dict[str, str] = {
    "rate": "/rate TITLE SCORE  (score 1-10; leave it out to get buttons)",
    "unrate": "/unrate TITLE",
    "recommend": "/recommend [HOW_MANY]",
    "similar": "/similar TITLE",
    "night": "/night [NAME NAME ...]  (in a group, no names: open a lobby to join)",
    "profile": "/profile",
    "import": "/import  (send your MyAnimeList XML export with it)",
    "settings": "/settings [chat] nsfw on|off",
    "help": "/help",
    "retrain": "/retrain  (admins)",
    "model": "/model  (admins)",
    "start": "/start",
}
COMMANDS: tuple[Command, ...] = tuple(USAGE)  # type: ignore[assignment]
MAX_K = 25
_SCORE_AT_END = re.compile(r"^(?P<title>.*?)\s+(?P<score>[+-]?\d+)(?:\s*/\s*10)?$")
_ON = {"on", "yes", "true", "1", "enable", "enabled"}
_OFF = {"off", "no", "false", "0", "disable", "disabled"}


class UsageError(ValueError):
    """A command line the core cannot read; the message says how to write it."""


def split_command(line: str) -> tuple[str, str] | None:
    """``"/rate@Bot  X 9"`` -> ``("rate", "X 9")``; None when the line is not a command."""
    line = line.strip()
    if not line.startswith("/") or len(line) < 2:
        return None
    head, _, rest = line[1:].partition(" ")
    name = head.split("@", 1)[0].lower()
    return name, rest.strip()


def parse_line(caller: Caller, line: str) -> Request | None:
    """The Request a command line asks for; None when the line is not a command at all."""
    split = split_command(line)
    if split is None:
        return None
    name, rest = split
    if name not in USAGE:
        raise UsageError(f"I don't know /{name}. Try /help for the list of commands.")
    command: Command = name  # type: ignore[assignment]
    base = {"command": command, "caller": caller, "text": rest}
    if command == "rate":
        if not rest:
            raise UsageError(f"Tell me what to rate: {USAGE['rate']}")
        match = _SCORE_AT_END.match(rest)
        if match and match.group("title").strip():
            return Request(
                **base, title=match.group("title").strip(), score=int(match.group("score"))
            )
        return Request(**base, title=rest)
    if command in ("unrate", "similar"):
        if not rest:
            raise UsageError(f"Which anime? {USAGE[command]}")
        return Request(**base, title=rest)
    if command == "recommend":
        if not rest:
            return Request(**base)
        if not rest.isdigit() or not 1 <= int(rest) <= MAX_K:
            raise UsageError(f"How many picks, from 1 to {MAX_K}: {USAGE['recommend']}")
        return Request(**base, k=int(rest))
    if command == "night":
        names = tuple(n.lstrip("@") for n in re.split(r"[\s,]+", rest) if n.lstrip("@"))
        return Request(**base, names=names)
    if command == "settings":
        return _settings(base, rest)
    if command == "import":
        return Request(**base, filename=rest or None)
    return Request(**base)


def _settings(base: dict, rest: str) -> Request:
    words = rest.lower().split()
    scope = None
    if words and words[0] in ("chat", "group", "here", "server"):
        scope, words = "chat", words[1:]
    elif words and words[0] in ("me", "my", "user"):
        scope, words = "user", words[1:]
    if not words:
        return Request(**base, scope=scope)
    if words[0] != "nsfw":
        raise UsageError(f"I can only change nsfw for now: {USAGE['settings']}")
    if len(words) == 1:
        return Request(**base, scope=scope, setting="nsfw")
    if len(words) != 2 or words[1] not in _ON | _OFF:
        raise UsageError(f"Say on or off: {USAGE['settings']}")
    return Request(**base, scope=scope, setting="nsfw", value=words[1] in _ON)
