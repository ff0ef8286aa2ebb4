"""Fold-in and scoring of users the model never saw (``recommender.scoring.ServingModel``)."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.blend import BlendWeights
from recommender.model import get_config
from tests import model_synth
from training.train import fit


@pytest.fixture(scope="module")
def serving():
    df, _ = model_synth.ratings(240, seed=7)
    cfg = get_config(
        "default", epochs=12, batch_size=64, dim=16, genre_hidden=16, ease_min_count=2, knn_topk=32
    )
    return fit(df, model_synth.catalog(), cfg, seed=1).serving


def _top(serving, state, n):
    ranks = serving.rank(state).copy()
    ranks[state.history_index] = -np.inf
    return [int(serving.anime_ids[i]) for i in np.argsort(-ranks)[:n]]


@pytest.mark.parametrize("genre", model_synth.GENRES)
def test_fold_in_recovers_a_planted_user(serving, genre):
    loved = model_synth.ids_of(genre)
    other = [a for g in model_synth.GENRES if g != genre for a in model_synth.ids_of(g)]
    state = serving.fold_in(loved[:4] + other[:2], [10, 9, 9, 10, 3, 2])
    assert sum(a in loved for a in _top(serving, state, 5)) >= 4
    pred = serving.predict(state)

    def idx(ids):
        return [serving.index_of[a] for a in ids]

    assert pred[idx(loved[4:])].mean() >= 7.5
    assert pred[idx(other[2:])].mean() <= pred[idx(loved[4:])].mean() - 2.0


def test_fold_in_ignores_unknown_ids_and_takes_unscored_rows(serving):
    state = serving.fold_in([100, 999_999, 101, 100], [9, 10, None, 1])
    assert [int(serving.anime_ids[i]) for i in state.history_index] == [100, 101]
    assert state.history_scores[0] == 9 and np.isnan(state.history_scores[1])
    assert state.n_scored == 1


def test_cold_start_is_a_popular_well_liked_prior(serving):
    state = serving.fold_in([], [])
    ranks = serving.rank(state)
    pred = serving.predict(state)
    assert ranks.shape == pred.shape == (serving.n_items,)
    assert np.isfinite(ranks).all() and np.isfinite(pred).all()
    # the prior favours anime many people have on their list
    pop = serving.popularity
    top = np.argsort(-ranks)[:10]
    assert pop[top].mean() > pop.mean()
    # one or two ratings move the list already
    sports = model_synth.ids_of("Sports")
    one = serving.fold_in(sports[:1], [10])
    before = sum(a in sports for a in _top(serving, state, 5))
    after = sum(a in sports for a in _top(serving, one, 5))
    assert after >= 2 and after > before


def test_predictions_stay_on_the_score_scale(serving):
    state = serving.fold_in(model_synth.ids_of("Horror")[:6], [10] * 6)
    pred = serving.predict(state)
    assert pred.dtype == np.float32
    assert pred.min() >= 1.0 and pred.max() <= 10.0


def test_contributions_point_at_the_right_history(serving):
    comedy = model_synth.ids_of("Comedy")
    horror = model_synth.ids_of("Horror")
    state = serving.fold_in([comedy[0], comedy[1], horror[0]], [10, 9, 2])
    target = serving.index_of[comedy[5]]
    contrib = serving.contributions(state, target)
    assert contrib.shape == (3,) and contrib.dtype == np.float32
    assert int(np.argmax(contrib)) in (0, 1)
    assert contrib[2] < contrib[:2].max()
    assert serving.contributions(serving.fold_in([], []), target).shape == (0,)


def test_contributions_add_up_to_the_history_driven_rank_score(serving):
    """Under a watch + item-to-item blend, each pick's contributions sum to exactly the part of
    its rank score that the history drives, one pick at a time or ten at once."""
    m = serving.with_blend(BlendWeights(ease=1.0, rank=1.0, rating=0.0))
    ids = model_synth.ids_of("Comedy")[:4] + model_synth.ids_of("Horror")[:2] + [190]
    state = m.fold_in(ids, [10, 9, None, 8, 2, 3, 7])
    items = np.arange(0, m.n_items, 9)
    many = m.contributions_many(state, items)
    assert many.shape == (items.size, len(ids))
    expect = m.ease_scores(state)[items] + m.rank_table[items] @ state.vector
    np.testing.assert_allclose(many.sum(1), expect, rtol=1e-4, atol=1e-4)
    for row, i in zip(many, items, strict=True):
        np.testing.assert_allclose(row, m.contributions(state, int(i)), rtol=1e-6, atol=1e-6)
    assert m.contributions_many(m.fold_in([], []), items).shape == (items.size, 0)


def test_item_vectors_are_unit_and_group_genres(serving):
    v = serving.item_vectors
    assert v.shape[0] == serving.n_items and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    a = serving.index_of[model_synth.ids_of("Romance")[1]]
    sims = v @ v[a]
    sims[a] = -np.inf
    nearest = [int(serving.anime_ids[i]) for i in np.argsort(-sims)[:5]]
    assert sum(x in model_synth.ids_of("Romance") for x in nearest) >= 3


def test_state_is_independent_of_input_order(serving):
    a = serving.fold_in([100, 130, 170], [9, 4, None])
    b = serving.fold_in([170, 100, 130], [None, 9, 4])
    assert np.allclose(serving.predict(a), serving.predict(b), atol=1e-5)
    assert np.allclose(serving.rank(a), serving.rank(b), atol=1e-5)
