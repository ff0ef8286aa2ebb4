"""The item-to-item solve (EASE / EDLAE) against the closed form written out in numpy."""

from __future__ import annotations

import numpy as np
import pytest

from tests import model_synth
from training import data as tdata
from training.item_item import solve_ease


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
