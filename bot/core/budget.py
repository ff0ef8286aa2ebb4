"""A time budget for /night: "a movie", "12 episodes", "3 hours" -> a filter on picks.

The catalog knows each title's type and episode count, not its running time: an episode is
taken as :data:`EPISODE_MINUTES` long and a movie as :data:`MOVIE_MINUTES`. A title whose
length is unknown never fits a budget (better a sure fit than a 200-episode surprise).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

EPISODE_MINUTES = 24
MOVIE_MINUTES = 110
MAX_HOURS = 200

_MOVIE = re.compile(r"(?:^|\s)(?:an?\s+)?(?:movie|film)s?(?=\s|$)", re.IGNORECASE)
_BOUND = r"(?:<=|≤|<|max\.?|under|up\s+to|at\s+most)?\s*"
_EPISODES = re.compile(
    rf"(?:^|\s){_BOUND}(?P<n>\d{{1,6}})\s*(?:ep|eps|episodes?)(?=\s|$)", re.IGNORECASE
)
_HOURS = re.compile(rf"(?:^|\s){_BOUND}(?P<n>\d{{1,6}})\s*(?:h|hrs?|hours?)(?=\s|$)", re.IGNORECASE)
_MINUTES = re.compile(
    rf"(?:^|\s){_BOUND}(?P<n>\d{{1,6}})\s*(?:m|mins?|minutes?)(?=\s|$)", re.IGNORECASE
)


@dataclass(frozen=True)
class Budget:
    """At most this much to watch: a movie only, a number of episodes, or of minutes."""

    movie: bool = False
    max_episodes: int | None = None
    max_minutes: int | None = None

    def allows(self, kind: str | None, episodes: int | None) -> bool:
        if self.movie:
            return kind == "Movie"
        if episodes is None or episodes <= 0:
            return False
        if self.max_episodes is not None and episodes > self.max_episodes:
            return False
        return self.max_minutes is None or minutes(kind, episodes) <= self.max_minutes

    @property
    def code(self) -> str:
        """A compact form to store with a lobby: ``movie``, ``e12`` or ``m180``."""
        if self.movie:
            return "movie"
        if self.max_episodes is not None:
            return f"e{self.max_episodes}"
        return f"m{self.max_minutes}"

    def describe(self) -> str:
        if self.movie:
            return "a movie"
        if self.max_episodes is not None:
            return f"at most {self.max_episodes} episodes"
        total = self.max_minutes or 0
        return f"at most {total // 60} hours" if total % 60 == 0 else f"at most {total} minutes"


def minutes(kind: str | None, episodes: int) -> int:
    """How long a title takes to watch, as far as the catalog can tell."""
    return MOVIE_MINUTES * episodes if kind == "Movie" else EPISODE_MINUTES * episodes


def from_code(code: str | None) -> Budget | None:
    """The inverse of :attr:`Budget.code` (None for anything else)."""
    if code == "movie":
        return Budget(movie=True)
    if code and code[0] in "em" and code[1:].isdecimal() and len(code) < 8:
        n = int(code[1:])
        return Budget(max_episodes=n) if code[0] == "e" else Budget(max_minutes=n)
    return None


def split_budget(text: str) -> tuple[Budget | None, str]:
    """The budget written in ``text`` (if any) and the text without it.

    A budget of zero ("0 episodes") or past :data:`MAX_HOURS` is no budget: ValueError.
    """
    for kind, pattern in (("movie", _MOVIE), ("e", _EPISODES), ("h", _HOURS), ("m", _MINUTES)):
        match = pattern.search(text)
        if match is None:
            continue
        rest = (text[: match.start()] + " " + text[match.end() :]).strip()
        if kind == "movie":
            return Budget(movie=True), rest
        n = int(match.group("n"))
        hours = {"e": n * EPISODE_MINUTES / 60, "h": n, "m": n / 60}[kind]
        if n <= 0 or hours > MAX_HOURS:
            raise ValueError("that budget is out of range")
        if kind == "e":
            return Budget(max_episodes=n), rest
        return Budget(max_minutes=60 * n if kind == "h" else n), rest
    return None, text
