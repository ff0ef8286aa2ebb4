"""Group aggregation and the GFAR fairness re-rank, on hand-made [members x items] matrices."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.group import (
    average,
    borda,
    borda_relevance,
    fair_group_rank,
    gfar,
    least_misery,
    misery_mask,
    standardise,
    top_by,
)

ALL = np.ones(4, dtype=bool)


def test_classic_aggregators_on_a_small_matrix():
    u = np.array([[9.0, 7.0, 5.0, 8.0], [3.0, 7.0, 9.0, 8.0]])
    assert average(u).tolist() == [6.0, 7.0, 7.0, 8.0]
    assert least_misery(u).tolist() == [3.0, 7.0, 5.0, 8.0]
    # member 0 order: 0, 3, 1, 2 -> points 3, 1, 0, 2 for items 0..3
    # member 1 order: 2, 3, 1, 0 -> points 0, 1, 3, 2
    assert borda(u, ALL).tolist() == [3.0, 2.0, 3.0, 4.0]
    assert misery_mask(u, 6.0).tolist() == [False, True, False, True]
    assert top_by(average(u), ALL, 2).tolist() == [3, 1]  # tie 1 vs 2: lower index first


def test_borda_ignores_non_candidates():
    u = np.array([[1.0, 2.0, 3.0]])
    points = borda(u, np.array([True, False, True]))
    assert points[1] == -np.inf and points[2] > points[0]


def test_standardise_makes_a_generous_scorer_count_the_same():
    u = np.array([[1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]])
    loud = u * np.array([[10.0], [1.0]])
    assert np.allclose(standardise(u, ALL), standardise(loud, ALL))
    assert np.allclose(average(standardise(u, ALL)), 0.0)


def test_borda_relevance_is_rank_based_and_cut_at_top_n():
    u = np.array([[0.1, 0.9, 0.5, 0.3]])
    p = borda_relevance(u, np.arange(4), top_n=2)
    assert p.tolist() == [[0.0, 1.0, 0.5, 0.0]]


def test_gfar_serves_the_member_served_least_so_far():
    # Items 0-2 are member 0's favourites, item 3 member 1's and item 4 member 2's.
    rel = np.array(
        [[1.0, 0.9, 0.8, 0.0, 0.0], [0.0, 0.1, 0.1, 1.0, 0.0], [0.0, 0.1, 0.1, 0.0, 1.0]]
    )
    order, served = gfar(rel, 3)
    chosen = set(order.tolist())
    assert {3, 4} <= chosen and len(chosen & {0, 1, 2}) == 1  # one slot each, not three for 0
    assert sorted(s for slot in served for s in slot) == [0, 1, 2]


def test_plain_average_would_leave_a_member_out_but_ours_does_not():
    # Two members agree; the third likes other things. Average picks only the majority's.
    utility = np.array(
        [
            [9, 9, 9, 9, 2, 2, 5, 5],
            [9, 9, 9, 9, 2, 2, 5, 5],
            [3, 3, 3, 3, 9, 9, 5, 5],
        ],
        dtype=float,
    )
    predicted = np.full_like(utility, 8.0)
    candidates = np.ones(8, dtype=bool)
    by_average = top_by(average(standardise(utility, candidates)), candidates, 3)
    assert not set(by_average.tolist()) & {4, 5}
    order, served, _ = fair_group_rank(utility, predicted, candidates, 3, misery_threshold=6.0)
    assert set(order.tolist()) & {4, 5}, "the third member's favourites must appear"
    assert {m for slot in served for m in slot} == {0, 1, 2}


def test_misery_and_caller_vetoes_are_hard():
    utility = np.array([[10.0, 9.0, 8.0, 7.0], [10.0, 9.0, 8.0, 7.0]])
    predicted = np.array([[9.0, 9.0, 9.0, 9.0], [5.9, 9.0, 9.0, 9.0]])  # member 1 hates item 0
    allowed = np.array([True, False, True, True])  # item 1: someone has it on their list
    order, _, _ = fair_group_rank(utility, predicted, allowed, 4, misery_threshold=6.0)
    assert order.tolist() == [2, 3]


def test_no_candidates_gives_an_empty_night():
    utility = np.ones((2, 3))
    order, served, _ = fair_group_rank(utility, np.full((2, 3), 2.0), np.ones(3, bool), 5, 6.0)
    assert order.size == 0 and served == []


@settings(max_examples=60, deadline=None)
@given(
    members=st.integers(1, 8),
    items=st.integers(1, 60),
    k=st.integers(1, 10),
    seed=st.integers(0, 10_000),
)
def test_fair_rank_properties(members, items, k, seed):
    rng = np.random.default_rng(seed)
    utility = rng.normal(size=(members, items))
    predicted = rng.uniform(4.0, 10.0, size=(members, items))
    allowed = rng.random(items) < 0.8
    order, served, _ = fair_group_rank(utility, predicted, allowed, k, misery_threshold=6.0)
    ok = allowed & (predicted >= 6.0).all(axis=0)
    assert len(order) == min(k, int(ok.sum()))
    assert len(set(order.tolist())) == len(order)
    assert ok[order].all()
    assert len(served) == len(order)
    assert all(0 <= m < members for slot in served for m in slot)
    if len(order) >= members and ok.sum() >= 40:
        # with a deep enough pool every member is served by some slot
        assert {m for slot in served for m in slot} == set(range(members))
