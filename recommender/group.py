"""Group recommendation ("anime night") as pure numpy functions over a [members x items] matrix.

The serving path (:func:`fair_group_rank`) is: hard vetoes (any member's predicted score under
a misery threshold; what the caller masks out: titles on someone's list, NSFW), then the
candidates ordered by the members' average utility, then a greedy fairness re-rank of the best
of them in the manner of GFAR (Kaya, Bridge and Tintarev, "Ensuring fairness in group
recommendations by using rank-sensitive balancing of relevance", RecSys 2020): each member
judges the pool by rank (Borda relevance), and every next slot maximises
``sum_u p(rel | u, i) * prod_{j chosen} (1 - p(rel | u, j))`` - the gain of a member who is
already well served shrinks, so the slot goes to someone served least so far.

The classic aggregators (average, least misery, Borda) are here too, for the group benchmark.
Utilities are compared across members only after :func:`standardise` (per-member z-scores over
the candidates), so a generous scorer does not dominate the group.
"""

from __future__ import annotations

import numpy as np

NEG = -np.inf


def standardise(utility: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Per-member z-scores over the candidate columns (other columns keep their shifted value)."""
    u = np.asarray(utility, dtype=np.float64)
    if not candidates.any():
        return np.asarray(u - u.mean(axis=1, keepdims=True))
    sub = u[:, candidates]
    mean = sub.mean(axis=1, keepdims=True)
    std = sub.std(axis=1, keepdims=True)
    return np.asarray((u - mean) / np.where(std > 1e-9, std, 1.0))


def average(utility: np.ndarray) -> np.ndarray:
    return np.asarray(np.asarray(utility, dtype=np.float64).mean(axis=0))


def least_misery(utility: np.ndarray) -> np.ndarray:
    return np.asarray(np.asarray(utility, dtype=np.float64).min(axis=0))


def borda(utility: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Sum over members of Borda points among the candidates (best of n gets n - 1)."""
    idx = np.flatnonzero(candidates)
    points = np.full(utility.shape[1], NEG)
    if len(idx) == 0:
        return points
    sub = np.asarray(utility, dtype=np.float64)[:, idx]
    ranks = np.argsort(np.argsort(-sub, axis=1, kind="stable"), axis=1, kind="stable")
    points[idx] = (len(idx) - 1 - ranks).sum(axis=0)
    return points


def misery_mask(predicted: np.ndarray, threshold: float) -> np.ndarray:
    """Items every member is predicted to rate at least ``threshold``."""
    return np.asarray((np.asarray(predicted) >= threshold).all(axis=0))


def top_by(aggregate: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` candidate indices with the highest aggregate, best first (ties: lower index)."""
    idx = np.flatnonzero(candidates)
    if len(idx) == 0 or k <= 0:
        return np.empty(0, dtype=np.int64)
    values = aggregate[idx]
    if len(idx) > k:
        part = np.argpartition(-values, k - 1)[:k]
        idx, values = idx[part], values[part]
    return idx[np.lexsort((idx, -values))]


def borda_relevance(utility: np.ndarray, pool: np.ndarray, top_n: int) -> np.ndarray:
    """p(rel | u, i) in [0, 1] for the pool's items: (top_n - rank) / top_n in u's own order."""
    sub = np.asarray(utility, dtype=np.float64)[:, pool]
    ranks = np.argsort(np.argsort(-sub, axis=1, kind="stable"), axis=1, kind="stable")
    return np.clip((top_n - ranks) / float(top_n), 0.0, 1.0)


def gfar(
    relevance: np.ndarray, k: int, strength: float = 0.9
) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """Greedy fair selection over pool columns of ``relevance`` [members x pool].

    Returns the chosen pool positions in order and, per slot, the members it was chosen to
    serve (those whose term is within 80% of the largest). ``strength`` < 1 keeps a member who
    got their favourite in the running for later slots (p = 1 would zero them out at once).
    """
    p = np.clip(relevance * strength, 0.0, 1.0)
    m, n = p.shape
    unserved = np.ones(m)
    available = np.ones(n, dtype=bool)
    order: list[int] = []
    served: list[tuple[int, ...]] = []
    for _ in range(min(k, n)):
        terms = p * unserved[:, None]
        gain = np.where(available, terms.sum(axis=0), NEG)
        best = int(np.argmax(gain))  # ties: the earlier (better by average) pool item
        column = terms[:, best]
        top = column.max()
        served.append(tuple(int(u) for u in np.flatnonzero(column >= 0.8 * top)) if top > 0 else ())
        order.append(best)
        available[best] = False
        unserved *= 1.0 - p[:, best]
    return np.asarray(order, dtype=np.int64), served


def fair_group_rank(
    utility: np.ndarray,
    predicted: np.ndarray,
    allowed: np.ndarray,
    k: int,
    misery_threshold: float,
    pool_size: int = 80,
    top_n: int = 10,
    strength: float = 0.5,
) -> tuple[np.ndarray, list[tuple[int, ...]], np.ndarray]:
    """The anime-night ranking: vetoes, average-without-misery pool, GFAR re-rank.

    ``utility`` [members x items] orders each member's preferences (higher = better pick);
    ``predicted`` [members x items] is on the 1-10 scale and drives the misery veto; ``allowed``
    is what the caller permits (nobody has it on their list, nobody dropped it, NSFW rules).
    Returns (item indices best first, served member positions per slot, group scores).

    The defaults were chosen on the group benchmark's tuning groups (``--group-seed 1``):
    each member's top 10 of the group's 80 best candidates count as relevant to them.
    """
    candidates = allowed & misery_mask(predicted, misery_threshold)
    z = standardise(utility, candidates)
    group_score = average(z)
    pool = top_by(group_score, candidates, max(pool_size, k))
    if len(pool) == 0:
        return pool, [], group_score
    relevance = borda_relevance(z, pool, min(top_n, len(pool)))
    order, served = gfar(relevance, k, strength)
    return pool[order], served, group_score
