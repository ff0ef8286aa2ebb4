"""Limits the commands promise, defined once (parsers, handlers and adapters import these)."""

from __future__ import annotations

MIN_SCORE, MAX_SCORE = 1, 10
#: Most picks one /recommend may ask for (Discord's option range uses it too).
MAX_K = 25
#: Picks per page when no count is given, and for /similar and /night.
PAGE_SIZE = 5
#: "More" stops offering pages past this many picks.
PAGE_CAP = 50
#: Suggestions in a "did you mean" answer, and the characters of a title on a button.
SUGGESTIONS = 5
BUTTON_TITLE_CHARS = 80
#: Longest number a command reads (more digits are refused, never converted).
MAX_NUMBER_DIGITS = 9
