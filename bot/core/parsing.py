"""Text command lines (console, Telegram messages) -> typed :class:`Request` values.

``/rate Cowboy Bebop 9`` and ``/rate Mob Psycho 100 9`` work: the score is the last number.
Telegram's ``/cmd@BotName`` form is accepted. Each command's parser is a small function the
command table (:mod:`bot.core.commands`) names. A parser that cannot read its arguments raises
:class:`ArgumentError` with a short hint; the table completes it with the command's usage line.
Numbers are read by :func:`read_int` only: decimal digits (any script), a bounded length, so
``²`` or a 5,000-digit number is refused with the usage text, never an exception.
"""

from __future__ import annotations

import re
from typing import Literal

from bot.core.budget import split_budget
from bot.core.limits import MAX_K, MAX_NUMBER_DIGITS, MAX_SCORE, MIN_SCORE
from bot.core.types import Caller, Command, Request

MAX_BUDGET_EPISODES = 500
_SCORE_AT_END = re.compile(r"^(?P<title>.*?)\s+(?P<score>[+-]?\d+)(?:\s*/\s*10)?$", re.DOTALL)
_ON = frozenset({"on", "yes", "true", "1", "enable", "enabled"})
_OFF = frozenset({"off", "no", "false", "0", "disable", "disabled"})
_CHAT_WORDS = frozenset({"chat", "group", "here", "server"})
_USER_WORDS = frozenset({"me", "my", "user"})
_LANGUAGES = {"english": "english", "en": "english", "romaji": "romaji", "japanese": "romaji"}


class UsageError(ValueError):
    """A command line the core cannot read; the message says how to write it."""


class ArgumentError(UsageError):
    """Arguments a command cannot use; the message is a hint that the usage line completes."""


def read_int(text: str, *, signed: bool = False) -> int | None:
    """``text`` as a small integer, or None: decimal digits only (``²`` is not one), at most
    :data:`MAX_NUMBER_DIGITS` of them, a leading sign only when ``signed``."""
    text = text.strip()
    body = text[1:] if signed and text[:1] in ("+", "-") else text
    if not body or len(body) > MAX_NUMBER_DIGITS or not body.isdecimal():
        return None
    return int(text)


def split_command(line: str) -> tuple[str, str] | None:
    """``"/rate@Bot  X 9"`` -> ``("rate", "X 9")``; None when the line is not a command."""
    line = line.strip()
    if not line.startswith("/") or len(line) < 2:
        return None
    head, _, rest = line[1:].partition(" ")
    name = head.split("@", 1)[0].lower()
    return name, rest.strip()


def plain(command: Command, caller: Caller, rest: str) -> Request:
    """Commands without arguments (anything after the name is ignored)."""
    return Request(command, caller, text=rest)


def rate(command: Command, caller: Caller, rest: str) -> Request:
    if not rest:
        raise ArgumentError("Tell me what to rate:")
    match = _SCORE_AT_END.match(rest)
    if match is None or not match.group("title").strip():
        return Request(command, caller, text=rest, title=rest)
    score = read_int(match.group("score"), signed=True)
    if score is None:
        raise ArgumentError(f"Scores go from {MIN_SCORE} to {MAX_SCORE}:")
    return Request(command, caller, text=rest, title=match.group("title").strip(), score=score)


def title(command: Command, caller: Caller, rest: str) -> Request:
    if not rest:
        raise ArgumentError("Which anime?")
    return Request(command, caller, text=rest, title=rest)


def recommend(command: Command, caller: Caller, rest: str) -> Request:
    if not rest:
        return Request(command, caller, text=rest)
    k = read_int(rest)
    if k is None or not 1 <= k <= MAX_K:
        raise ArgumentError(f"How many picks, from 1 to {MAX_K}:")
    return Request(command, caller, text=rest, k=k)


def night(command: Command, caller: Caller, rest: str) -> Request:
    try:
        found, people = split_budget(rest)
    except ValueError:
        raise ArgumentError(
            f"A budget is a movie, 1-{MAX_BUDGET_EPISODES} episodes or hours:"
        ) from None
    names = tuple(n.lstrip("@") for n in re.split(r"[\s,]+", people) if n.lstrip("@"))
    budget = found.code if found is not None else None
    return Request(command, caller, text=rest, names=names, budget=budget)


def import_(command: Command, caller: Caller, rest: str) -> Request:
    return Request(command, caller, text=rest, filename=rest or None)


def settings(command: Command, caller: Caller, rest: str) -> Request:
    words = rest.lower().split()
    where: Literal["user", "chat"] | None = None
    if words and words[0] in _CHAT_WORDS:
        where, words = "chat", words[1:]
    elif words and words[0] in _USER_WORDS:
        where, words = "user", words[1:]
    if not words:
        return Request(command, caller, text=rest, scope=where)
    if words[0] in ("title", "titles", "language"):
        if len(words) == 2 and words[1] in _LANGUAGES:
            lang = _LANGUAGES[words[1]]
            return Request(command, caller, text=rest, scope=where, setting="titles", option=lang)
        raise ArgumentError("Titles in english or romaji:")
    if words[0] not in ("nsfw", "share", "radar"):
        raise ArgumentError("I can change nsfw, share, radar and titles:")
    if len(words) == 1:
        return Request(command, caller, text=rest, scope=where, setting=words[0])
    if len(words) != 2 or words[1] not in _ON | _OFF:
        raise ArgumentError("Say on or off:")
    return Request(command, caller, text=rest, scope=where, setting=words[0], value=words[1] in _ON)


def someone(command: Command, caller: Caller, rest: str) -> Request:
    """/compat @name: one person, by display name (a leading '@' is dropped)."""
    name = rest.strip().lstrip("@").strip()
    if not name:
        raise ArgumentError("Who with?")
    return Request(command, caller, text=rest, names=(name,))
