"""Anime night: the picks of a group from its members' cached entries.

Nobody has a pick on their list (nor dropped it), nobody is predicted to dislike it (misery
veto), and the order is the group's average re-ranked so that every member is served
(:func:`recommender.group.fair_group_rank`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from recommender.franchise_picks import Aligned
from recommender.group import fair_group_rank
from recommender.types import Filters, GroupPick
from recommender.user_entry import Serving, UserEntry


def group_matrices(
    serving: Serving,
    entries: Sequence[UserEntry],
    filters: Filters | None,
    series: Aligned | None = None,
    candidates: Collection[int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(utility [m x n], predicted 1-10 [m x n], allowed [n]) of the members' entries. With
    ``series``, a series anyone started is out and any other appears only as its entry point
    (scored per member by their best member of it); with ``candidates`` only those anime ids
    may be picked (a season's titles)."""
    if not entries:
        raise ValueError("an anime night needs at least one member")
    allowed = serving.items.mask(filters).copy()
    for e in entries:
        allowed[e.listed] = False  # seen, unscored, planned, not interested...
        allowed[e.dropped] = False  # ...and dropped, a veto in its own right
    if candidates is not None:
        allowed &= np.isin(serving.model.anime_ids, np.fromiter(candidates, np.int64))
    predicted = np.stack([e.predicted for e in entries])
    if series is None:
        return np.stack([e.rank for e in entries]), predicted, allowed
    listed = np.concatenate([e.listed for e in entries])
    ranks = [series.discovery(e.rank, allowed, listed) for e in entries]
    return np.stack([r for r, _ in ranks]).astype(np.float32), predicted, ranks[0][1]


def night_picks(
    serving: Serving,
    members: Sequence[int],
    entries: Sequence[UserEntry],
    k: int,
    filters: Filters | None,
    misery_threshold: float,
    series: Aligned | None = None,
    candidates: Collection[int] | None = None,
) -> list[GroupPick]:
    """Up to ``k`` picks for ``members`` (their entries in the same order), each with every
    member's predicted score, the group's mean and the members it was chosen for."""
    utility, predicted, allowed = group_matrices(serving, entries, filters, series, candidates)
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
