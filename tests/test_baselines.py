"""Benchmark baselines on small synthetic data: each checked against an independent answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("surprise", reason="the bench extra (scikit-surprise) is not installed")
pytest.importorskip("implicit", reason="the bench extra (implicit) is not installed")

from benchmarks.baselines import (
    EASE,
    BiasOnly,
    GlobalMean,
    ImplicitALS,
    MostPopular,
    Revealed,
    SurpriseKNNBaseline,
    SurpriseSVD,
    TrainSet,
)


def _frame(rows: list[tuple[int, int, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user", "anime_id", "score"]).astype({"score": np.float32})


def _random_ratings(
    seed: int = 0, users: int = 40, items: int = 25, density: float = 0.5
) -> pd.DataFrame:
    """Scores from planted user/item biases plus a 2-d taste, some rows unscored (0)."""
    rng = np.random.default_rng(seed)
    bu, bi = rng.normal(0, 1, users), rng.normal(0, 1, items)
    pu, qi = rng.normal(0, 1, (users, 2)), rng.normal(0, 1, (items, 2))
    rows = []
    for u in range(users):
        for i in range(items):
            if rng.random() < density:
                s = np.clip(np.rint(6 + bu[u] + bi[i] + pu[u] @ qi[i]), 1, 10)
                rows.append((100 + u, 1000 + i, 0.0 if rng.random() < 0.15 else float(s)))
    return _frame(rows)


def _train(df: pd.DataFrame, **kw) -> TrainSet:
    return (
        TrainSet.from_frame(df, (1.0, 10.0), 8.0, **kw)
        if kw
        else TrainSet.from_frame(df, (1.0, 10.0), 8.0)
    )


def test_trainset_indices_and_weights() -> None:
    t = _train(_frame([(7, 30, 9), (5, 30, 0), (7, 10, 4)]))
    assert t.user_ids.tolist() == [5, 7] and t.item_ids.tolist() == [10, 30]
    assert t.interactions().toarray().tolist() == [[0, 1], [1, 2]]  # liked (9 >= 8) counts 2
    assert t.scored.tolist() == [True, False, True]


def test_revealed_drops_unknown_items() -> None:
    t = _train(_frame([(1, 10, 5), (1, 20, 6)]))
    rev, dropped = Revealed.from_frame(_frame([(9, 20, 8), (9, 99, 3), (8, 10, 0)]), t)
    assert dropped == 1 and rev.user_ids.tolist() == [8, 9]
    assert [r[0].tolist() for r in (rev.rows(0), rev.rows(1))] == [[0], [1]]


def test_global_mean_ignores_unscored_rows() -> None:
    b = GlobalMean()
    b.fit(_train(_frame([(1, 10, 4), (1, 11, 0), (2, 10, 8)])))
    assert b.predict(np.array([0, 1]), np.array([0, 0])).tolist() == [6.0, 6.0]


def test_most_popular_counts_every_row() -> None:
    b = MostPopular()
    b.fit(_train(_frame([(1, 10, 4), (1, 11, 0), (2, 11, 0), (3, 11, 2), (2, 12, 9)])))
    assert np.argsort(-b.rank_scores(np.array([0]))[0], kind="stable").tolist() == [1, 0, 2]


def test_bias_only_by_hand_and_fold_in() -> None:
    # no regularisation, one item: b_item = mean - mu, then user biases absorb the rest
    b = BiasOnly(reg_user=0.0, reg_item=0.0, sweeps=5)
    t = _train(_frame([(1, 10, 4), (2, 10, 8), (2, 11, 10)]))
    b.fit(t)
    pred = b.predict(np.array([0, 1, 1]), np.array([0, 0, 1]))
    np.testing.assert_allclose(pred, [4, 8, 10], atol=0.05)  # 3 params, 3 rows: exact fit
    rev, _ = Revealed.from_frame(_frame([(5, 10, 9), (5, 11, 7)]), t)
    b2 = BiasOnly(reg_user=2.0)
    b2.fit(t)
    expect = ((9 - b2.mu - b2.bi[0]) + (7 - b2.mu - b2.bi[1])) / (2.0 + 2)
    folded = b2.fold_in(rev)
    assert folded.predict(np.array([0]), np.array([0]))[0] == pytest.approx(
        b2.mu + expect + b2.bi[0]
    )


def test_surprise_svd_numpy_scores_match_surprise() -> None:
    from surprise import SVD, Dataset, Reader

    df = _random_ratings()
    t = _train(df)
    b = SurpriseSVD(seed=3, n_factors=5, n_epochs=10)
    b.fit(t)
    scored = df[df.score > 0]
    data = Dataset.load_from_df(
        pd.DataFrame(
            {"u": t.u[t.scored], "i": t.i[t.scored], "r": scored.score.astype(float).to_numpy()}
        ),
        Reader(rating_scale=(1, 10)),
    )
    algo = SVD(n_factors=5, n_epochs=10, random_state=3).fit(data.build_full_trainset())
    users, items = t.u[:50], t.i[:50]
    theirs = [algo.predict(int(u), int(i)).est for u, i in zip(users, items, strict=True)]
    np.testing.assert_allclose(b.predict(users, items), theirs, atol=1e-6)


def test_knn_baseline_numpy_matches_surprise_predict() -> None:
    from surprise import Dataset, KNNBaseline, Reader

    df = _random_ratings(seed=1, users=50, items=60, density=0.7)
    t = _train(df)
    b = SurpriseKNNBaseline(k=10)
    b.fit(t)
    m = t.scored
    data = Dataset.load_from_df(
        pd.DataFrame({"u": t.u[m], "i": t.i[m], "r": t.score[m].astype(float)}),
        Reader(rating_scale=(1, 10)),
    )
    algo = KNNBaseline(
        k=10, sim_options={"name": "pearson_baseline", "user_based": False}, verbose=False
    ).fit(data.build_full_trainset())
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, t.n_users, 300), rng.integers(0, t.n_items, 300)
    theirs = np.array([algo.predict(int(u), int(i)).est for u, i in zip(users, items, strict=True)])
    ours = b.predict(users, items)
    # exact except where two neighbours tie on similarity at the k-th place
    assert np.mean(np.abs(ours - theirs) < 1e-4) > 0.97
    assert b.rank_scores(np.array([0, 1])).shape == (2, t.n_items)


def _ease_by_ridge(x: np.ndarray, lam: float) -> np.ndarray:
    """EASE column by column: ridge regression of item j on every other item."""
    n = x.shape[1]
    b = np.zeros((n, n))
    for j in range(n):
        others = [k for k in range(n) if k != j]
        a = x[:, others]
        b[others, j] = np.linalg.solve(a.T @ a + lam * np.eye(n - 1), a.T @ x[:, j])
    return b


def test_ease_equals_per_item_ridge_and_fold_in_is_the_same_product() -> None:
    df = _random_ratings(seed=2, users=30, items=12)
    t = _train(df)
    ease = EASE(lam=3.0)
    ease.fit(t)
    x = t.interactions().toarray()
    np.testing.assert_allclose(ease.b, _ease_by_ridge(x, 3.0), atol=1e-4)
    assert np.all(np.diag(ease.b) == 0)
    first = df[df.user == t.user_ids[0]]
    rev, _ = Revealed.from_frame(first.assign(user=999), t)
    np.testing.assert_allclose(
        ease.fold_in(rev).rank_scores(np.array([0])), ease.rank_scores(np.array([0])), rtol=1e-5
    )


def _two_taste_groups() -> pd.DataFrame:
    """Users 0-19 watch items 0-9, users 20-39 watch items 10-19, each item with prob 0.6."""
    rng = np.random.default_rng(4)
    rows = []
    for u in range(40):
        group = range(10) if u < 20 else range(10, 20)
        rows += [(u, i, 9.0) for i in group if rng.random() < 0.6]
    return _frame(rows)


@pytest.mark.parametrize(
    "make",
    [lambda: ImplicitALS(seed=1, factors=4, iterations=10, threads=1), lambda: EASE(lam=5.0)],
)
def test_rankers_recommend_within_the_taste_group_and_fold_in(make) -> None:
    t = _train(_two_taste_groups())
    model = make()
    model.fit(t)
    top = np.argsort(-model.rank_scores(np.array([0, 25])), axis=1)[:, :5]
    assert set(t.item_ids[top[0]]) <= set(range(10))
    assert set(t.item_ids[top[1]]) <= set(range(10, 20))
    rev, _ = Revealed.from_frame(_frame([(77, 11, 9), (77, 12, 9), (77, 13, 8)]), t)
    scores = model.fold_in(rev).rank_scores(np.array([0]))[0]
    scores[[11, 12, 13]] = -np.inf
    assert set(t.item_ids[np.argsort(-scores)[:5]]) <= set(range(10, 20))


def test_accuracy_evaluate_perfect_and_empty_rankers() -> None:
    import scipy.sparse as sp

    from benchmarks.accuracy import Task, evaluate
    from benchmarks.baselines import Scorer

    class Oracle(Scorer):
        ranks = predicts = True

        def predict(self, users, items):
            return np.array([7.0, 9.0])

        def rank_scores(self, users):
            s = np.zeros((len(users), 4))
            s[0, 2] = s[1, 3] = 1.0
            s[:, 0] = 5.0  # best, but excluded as already seen
            return s

    task = Task(
        np.array([0, 1]),
        np.array([0, 1]),
        np.array([2, 3]),
        np.array([8.0, 9.0]),
        sp.csr_matrix(np.array([[1, 0, 0, 0], [1, 0, 0, 0]], dtype=bool)),
        [np.array([2]), np.array([3])],
        4,
        0,
    )
    r = evaluate(Oracle(), task)
    assert r["ndcg_at_10"] == pytest.approx(1.0) and r["recall_at_10"] == pytest.approx(1.0)
    assert r["rmse"] == pytest.approx(np.sqrt(0.5)) and r["coverage_at_10"] == 0.75
    assert evaluate(Scorer(), task)["rmse"] is None
