"""Anime night: the picks of a group from its members' cached entries.

Nobody has a pick on their list (nor dropped it), nobody is predicted to dislike it (misery
veto), and the order is the group's average re-ranked so that every member is served
(:func:`recommender.group.fair_group_rank`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recommender.group import fair_group_rank
from recommender.types import Filters, GroupPick
from recommender.user_entry import Serving, UserEntry


def group_matrices(
    serving: Serving, entries: Sequence[UserEntry], filters: Filters | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(utility [m x n], predicted 1-10 [m x n], allowed [n]) of the members' entries."""
    if not entries:
        raise ValueError("an anime night needs at least one member")
    allowed = serving.items.mask(filters).copy()
    for e in entries:
        allowed[e.listed] = False  # seen, unscored, planned, not interested...
        allowed[e.dropped] = False  # ...and dropped, a veto in its own right
    return (
        np.stack([e.rank for e in entries]),
        np.stack([e.predicted for e in entries]),
        allowed,
    )


def night_picks(
    serving: Serving,
    members: Sequence[int],
    entries: Sequence[UserEntry],
    k: int,
    filters: Filters | None,
    misery_threshold: float,
) -> list[GroupPick]:
    """Up to ``k`` picks for ``members`` (their entries in the same order), each with every
    member's predicted score, the group's mean and the members it was chosen for."""
    utility, predicted, allowed = group_matrices(serving, entries, filters)
    order, served, _ = fair_group_rank(utility, predicted, allowed, k, misery_threshold)
    picks = []
    for item, slot in zip(order, served, strict=True):
        anime = serving.items.anime[int(item)]
        assert anime is not None  # the filter mask excludes anime missing from the catalog
        scores = {m: round(float(predicted[p, item]), 2) for p, m in enumerate(members)}
        picks.append(
            GroupPick(
                anime,
                scores,
                round(float(predicted[:, item].mean()), 2),
                tuple(members[p] for p in slot),
            )
        )
    return picks
