"""Metric definitions checked against answers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recommender.filters import top_k
from training.metrics import (
    RankingAccumulator,
    ndcg_at_k,
    recall_at_k,
    regression_metrics,
    top_k_rows,
)


def test_regression_metrics_by_hand() -> None:
    # errors: +1, -1, +2, 0 -> RMSE sqrt(6/4), MAE 1; targets 1,2,3,4: mean 2.5, SS_tot 5
    m = regression_metrics([1, 2, 3, 4], [2, 1, 5, 4])
    assert m["rmse"] == pytest.approx(math.sqrt(1.5))
    assert m["mae"] == pytest.approx(1.0)
    assert m["r2"] == pytest.approx(1 - 6 / 5)


def test_regression_metrics_perfect_and_bad_input() -> None:
    assert regression_metrics([3, 7], [3, 7]) == {"rmse": 0.0, "mae": 0.0, "r2": 1.0}
    with pytest.raises(ValueError, match="2 values"):
        regression_metrics([1, 2], [1])
    with pytest.raises(ValueError, match="no rows"):
        regression_metrics([], [])


def test_ndcg_binary_gain_ideal_over_min_relevant_and_k() -> None:
    d = [1 / math.log2(i + 2) for i in range(3)]
    # hit at position 1 and 3 (0-based 0 and 2), 2 relevant -> ideal = d0 + d1
    assert ndcg_at_k([5, 6, 7], {5, 7}, k=3) == pytest.approx((d[0] + d[2]) / (d[0] + d[1]))
    # 5 relevant but k=2: ideal counts 2 places only, so a list of two hits is perfect
    assert ndcg_at_k([1, 2, 9], {1, 2, 3, 4, 5}, k=2) == pytest.approx(1.0)
    assert ndcg_at_k([1, 2], set(), k=2) == 0.0
    assert ndcg_at_k([8, 9], {1}, k=2) == 0.0


def test_recall_over_min_relevant_and_k() -> None:
    assert recall_at_k([1, 2, 3], {1, 2, 3, 4, 5, 6}, k=3) == pytest.approx(1.0)
    assert recall_at_k([1, 9, 8], {1, 2}, k=3) == pytest.approx(0.5)
    assert recall_at_k([9, 8, 1], {1}, k=2) == 0.0  # the hit is beyond k


def allowed(n: int, exclude) -> np.ndarray:
    mask = np.ones(n, dtype=bool)
    if exclude is not None:
        mask[np.asarray(list(exclude), dtype=np.int64)] = False
    return mask


def test_top_k_excludes_orders_and_breaks_ties_by_index() -> None:
    scores = np.array([0.5, 0.9, 0.1, 0.9, 0.7, np.nan])
    assert top_k(scores, allowed(6, [3]), 3).tolist() == [1, 4, 0]
    assert top_k(scores, allowed(6, None), 2).tolist() == [1, 3]  # tie 0.9/0.9 -> lower index first
    assert top_k(scores, allowed(6, [0, 1, 2, 3, 4]), 3).tolist() == [5]  # NaN still eligible
    assert top_k(scores, allowed(6, range(6)), 3).tolist() == []
    assert scores[3] == 0.9  # input untouched


def test_top_k_matches_full_sort_on_random_data() -> None:
    rng = np.random.default_rng(0)
    s = rng.integers(0, 50, 1000).astype(np.float32)  # many ties
    ex = rng.choice(1000, 100, replace=False)
    got = top_k(s, allowed(1000, ex), 20)
    keep = np.setdiff1d(np.arange(1000), ex)
    expect = keep[np.lexsort((keep, -s[keep]))][:20]
    assert got.tolist() == expect.tolist()


def test_top_k_rows_matches_top_k() -> None:
    rng = np.random.default_rng(1)
    s = rng.normal(size=(4, 30)).astype(np.float32)
    mask = rng.random((4, 30)) < 0.3
    rows = top_k_rows(s, mask, 5)
    for u in range(4):
        assert rows[u].tolist() == top_k(s[u], ~mask[u], 5).tolist()
    short = top_k_rows(np.array([[1.0, 2.0, 3.0]]), np.array([[True, False, True]]), 2)
    assert short.tolist() == [[1, -1]]


def test_ranking_accumulator_by_hand() -> None:
    acc = RankingAccumulator(k=2)
    d0, d1 = 1.0, 1 / math.log2(3)
    acc.add([10, 11], {11})  # hit at 2nd place: ndcg d1/d0, recall 1
    acc.add([10, 12], {13, 14, 15})  # no hits
    acc.add([12, 14], set())  # no relevant items: coverage only
    r = acc.result(n_items=8)
    assert r["users"] == 2
    assert r["ndcg_at_2"] == pytest.approx((d1 / d0 + 0) / 2)
    assert r["recall_at_2"] == pytest.approx(0.5)
    assert r["coverage_at_2"] == pytest.approx(4 / 8)  # items 10, 11, 12, 14


def test_ranking_accumulator_default_keys_and_padding() -> None:
    acc = RankingAccumulator()
    acc.add([3, -1, -1], {3})
    r = acc.result(n_items=4)
    assert set(r) == {"ndcg_at_10", "recall_at_10", "coverage_at_10", "users"}
    assert r["ndcg_at_10"] == pytest.approx(1.0)
    assert r["coverage_at_10"] == pytest.approx(0.25)
    assert RankingAccumulator().result(0) == {
        "ndcg_at_10": 0.0,
        "recall_at_10": 0.0,
        "coverage_at_10": 0.0,
        "users": 0,
    }
