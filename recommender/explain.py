"""Why a pick was made: the titles on the user's list that pushed it up most, the user's
favourite genres it shares, and one short sentence built from both."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

LIKED = 7  # a score at or above this reads as "you liked"


def favourite_genres(rated: Sequence[tuple[tuple[str, ...], int | None]], n: int = 3) -> list[str]:
    """Genres the user likes most, from (genres, score or None) pairs of their list.

    Each scored title adds ``score - the user's mean score`` to its genres (so a harsh and a
    generous rater read the same), plus a little for being on the list at all; unscored titles
    add only that little. Ties go to the genre seen more often, then by name.
    """
    scores = [s for _, s in rated if s is not None]
    mean = float(np.mean(scores)) if scores else 0.0
    weight: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for genres, score in rated:
        bump = 0.25 + ((score - mean) if score is not None else 0.0)
        for g in genres:
            weight[g] += bump
            count[g] += 1
    ranked = sorted((g for g in weight if weight[g] > 0), key=lambda g: (-weight[g], -count[g], g))
    return ranked[:n]


def top_contributors(contributions: np.ndarray, scored: np.ndarray, n: int = 3) -> list[int]:
    """Positions in the user's history of the 1-``n`` items that pushed the pick up most.

    ``scored`` marks the history items that carry a score: they come first (they are what
    "titles you rated" means); an unscored item is named only when no scored one helped, and
    only items pushing at least a quarter as hard as the strongest are named at all.
    """
    c = np.asarray(contributions, dtype=np.float64)
    order = np.argsort(-c, kind="stable")
    positive = order[c[order] > 0]
    rated = positive[np.asarray(scored, dtype=bool)[positive]]
    chosen = rated[:n] if rated.size else positive[:1]
    if chosen.size:
        chosen = chosen[c[chosen] >= 0.25 * c[chosen[0]]]
    return [int(i) for i in chosen]


def join(names: Sequence[str]) -> str:
    """'A', 'A and B', 'A, B and C'."""
    return _join(names)


def _join(names: Sequence[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def sentence(
    because: Sequence[tuple[str, int | None]],
    genres: Sequence[str],
    cold: bool = False,
    steered: Sequence[str] = (),
) -> str:
    """e.g. 'Because you liked Steins;Gate and Death Note; Sci-Fi and Thriller, as you like.'"""
    if because:
        liked = all(s is not None and s >= LIKED for _, s in because)
        verb = "liked" if liked else "watched"
        text = f"Because you {verb} {_join([t for t, _ in because])}"
        if genres:
            text += f"; {_join(list(genres))}, as you like"
        return text + "."
    if cold:
        where = f" in {_join(sorted(steered))}" if steered else ""
        return f"Popular and well liked{where}."
    if genres:
        return f"{_join(list(genres))}, as you like."
    return "Picked for your taste."
