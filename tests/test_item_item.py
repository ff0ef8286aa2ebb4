"""The item-to-item solve (EASE / EDLAE) against the closed form written out in numpy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tests import model_synth
from training import data as tdata
from training import item_item
from training import item_item_blocks as blk
from training.item_item import solve_ease, solve_knn


@pytest.fixture(scope="module")
def data():
    df, _ = model_synth.ratings(90, seed=3)
    return tdata.from_frame(df, model_synth.catalog(), (1.0, 10.0))


def _reference(data: tdata.TrainingData, lam: float, dropout: float, like: float) -> np.ndarray:
    """B = I - P diag(1/diag P), P = (X'X + diag(lam + dropout/(1-dropout) * diag X'X))^-1."""
    x = np.zeros((data.n_users, data.n_items))
    x[data.users, data.items] = np.where(data.scores >= like, 2.0, 1.0)
    g = x.T @ x
    reg = lam + dropout / (1.0 - dropout) * np.diag(g)
    p = np.linalg.inv(g + np.diag(reg))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b


def _dense(index: np.ndarray, value: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((n, n))
    for row in range(n):
        np.add.at(out[row], index[row], value[row])
    return out


@pytest.mark.parametrize("lam,dropout", [(50.0, 0.0), (20.0, 0.33), (5.0, 0.5)])
def test_solve_matches_the_closed_form(data, lam, dropout):
    n = data.n_items
    assert np.bincount(data.items, minlength=n).min() >= 1
    index, value = solve_ease(
        data, np.arange(data.n_users), lam, min_count=1, topk=n - 1, like=8.0, dropout=dropout
    )
    np.testing.assert_allclose(
        _dense(index, value, n), _reference(data, lam, dropout, 8.0), rtol=1e-3, atol=1e-5
    )


def test_dropout_shrinks_widely_listed_anime_harder(data):
    n = data.n_items
    plain = _dense(*solve_ease(data, np.arange(data.n_users), 20.0, 1, n - 1, 8.0), n)
    edlae = _dense(*solve_ease(data, np.arange(data.n_users), 20.0, 1, n - 1, 8.0, dropout=0.33), n)
    count = np.bincount(data.items, minlength=n)
    popular, niche = np.argsort(-count)[:10], np.argsort(count)[:10]
    # EDLAE's penalty sits on the rows (what having anime i on a list pushes): how much of its
    # plain-EASE pull each anime keeps
    kept = np.abs(edlae).sum(1) / np.maximum(np.abs(plain).sum(1), 1e-12)
    assert kept[popular].mean() < kept[niche].mean()


@pytest.mark.parametrize("dropout", [-0.1, 1.0])
def test_dropout_outside_zero_one_is_refused(data, dropout):
    with pytest.raises(ValueError, match="dropout"):
        solve_ease(data, np.arange(data.n_users), 20.0, 1, 8, 8.0, dropout=dropout)


def _solve(data, **kw):
    n = data.n_items
    return solve_ease(data, np.arange(data.n_users), 20.0, 1, n - 1, 8.0, dropout=0.33, **kw)


def test_local_regressions_over_every_other_anime_are_the_exact_solve(data):
    n = data.n_items
    exact = _dense(*_solve(data), n)
    local = _dense(*_solve(data, exact_max=0, candidates=n), n)
    np.testing.assert_allclose(local, exact, rtol=1e-4, atol=1e-6)


def test_local_regressions_on_fewer_candidates_approximate_the_exact_solve(data):
    n = data.n_items
    exact = _dense(*_solve(data), n)
    local = _dense(*_solve(data, exact_max=n - 1, candidates=n // 2), n)
    assert np.abs(local - exact).max() > 1e-4  # the threshold switched paths
    assert np.linalg.norm(local - exact) < 0.5 * np.linalg.norm(exact)


@pytest.mark.parametrize("exact_max", [None, 0])
def test_block_size_never_changes_the_result(data, exact_max):
    kw = {"exact_max": exact_max, "candidates": 40}
    ref = _solve(data, block=1024, **kw)
    for block in (1, 7, 33):
        got = _solve(data, block=block, **kw)
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])


def test_the_accelerator_path_agrees_with_the_host_path():
    rng = np.random.default_rng(2)
    x = (rng.random((80, 40)) < 0.3).astype(np.float32)
    g = blk.gram(blk.list_matrix(*np.nonzero(x), x[np.nonzero(x)], 80, 40), block=16)
    reg = (10.0 + 0.5 * np.diagonal(g)).astype(np.float32)
    # the accelerator's code path, run on the CPU device
    on = _dense(*item_item._ease_exact_on(torch.device("cpu"), g.copy(), reg, 39, 16), 40)
    g[np.diag_indices_from(g)] += reg
    host = _dense(*blk.rows_topk(blk.ease_rows(blk.invert_spd_in_place(g)), 40, 39), 40)
    np.testing.assert_allclose(on, host, rtol=1e-3, atol=1e-5)


def test_invert_in_place_overwrites_its_buffer_with_the_inverse():
    rng = np.random.default_rng(0)
    x = rng.random((50, 30)).astype(np.float32)
    g = (x.T @ x + 0.5 * np.eye(30)).astype(np.float32)
    want = np.linalg.inv(g.astype(np.float64))
    out = blk.invert_spd_in_place(g, block=4)
    assert out is g
    np.testing.assert_allclose(g, want, rtol=1e-3, atol=1e-4)
    np.testing.assert_array_equal(g, g.T)


def _frame_data(rows: list[tuple[int, int, float]]) -> tdata.TrainingData:
    df = pd.DataFrame(rows, columns=["user", "anime_id", "score"])
    return tdata.from_frame(df, {}, (1.0, 10.0))


def test_an_anime_nobody_lists_with_another_gets_an_empty_row():
    rows = [(u, a, 8.0) for u in range(12) for a in (1, 2, 3) if (u + a) % 3]
    rows += [(100 + u, 9, 7.0) for u in range(6)]  # anime 9: alone on six lists
    data = _frame_data(rows)
    lone = int(np.searchsorted(data.anime_ids, 9))
    for kw in ({}, {"exact_max": 0}):
        index, value = solve_ease(data, np.arange(data.n_users), 5.0, 1, 3, 8.0, **kw)
        assert not value[lone].any()
        assert not value[:, :][index == lone].any()  # and nothing pushes it
        assert np.abs(value).sum() > 0


@pytest.mark.parametrize("n_anime", [1, 2])
def test_one_anime_in_the_solve_gives_empty_tables(n_anime):
    rows = [(u, 1, 8.0) for u in range(6)] + [(u, 2, 6.0) for u in range(2)]
    data = _frame_data(rows)
    min_count = 3 if n_anime == 1 else 1
    users = np.arange(data.n_users)
    for index, value in (
        solve_ease(data, users, 5.0, min_count, 4, 8.0),
        solve_knn(data, users, 7.0, np.zeros(data.n_items), 3.0, min_count=min_count),
    ):
        assert index.shape[0] == value.shape[0] == 2
        if n_anime == 1:
            assert not value.any()


def _knn_reference(data, mu, bias, bias_reg, shrink):
    """KNNBaseline's shrunk pearson-baseline similarity, dense, in float64."""
    s = data.scored
    u, i, r0 = data.users[s], data.items[s], data.scores[s] - mu - bias[data.items[s]]
    bu = np.bincount(u, r0, data.n_users) / (np.bincount(u, minlength=data.n_users) + bias_reg)
    r = np.zeros((data.n_users, data.n_items))
    m = np.zeros_like(r)
    r[u, i], m[u, i] = r0 - bu[u], 1.0
    sim = (r.T @ r) / np.maximum(np.sqrt(((r * r).T @ m) * (m.T @ (r * r))), 1e-9)
    cnt = m.T @ m
    sim *= np.maximum(cnt - 1, 0) / (cnt - 1 + shrink)
    np.fill_diagonal(sim, 0.0)
    return sim


def test_knn_blocks_match_the_dense_pearson_baseline(data):
    n = data.n_items
    bias = np.random.default_rng(1).normal(0.0, 0.3, n)
    users = np.arange(data.n_users)
    want = _knn_reference(data, 7.0, bias, 3.0, 10.0)
    ref = None
    for block in (1, 13, 1024):
        index, value = solve_knn(data, users, 7.0, bias, 3.0, 10.0, 1, n - 1, block=block)
        np.testing.assert_allclose(
            _dense(index, value, n), np.maximum(want, 0.0), rtol=1e-4, atol=1e-5
        )
        if ref is not None:
            np.testing.assert_array_equal(value, ref)
        ref = value
