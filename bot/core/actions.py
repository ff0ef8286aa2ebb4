"""Compact action ids for buttons: ``kind:arg:arg`` in ASCII, never longer than 64 bytes.

Ids carry everything a press needs (anime id, score, the owner's internal user id), so a press
works after a restart too (a /night lobby's state is in SQLite, its id in the button).
"""

from __future__ import annotations

from bot.core.types import MAX_ACTION_LEN

RATE = "rt"  # rt:ANIME:SCORE:OWNER   rate ANIME with SCORE (only OWNER may press)
RATE_ASK = "rs"  # rs:ANIME:OWNER       "seen it / rate": show the 1-10 buttons
NOT_INTERESTED = "ni"  # ni:ANIME:OWNER
MORE = "mo"  # mo:OFFSET:OWNER           the next page of recommendations
UNRATE = "ur"  # ur:ANIME:OWNER          (a "did you mean" answer for /unrate)
SIMILAR = "sm"  # sm:ANIME               anyone may press
RECOMMEND = "rc"  # rc:OWNER             "recommend now" after rating
NIGHT_JOIN = "nj"  # nj:LOBBY
NIGHT_GO = "ng"  # ng:LOBBY              compute the picks for the lobby's members
NIGHT_VOTE = "nv"  # nv:LOBBY            a select-menu vote; the value is the anime id
LESS = "ll"  # ll:t:ANIME:OWNER | ll:g:GENRE:OWNER   "less like this" title or genre
LESS_UNDO = "lu"  # lu:t:ANIME:OWNER | lu:g:GENRE:OWNER   undo one "less like this"
DECK = "ob"  # ob:POS:OWNER              the onboarding deck's card POS
DECK_RATE = "od"  # od:ANIME:SCORE:POS:OWNER   rate a deck card, then the next one
NIGHT_VOTE = "nv"  # nv:LOBBY:ROUND      a vote (select menu or poll); the value is the anime id
NIGHT_VETO = "nx"  # nx:LOBBY:ANIME      a member turns a pick down; the next best replaces it
NIGHT_DECIDE = "nd"  # nd:LOBBY          count the votes and name tonight's anime
STATUS = "st"  # st:ANIME:CODE:OWNER     set a list status (CODE: one letter, see core.statuses)
RADAR_OFF = "ro"  # ro:c | ro:u:OWNER    stop the seasonal radar in this chat / for OWNER

KINDS = frozenset(
    {
        RATE,
        RATE_ASK,
        NOT_INTERESTED,
        MORE,
        UNRATE,
        SIMILAR,
        RECOMMEND,
        NIGHT_JOIN,
        NIGHT_GO,
        NIGHT_VOTE,
        LESS,
        LESS_UNDO,
        DECK,
        DECK_RATE,
        NIGHT_VETO,
        NIGHT_DECIDE,
        STATUS,
        RADAR_OFF,
    }
)


class BadAction(ValueError):
    """A press whose id the core did not make (or made by an older version)."""


def encode(kind: str, *parts: int | str) -> str:
    action = ":".join([kind, *(str(p) for p in parts)])
    if len(action.encode("ascii")) > MAX_ACTION_LEN:
        raise ValueError(f"action id too long: {action!r}")
    return action


def decode(action: str) -> tuple[str, list[str]]:
    kind, *parts = action.split(":")
    if kind not in KINDS:
        raise BadAction(f"unknown action {action!r}")
    return kind, parts


def ints(parts: list[str], n: int) -> list[int]:
    """The first ``n`` parts as integers, or BadAction."""
    if len(parts) < n:
        raise BadAction("action id too short")
    try:
        return [int(p) for p in parts[:n]]
    except ValueError as exc:
        raise BadAction("action id is not numeric") from exc
