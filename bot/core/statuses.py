"""List statuses in chat: the words people type for them, their labels and the rules.

The stored names are MyAnimeList's (``storage.schema.STATUSES``). People may write them many
ways ("on hold", "on-hold", "ptw", "Plan to Watch"); :func:`read_status` reads every way listed
in :data:`WORDS` and :func:`split_status` finds one at the end of ``/status TITLE STATUS``.
"""

from __future__ import annotations

import re

from storage.rows import Rating

#: Statuses a person can set in chat ("not interested" has its own button).
SETTABLE = ("watching", "completed", "on_hold", "dropped", "plan_to_watch")
LABELS = {
    "watching": "watching",
    "completed": "completed",
    "on_hold": "on hold",
    "dropped": "dropped",
    "plan_to_watch": "plan to watch",
    "not_interested": "not interested",
}
#: One letter per settable status, for button ids.
CODES = {"w": "watching", "c": "completed", "h": "on_hold", "d": "dropped", "p": "plan_to_watch"}
CODE_OF = {status: code for code, status in CODES.items()}
#: Every accepted spelling (after :func:`_norm`) -> status.
WORDS = {
    "watching": "watching",
    "watch": "watching",
    "currently watching": "watching",
    "completed": "completed",
    "complete": "completed",
    "done": "completed",
    "finished": "completed",
    "seen": "completed",
    "on hold": "on_hold",
    "onhold": "on_hold",
    "hold": "on_hold",
    "paused": "on_hold",
    "dropped": "dropped",
    "drop": "dropped",
    "plan to watch": "plan_to_watch",
    "plantowatch": "plan_to_watch",
    "plan": "plan_to_watch",
    "planned": "plan_to_watch",
    "ptw": "plan_to_watch",
}
#: After a score lands on a row with one of these statuses, the row becomes "completed".
COMPLETED_BY_RATING = frozenset({"not_interested", "plan_to_watch"})
_SEPARATORS = re.compile(r"[\s_\-]+")
_WORD_PATTERN = "|".join(
    sorted((re.escape(w).replace(r"\ ", r"[\s_\-]+") for w in WORDS), key=len, reverse=True)
)
_AT_END = re.compile(
    rf"^(?P<title>.*?)\s+(?P<status>{_WORD_PATTERN})\s*$", re.IGNORECASE | re.DOTALL
)
HELP = "watching, completed, on hold, dropped or plan to watch"


class StatusRefused(ValueError):
    """A status change that makes no sense for the row as it is; the message says why."""


def _norm(text: str) -> str:
    return _SEPARATORS.sub(" ", text.strip().casefold()).strip()


def read_status(text: str) -> str | None:
    """The status ``text`` names ("On-Hold" -> "on_hold"), or None."""
    return WORDS.get(_norm(text))


def split_status(text: str) -> tuple[str, str | None]:
    """``"Monster on hold"`` -> ``("Monster", "on_hold")``; no status at the end -> (text, None).

    A text that is only a status word is a title (``/status Drop`` asks about the anime "Drop").
    """
    match = _AT_END.match(text)
    if match is None or not match.group("title").strip():
        return text.strip(), None
    return match.group("title").strip(), read_status(match.group("status"))


def label(status: str | None) -> str:
    return LABELS.get(status or "", "on your list")


def after_status_change(previous: Rating | None, status: str, title: str) -> int | None:
    """The score a row keeps when its status becomes ``status``; refuses what makes no sense.

    The score stays (a dropped show keeps the score its watcher gave it); planning to watch
    something already scored is refused (remove the score with /unrate first).
    """
    if status not in SETTABLE:
        raise StatusRefused(f"I can set {HELP}.")
    score = previous.score if previous is not None else None
    if status == "plan_to_watch" and score is not None:
        raise StatusRefused(
            f"You rated {title} {score}/10 already, so it can't be on your plan-to-watch list. "
            f"Use /unrate {title} first if you haven't seen it."
        )
    return score


def after_rating(previous: Rating | None, status: str | None) -> str | None:
    """The status a row gets when it is scored: what was only planned (or waved away) and is
    now rated has been watched, so it becomes "completed"; any other status stays."""
    if status is None and previous is not None and previous.status in COMPLETED_BY_RATING:
        return "completed"
    return status
