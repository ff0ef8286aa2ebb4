"""The rank blend: weights by list length, the relative popularity discount, and one formula
shared by serving (ServingModel.rank) and evaluation (training.evaluate)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommender.blend import BlendSchedule, BlendWeights, blend_scores
from recommender.model import get_config
from tests import model_synth
from training.blend_tuning import BLEND_REVEALS
from training.evaluate import RankingTask, components, group_rows, rank_rows
from training.metrics import top_k_rows
from training.splits import reveal_split
from training.train import fit

SHORT = BlendWeights(ease=0.0, rank=1.0, rating=0.0, popularity=0.0)
LONG = BlendWeights(ease=1.0, rank=0.0, rating=0.0, popularity=0.4)


@pytest.fixture(scope="module")
def model():
    df, _ = model_synth.ratings(240, seed=5)
    cfg = get_config(
        "default", epochs=3, batch_size=64, dim=8, genre_hidden=8, ease_min_count=2, knn_topk=16
    )
    return fit(df, model_synth.catalog(), cfg, seed=0).serving


def test_schedule_interpolates_in_log_length_and_clamps():
    s = BlendSchedule(((10.0, SHORT), (40.0, LONG)))
    assert s.at(0) == SHORT and s.at(3) == SHORT and s.at(10) == SHORT
    assert s.at(40) == LONG and s.at(900) == LONG
    mid = s.at(20)  # log 20 lies halfway between log 10 and log 40
    assert mid.rank == pytest.approx(0.5) and mid.ease == pytest.approx(0.5)
    assert mid.popularity == pytest.approx(0.2)
    assert s.at(15).rank > s.at(20).rank > s.at(30).rank


@pytest.mark.parametrize(
    "anchors", [(), ((5.0, SHORT), (5.0, LONG)), ((9.0, SHORT), (4.0, LONG)), ((0.0, SHORT),)]
)
def test_schedule_refuses_bad_anchors(anchors):
    with pytest.raises(ValueError):
        BlendSchedule(anchors)


def test_schedule_json_round_trip_and_the_old_flat_form():
    s = BlendSchedule(((5.0, SHORT), (62.5, LONG)))
    assert BlendSchedule.from_json(s.to_json(), BlendWeights()) == s
    old = BlendSchedule.from_json({"ease": 1.0, "rank": 0.03, "rating": 0.3}, BlendWeights())
    assert old.at(1) == old.at(1000) == BlendWeights(1.0, 0.03, 0.3, 0.0)
    assert BlendSchedule.from_json(None, SHORT).at(7) == SHORT


def test_popularity_discount_demotes_titles_everyone_has_seen():
    log_pop = np.log1p(np.array([1000.0, 3.0, 40.0, 0.0], np.float32))
    ease = np.array([1.0, 0.9, 0.5, 0.1], np.float32)
    rating = np.zeros(4, np.float32)
    plain = blend_scores(BlendWeights(1.0, 0.0, 0.0, 0.0), rating, None, ease, 0.0, 1.0, log_pop)
    assert np.argmax(plain) == 0
    discounted = blend_scores(LONG, rating, None, ease, 0.0, 1.0, log_pop)
    assert np.argmax(discounted) == 1  # the hugely popular title gives way to the niche one
    np.testing.assert_allclose(plain - discounted, LONG.popularity * log_pop, rtol=1e-6)
    # the same weights on a batch of users give each row what they give it alone
    batch = blend_scores(
        LONG, np.stack([rating, rating]), None, np.stack([ease, 2 * ease]), 0.0, 1.0, log_pop
    )
    np.testing.assert_allclose(batch[0], discounted, rtol=1e-6)


def test_rank_uses_the_weights_for_the_users_list_length(model):
    m = model.with_blend(BlendSchedule(((2.0, SHORT), (6.0, LONG))))
    ids = [int(a) for a in model.anime_ids[:8]]
    short = m.fold_in(ids[:2], [9, 8])
    np.testing.assert_allclose(m.rank(short), m.watch_logits(short), rtol=1e-6, atol=1e-6)
    long_ = m.fold_in(ids, [9, 8, 7, 9, None, 6, 8, 9])
    expect = blend_scores(
        LONG, m.predict(long_), None, m.ease_scores(long_), m.mu, m.score_scale, m.log_popularity
    )
    np.testing.assert_allclose(m.rank(long_), expect, rtol=1e-6, atol=1e-6)
    assert not np.allclose(m.rank(long_), m.watch_logits(long_))


def test_evaluation_ranks_exactly_as_serving_does(model):
    """The batched path used by tuning, the gate and `anirec evaluate` must give every user the
    list ServingModel.rank would give them, whatever their list length."""
    df, _ = model_synth.ratings(60, seed=9)
    parts = [
        reveal_split(df[df.user % 3 == k], n, seed=1, min_scored=n + 2)
        for k, n in enumerate((3, 8, 15))
    ]
    rev = np.concatenate([p[0].to_numpy() for p in parts])
    hid = np.concatenate([p[1].to_numpy() for p in parts])
    cols = ["user", "anime_id", "score"]
    rev_df, hid_df = pd.DataFrame(rev, columns=cols), pd.DataFrame(hid, columns=cols)
    for frame in (rev_df, hid_df):
        frame["idx"] = frame["anime_id"].map(model.index_of)
    rows = group_rows(rev_df.dropna(), hid_df.dropna(), "idx")
    lengths = {idx.size for idx in rows.revealed_idx}
    assert lengths == {3, 8, 15}
    m = model.with_blend(BlendSchedule(((3.0, SHORT), (15.0, LONG))))
    batched = rank_rows(m, components(m, rows), rows)
    task = RankingTask.of(m, rows, 8.0)
    top = top_k_rows(batched, task.exclude, 10)
    for r, (idx, sc) in enumerate(zip(rows.revealed_idx, rows.revealed_scores, strict=True)):
        one = m.rank(m.fold_in_indices(idx, sc))
        np.testing.assert_allclose(batched[r], one, rtol=1e-5, atol=1e-5)
        assert np.array_equal(top[r], top_k_rows(one[None], task.exclude[r][None], 10)[0])


def test_training_tunes_one_anchor_per_list_length(model):
    lengths = [n for n, _ in model.blend.anchors]
    assert lengths == sorted(lengths)
    # an anchor per "K revealed" validation protocol its users have enough scores for (these
    # synthetic users have ~20: only K = 5), and one for 80% of a whole list
    assert min(BLEND_REVEALS) in lengths
    assert len(lengths) >= 2 and max(lengths) > min(BLEND_REVEALS)
    assert model.meta["blend"] == model.blend.to_json()


def test_blend_tuning_uses_a_bounded_seeded_sample_of_the_validation_users():
    """Tuning holds [users x anime] matrices: past ``max_users`` validation users it takes a
    seeded sample (the same one each time), below it every user."""
    from training import data as tdata
    from training.blend_tuning import validation_protocols

    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(60), 12)
    items = np.concatenate([rng.choice(40, 12, replace=False) for _ in range(60)])
    scores = rng.integers(1, 11, users.size)
    data = tdata.from_arrays(users, items + 100, scores, {i + 100: ("a",) for i in range(40)})
    val = np.arange(10, 60)

    def users_of(protocols):
        return {name: sorted(rows.users) for name, rows in protocols}

    capped = users_of(validation_protocols(data, val, seed=3, max_users=15))
    assert capped and all(len(u) == 15 and set(u) <= set(val) for u in capped.values())
    assert capped == users_of(validation_protocols(data, val, seed=3, max_users=15))
    assert capped != users_of(validation_protocols(data, val, seed=4, max_users=15))
    whole = users_of(validation_protocols(data, val, seed=3))
    assert all(u == list(range(10, 60)) for u in whole.values())
