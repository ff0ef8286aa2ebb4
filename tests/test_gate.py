"""The quality gate: a fixed holdout kept out of training, and the promote/reject decision."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from recommender.scoring import ServingModel
from storage.repository import Store
from tests.retrain_helpers import GATE, make_world, untrained_checkpoint
from training import data as tdata
from training import gate as qgate


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gate")
    db, by_genre = make_world(folder)
    store = Store(db)
    yield store, by_genre, folder
    store.close()


def holdout_of(store: Store, config: qgate.GateConfig = GATE):
    arrays = store.ratings.arrays()
    keys = qgate.row_keys(arrays, tdata.user_keys(store))
    return arrays, keys, qgate.build_holdout(arrays, keys, config)


def test_holdout_users_and_recent_chat_rows_are_kept_out_of_training(world) -> None:
    store, by_genre, _ = world
    arrays, keys, h = holdout_of(store)
    ds = set(h.dataset_users)
    assert 20 <= len(ds) <= GATE.dataset_max_users
    # every row of a held-out data-set user is out of training; nobody else's is
    for user in ds:
        assert not h.train_mask[keys == user].any()
    # the chat users: their two most recent scores (the 3s for the "other" genre) are held back
    fan0 = store.users.find("console", "fan0")
    fan0_key = "console:fan0"
    assert fan0_key in h.chat_users
    hidden = h.hidden[h.hidden["user"] == fan0_key]
    assert sorted(hidden["anime_id"]) == sorted(by_genre["Romance"][:2])
    assert (hidden["score"] == 3).all()
    rows = arrays.user_ids == fan0.id
    assert rows.sum() == 10 and h.train_mask[rows].sum() == 8
    # revealed rows of data-set users: GATE.reveal scored rows each
    ds_rev = h.revealed[h.revealed["user"].isin(ds)]
    assert (ds_rev.groupby("user").size() == GATE.reveal).all()
    assert h.describe()["holdout_dataset_users"] == len(ds)


def test_holdout_is_fixed_across_runs_and_row_order(world) -> None:
    store, _, _ = world
    arrays, keys, h1 = holdout_of(store)
    perm = np.random.default_rng(3).permutation(arrays.user_ids.size)
    shuffled = dataclasses.replace(
        arrays, **{f.name: getattr(arrays, f.name)[perm] for f in dataclasses.fields(arrays)}
    )
    h2 = qgate.build_holdout(shuffled, keys[perm], GATE)
    assert h2.dataset_users == h1.dataset_users
    assert np.array_equal(h2.train_mask, h1.train_mask[perm])
    # a new data-set user joining does not move the earlier choice
    h3 = qgate.build_holdout(arrays, keys, dataclasses.replace(GATE, dataset_max_users=10**6))
    h4 = qgate.build_holdout(arrays, keys, dataclasses.replace(GATE, seed=GATE.seed + 1))
    assert set(h1.dataset_users) <= set(h3.dataset_users)
    assert set(h4.dataset_users) != set(h1.dataset_users)  # the seed is what fixes it


def test_decide_rules() -> None:
    cfg = qgate.GateConfig(ndcg_tolerance=0.01, rmse_tolerance=0.02)
    serving = {"rmse": 1.20, "ndcg_at_10": 0.30}
    base = {"rmse": 1.60, "ndcg_at_10": 0.20}
    assert qgate.decide({"rmse": 1.21, "ndcg_at_10": 0.295}, serving, base, cfg).promote
    assert qgate.decide({"rmse": 1.10, "ndcg_at_10": 0.35}, serving, base, cfg).promote
    worse_rmse = qgate.decide({"rmse": 1.25, "ndcg_at_10": 0.40}, serving, base, cfg)
    assert not worse_rmse.promote and "RMSE 1.200 -> 1.250" in worse_rmse.reason
    worse_ndcg = qgate.decide({"rmse": 1.00, "ndcg_at_10": 0.28}, serving, base, cfg)
    assert not worse_ndcg.promote and "NDCG@10" in worse_ndcg.reason
    assert not qgate.decide({"rmse": float("nan"), "ndcg_at_10": 0.5}, serving, base, cfg).promote
    # nothing serving: sane is enough, insane is not
    assert qgate.decide({"rmse": 1.5, "ndcg_at_10": 0.15}, None, base, cfg).promote
    assert not qgate.decide({"rmse": 1.9, "ndcg_at_10": 0.3}, None, base, cfg).promote
    assert not qgate.decide({"rmse": 1.2, "ndcg_at_10": 0.05}, None, base, cfg).promote
    assert qgate.decide({}, None, {}, cfg).promote  # nothing to score on: first model serves


def test_trained_model_passes_and_random_model_is_rejected(world) -> None:
    from training import data as tdata
    from training.train import train_model

    store, _, folder = world
    arrays, _, h = holdout_of(store)
    m = h.train_mask
    genres = {a.anime_id: a.genres for a in store.catalog.all()}
    data = tdata.from_arrays(
        arrays.user_ids[m], arrays.anime_ids[m], arrays.scores[m].astype(np.float32), genres
    )
    from recommender.model import get_config

    fit = train_model(
        data, get_config("default", batch_size=16), epochs=8, seed=0, device="cpu", threads=1
    )
    good = ServingModel.load(fit.serving.save(Path(folder) / "good.safetensors"))
    rand = ServingModel.load(
        untrained_checkpoint(Path(folder) / "rand.safetensors", list(data.anime_ids), seed=1)
    )
    base = qgate.baseline(h, good.anime_ids)
    g, r = qgate.evaluate(good, h), qgate.evaluate(rand, h)
    assert g == qgate.evaluate(good, h)  # deterministic: same holdout, same numbers
    assert g["users"] == len(h.dataset_users) + len(h.chat_users)
    assert g["rmse"] < base["rmse"] and g["ndcg_at_10"] > base["ndcg_at_10"] * 0.5
    first = qgate.decide(g, None, base, GATE)
    assert first.promote, first.reason
    assert qgate.decide(g, g, base, GATE).promote  # as good as serving: not worse
    rejected = qgate.decide(r, g, base, GATE)
    assert not rejected.promote, (r, g)
    assert not qgate.decide(r, None, base, GATE).promote  # a random model is not sane either
