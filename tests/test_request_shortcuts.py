"""The request path's shortcuts give exactly what the plain computation gives, on a REAL small
trained model (tests/fixtures_model.py): catalog products in the calling thread, the
explanations' item-to-item part read from the hits only, and discovery lists memoised on the
user's entry (a page from the memo is the page a fresh computation would give)."""

from __future__ import annotations

import numpy as np
import pytest

from recommender import Recommender
from recommender.scoring import ServingModel, matvec
from recommender.types import Filters
from tests.fixtures_model import SmallWorld, build_small_world


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> SmallWorld:
    w = build_small_world(tmp_path_factory.mktemp("world"))
    yield w
    w.close()


@pytest.fixture(scope="module")
def model(world) -> ServingModel:
    return ServingModel.load(world.checkpoint)


def test_matvec_is_the_matrix_product(model):
    rng = np.random.default_rng(0)
    for table in (model.table, model.rank_table, model.item_vectors):
        x = rng.normal(size=table.shape[1]).astype(np.float32)
        got = matvec(table, x)
        assert got.dtype == np.float32 and got.shape == (table.shape[0],)
        np.testing.assert_allclose(got, table @ x, rtol=1e-5, atol=1e-6)


def test_item_to_item_hits_equal_the_full_comparison(model):
    """Every (pick, history) cell: the sum of the history row's values at the pick, including
    rows that list an anime more than once and picks asked for twice."""
    assert model.ease_index is not None and model.ease_value is not None
    rng = np.random.default_rng(1)
    for _ in range(50):
        hist = rng.choice(model.n_items, int(rng.integers(1, 30)), replace=False)
        near = model.ease_index[hist].ravel()
        items = rng.choice(np.concatenate([near, rng.integers(0, model.n_items, 5)]), 12)
        hit = model.ease_index[hist][None, :, :] == items[:, None, None]
        plain = np.where(hit, model.ease_value[hist][None, :, :], 0.0).sum(2)
        np.testing.assert_array_equal(model._ease_hits(hist, items), plain.astype(np.float32))
    # a row listing the same anime twice adds both values
    hist = np.array([0])
    index = model.ease_index.copy()
    index[0, :2] = 5
    twice = model._clone()
    twice.ease_index = index
    expected = model.ease_value[0, :2].sum() + model.ease_value[0][index[0] == 5][2:].sum()
    assert twice._ease_hits(hist, np.array([5, 5]))[:, 0].tolist() == pytest.approx(
        [expected, expected]
    )


def _ids(page) -> list[int]:
    return [p.anime.anime_id for p in page.picks]


def test_memoised_pages_equal_fresh_ones(world):
    mecha, romance = world.anime_by_genre["Mecha"], world.anime_by_genre["Romance"]
    user = world.new_user(
        "pages", {mecha[0]: 10, mecha[1]: 9, romance[0]: 3}, {mecha[2]: "dropped"}
    )
    warm = Recommender(world.store, world.checkpoint)
    comedy = Filters(include_genres=frozenset({"Comedy"}))
    asked = [(20, 0, None), (5, 5, None), (3, 0, None), (4, 0, comedy), (6, 2, None)]
    asked += [(30, 0, comedy), (2, 10, comedy), (len(world.anime), 0, None)]
    for k, offset, filters in asked:
        cold = Recommender(world.store, world.checkpoint)  # nothing memoised
        got = warm.recommend_page(user, k, filters, offset)
        assert _ids(got) == _ids(cold.recommend_page(user, k, filters, offset))
        assert [p.reason for p in got.picks] == [
            p.reason for p in cold.recommend_page(user, k, filters, offset).picks
        ]
    whole = _ids(warm.recommend_page(user, len(world.anime)))
    assert mecha[2] not in whole and not {mecha[0], mecha[1], romance[0]} & set(whole)
    # a new rating makes a new entry: the memo of the old one is not used
    world.store.ratings.upsert(user, whole[0], 2)
    after = _ids(warm.recommend_page(user, 10))
    assert whole[0] not in after
    assert after == _ids(Recommender(world.store, world.checkpoint).recommend_page(user, 10))
