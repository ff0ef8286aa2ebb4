"""The model definition and its training: shapes, determinism, planted genre tastes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recommender.model import CONFIGS, HybridRecommender, ModelConfig, ModelShape, get_config
from storage.rows import Anime
from tests import model_synth
from training.train import fit

FAST = {
    "epochs": 12,
    "batch_size": 64,
    "ease_min_count": 2,
    "knn_topk": 32,
    "dim": 16,
    "genre_hidden": 16,
}


@pytest.fixture(scope="module")
def synth():
    return model_synth.ratings(240, seed=1)


@pytest.fixture(scope="module")
def trained(synth):
    df, _ = synth
    return fit(df, model_synth.catalog(), get_config("default", **FAST), seed=3)


def _module(kind: str = "default", n_items: int = 30, n_genres: int = 4) -> HybridRecommender:
    cfg = get_config(kind, dim=8, genre_hidden=8 if kind == "default" else 0)
    genres = torch.zeros(n_items, n_genres)
    genres[torch.arange(n_items), torch.arange(n_items) % n_genres] = 1
    return HybridRecommender(cfg, ModelShape(n_items, n_genres, n_users=5), genres, 7.0)


def test_hybrid_forward_shapes_and_padding_rows_do_not_count():
    model = _module()
    slot = torch.tensor([0, 0, 0, 1, 1, 0, 0])
    item = torch.tensor([1, 2, 3, 4, 5, 0, 0])
    score = torch.tensor([8.0, 0.0, 5.0, 9.0, 7.0, 0.0, 0.0])
    visible = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    rating, row_logit, logits, z = model.forward_rows(slot, item, score, visible, 3, 4.5)
    assert rating.shape == (7,) and row_logit.shape == (7,)
    assert logits.shape == (3, 30) and z.shape == (3, 8)
    # slot 2 has no rows: its vector is zero; invisible rows do not move the encoder
    assert torch.all(z[2] == 0)
    visible2 = visible.clone()
    score2 = score.clone()
    score2[2] = 1.0  # a hidden row's score changes nothing about the user vectors
    _, _, _, z2 = model.forward_rows(slot, item, score2, visible2, 3, 4.5)
    assert torch.allclose(z, z2)
    cand = torch.tensor([0, 5, 7])
    assert model.forward_rows(slot, item, score, visible, 3, 4.5, cand)[2].shape == (3, 3)


def test_seed_forward_pairs_shape():
    model = _module("seed")
    out = model.forward_pairs(torch.tensor([0, 1, 4]), torch.tensor([3, 3, 29]))
    assert out.shape == (3,)


def test_genre_projection_is_per_anime():
    model = _module()
    table = model.item_table()
    assert table.shape == (30, 8)
    # two anime with the same genres and the same embedding get the same vector
    with torch.no_grad():
        model.item_emb.weight[4] = model.item_emb.weight[0]
    assert torch.allclose(model.item_table()[4], model.item_table()[0])


def test_configs_round_trip_and_unknown_names():
    for cfg in CONFIGS.values():
        assert ModelConfig.from_json(cfg.to_json()) == cfg
    assert CONFIGS["seed"].kind == "seed" and CONFIGS["seed"].mlp_hidden
    with pytest.raises(ValueError, match="unknown model config"):
        get_config("nope")
    with pytest.raises(ValueError, match="unknown model config keys"):
        ModelConfig.from_json({"bogus": 1})


def test_same_seed_same_model(synth):
    df, _ = synth
    cfg = get_config("default", **{**FAST, "epochs": 3})
    a = fit(df, model_synth.catalog(), cfg, seed=5)
    b = fit(df, model_synth.catalog(), cfg, seed=5)
    c = fit(df, model_synth.catalog(), cfg, seed=6)
    sa, sb, sc = (r.serving.fold_in([100, 101], [9, 10]) for r in (a, b, c))
    # multi-threaded scatter-adds may sum in another order: equal up to float rounding
    assert np.allclose(a.serving.predict(sa), b.serving.predict(sb), atol=1e-4)
    assert np.allclose(a.serving.rank(sa), b.serving.rank(sb), atol=1e-4)
    assert a.serving.blend == b.serving.blend and a.history["train_mse"] == pytest.approx(
        b.history["train_mse"], abs=1e-4
    )
    assert not np.allclose(a.serving.predict(sa), c.serving.predict(sc), atol=1e-3)


def test_loss_goes_down(trained):
    h = trained.history
    assert h["train_mse"][-1] < h["train_mse"][0]
    assert h["train_ce"][-1] < h["train_ce"][0]
    assert h["val_mse"] and min(h["val_mse"]) < h["val_mse"][0]


def test_mecha_lover_gets_mecha_on_top(trained):
    s = trained.serving
    mecha = model_synth.ids_of("Mecha")
    state = s.fold_in(mecha[:3], [10, 9, 10])
    ranks = s.rank(state)
    order = [
        int(s.anime_ids[i]) for i in np.argsort(-ranks) if int(s.anime_ids[i]) not in mecha[:3]
    ]
    assert sum(a in mecha for a in order[:5]) >= 4, order[:10]
    pred = s.predict(state)
    mecha_idx = [s.index_of[a] for a in mecha[3:]]
    other_idx = [s.index_of[a] for a in model_synth.ids_of("Horror")]
    assert pred[mecha_idx].mean() > pred[other_idx].mean() + 1.0


def test_seen_users_keep_their_taste(trained, synth):
    _, favourite = synth
    s = trained.serving
    hits = 0
    users = [u for u in list(favourite)[:40]]
    for u in users:
        state = trained.state_for(u)
        ranks = s.rank(state)
        ranks[state.history_index] = -np.inf
        top = int(s.anime_ids[int(np.argmax(ranks))])
        hits += top in model_synth.ids_of(favourite[u])
    assert hits >= 0.8 * len(users)


def test_seed_config_trains_and_learns_genres(synth):
    df, favourite = synth
    res = fit(df, model_synth.catalog(), get_config("seed", epochs=30, batch_size=512), seed=0)
    assert res.history["train_mse"][-1] < res.history["train_mse"][0]
    s = res.serving
    mecha = [s.index_of[a] for a in model_synth.ids_of("Mecha")]
    horror = [s.index_of[a] for a in model_synth.ids_of("Horror")]
    lover = next(u for u, g in favourite.items() if g == "Mecha")
    pred = s.predict(res.state_for(lover))
    assert pred[mecha].mean() > pred[horror].mean()
    # fold-in of the origin model (gradient steps) also works for someone new
    state = s.fold_in(model_synth.ids_of("Mecha")[:4], [10, 10, 9, 9])
    pred = s.predict(state)
    assert pred[mecha].mean() > pred[horror].mean()


def test_dense_batches_match_packed_rows():
    """The dense training path computes the packed encoder's user vectors and the same losses
    (full softmax), so a fold-in reproduces what training optimised."""
    from training import data as tdata
    from training.losses import dense_loss, row_loss

    df = pd.DataFrame(
        {
            "user": [1, 1, 1, 2, 2, 2, 3],
            "anime_id": [11, 12, 13, 14, 15, 19, 17],
            "score": [8, 0, 5, 9, 7, 3, 6],
        }
    )
    data = tdata.from_frame(df, {i: ["a" if i % 2 else "b"] for i in range(10, 20)}, (1.0, 10.0))
    cfg = get_config("default", dim=8, genre_hidden=8)
    torch.manual_seed(0)
    model = HybridRecommender(
        cfg,
        ModelShape(data.n_items, data.item_genres.shape[1]),
        torch.from_numpy(data.item_genres.astype(np.float32)),
        7.0,
    )
    _randomise(model)
    dense, packed = _both_layouts(data, np.array([1, 1, 0, 1, 0, 1, 0], bool))
    z, _ = model.encode_dense(dense[0], dense[1], dense[2], 4.5)
    z_rows = model.forward_rows(*packed[:4], 4, 4.5)[3]
    assert torch.allclose(z, z_rows, atol=1e-6)
    for a, b in zip(
        dense_loss(model, dense, 4.5), row_loss(model, packed, 4, 4.5, 7.3, None), strict=True
    ):
        assert torch.allclose(a, b, atol=1e-5)


def test_row_softmax_over_trained_anime_equals_the_masked_full_softmax():
    """Packed rows score the softmax over the trained anime only; the dense path masks the
    untrained ones over the full width. The four losses and their gradients must agree."""
    from training import data as tdata
    from training.losses import dense_loss, row_loss

    df = pd.DataFrame(
        {
            "user": [1, 1, 1, 2, 2, 2, 3],
            "anime_id": [11, 12, 13, 14, 15, 19, 17],
            "score": [8, 0, 5, 9, 7, 3, 6],
        }
    )
    genre = {i: ("a" if i % 2 else "b",) for i in range(10, 20)}
    catalog = [Anime(i, f"t{i}", genre[i], "TV", 12, None, 0, False) for i in range(10, 20)]
    data = tdata.from_arrays(
        df["user"].to_numpy(),
        df["anime_id"].to_numpy(),
        df["score"].to_numpy(),
        genre,
        catalog=catalog,
    )
    trained = torch.zeros(data.n_items)
    trained[torch.from_numpy(np.unique(data.items))] = 1.0
    cfg = get_config("default", dim=8, genre_hidden=8)
    shape = ModelShape(data.n_items, data.item_genres.shape[1], extra={"content": True})
    genres = torch.from_numpy(data.item_genres.astype(np.float32))
    torch.manual_seed(0)
    model = HybridRecommender(cfg, shape, genres, 7.0, trained=trained)
    _randomise(model)
    assert data.n_items == 10 and float(model.untrained_mask().sum()) == 3
    dense, packed = _both_layouts(data, np.array([1, 1, 0, 1, 0, 1, 0], bool))
    grads = []
    for losses in (dense_loss(model, dense, 4.5), row_loss(model, packed, 4, 4.5, 7.3, None)):
        model.zero_grad()
        torch.stack(list(losses)).sum().backward()
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
        assert all(torch.isfinite(x) for x in losses)
    d, r = dense_loss(model, dense, 4.5), row_loss(model, packed, 4, 4.5, 7.3, None)
    for a, b in zip(d, r, strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    assert r[3] > 0  # the stand-in's softmax term is there
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("negatives", [0, 8])
def test_cpu_row_selection_gives_the_losses_and_gradients_of_every_row(monkeypatch, negatives):
    """On the CPU the packed-row step keeps only the rows each term uses (shown rows for the
    encoder, hidden ones for the losses); with every row kept and 0/1 weights instead (what
    XLA and CUDA run) the four losses and every gradient are the same to float rounding."""
    from recommender import model as model_mod
    from training import data as tdata
    from training import distributed, steps
    from training import losses as losses_mod
    from training.batches import visible_mask
    from training.devices import select_device
    from training.train import _network

    df, _ = model_synth.ratings(60, seed=5)
    data = tdata.from_frame(df, model_synth.catalog())
    cfg = get_config("default", **FAST)
    torch.manual_seed(0)
    model = _network(data, cfg, select_device("cpu", parallel=False))[0]
    model.train()
    vis = visible_mask(data, cfg, np.random.default_rng(2))
    users = np.arange(data.n_users)
    batch = next(iter(steps.host_batches(data, users, 32, vis, None, distributed.Plan())))
    neg = torch.arange(0, data.n_items, 3)[:negatives] if negatives else None

    def run() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        model.zero_grad()
        out = losses_mod.row_loss(model, batch, 32, 4.5, 7.3, neg)
        sum(out).backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        return [x.detach() for x in out], grads

    selected = run()

    def every_row(mask: torch.Tensor, *cols: torch.Tensor):
        return mask, list(cols)

    monkeypatch.setattr(model_mod, "select_rows", every_row)
    monkeypatch.setattr(losses_mod, "select_rows", every_row)
    weighted = run()
    assert all(x > 0 for x in selected[0])  # every term is live, the stand-in's too
    for a, b in zip(selected[0], weighted[0], strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
    assert len(selected[1]) == len(weighted[1])
    for a, b in zip(selected[1], weighted[1], strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def _randomise(model: HybridRecommender) -> None:
    """Every weight drawn at random (zero-initialised heads would hide differences)."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)


def _both_layouts(data, vis: np.ndarray):
    """One batch of every user of ``data`` as a dense batch and as packed rows (``vis``: the
    shown rows)."""
    from training.batches import DenseBatches

    dense = next(iter(DenseBatches(data, np.arange(data.n_users), 4, vis, 7.3, None)))
    packed = (
        torch.from_numpy(data.users.astype(np.int64)),
        torch.from_numpy(data.items.astype(np.int64)),
        torch.from_numpy(data.scores.astype(np.float32)),
        torch.from_numpy(vis.astype(np.float32)),
        torch.ones(data.n_rows),
    )
    return dense, packed


def test_relatives_mean_gathers_only_the_relatives_that_exist_and_matches_the_fixed_layout():
    """On the CPU the stand-in reads the mean learned parts of each title's trained relatives
    from the pairs that exist; it must equal the mean over the fixed [anime, k] slots (what
    accelerators run), zero for a title with none."""
    from recommender import model as model_mod

    n, k = 9, 3
    relatives = torch.tensor(
        [[1, 2, -1], [-1, -1, -1], [0, 5, 8], [4, -1, -1], [3, 3, 7]]
        + [[-1, -1, -1]] * 3
        + [[6, 1, 2]]
    )
    trained = torch.tensor([1, 1, 0, 1, 1, 1, 0, 1, 1], dtype=torch.float32)
    shape = ModelShape(n, 4, extra={"content": True, "relatives": k})
    genres = torch.eye(n, 4)
    model = HybridRecommender(
        get_config("default", dim=8, genre_hidden=8), shape, genres, 7.0, trained, relatives
    )
    parts = torch.randn(n, 10)
    mean, count = model_mod._relatives_mean(parts, model.relatives, model.trained)
    for i in range(n):
        live = [int(r) for r in relatives[i] if r >= 0 and trained[r] > 0]
        assert count[i] == len(live)
        expected = parts[live].mean(0) if live else torch.zeros(10)
        assert torch.allclose(mean[i], expected, atol=1e-6), i


def test_a_cpu_step_builds_the_sides_of_the_trained_anime_only_and_they_match_every_anime():
    """The CPU step scores the trained anime from ``trained_sides``; row for row (values and
    gradients) it is ``anime_sides`` on them, the stand-in's relatives included."""
    n = 12
    trained = torch.tensor([1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 0, 1], dtype=torch.float32)
    relatives = torch.tensor(
        [[-1, -1], [0, 2], [0, -1], [2, 0], [3, 5], [1, 4], [-1, -1]]
        + [[6, 9], [7, -1], [11, 8], [9, -1], [10, 3]]
    )
    shape = ModelShape(n, 5, extra={"content": True, "relatives": 2})
    genres = (torch.arange(n * 5).reshape(n, 5) % 3 == 0).float()
    torch.manual_seed(4)
    model = HybridRecommender(
        get_config("default", dim=8, genre_hidden=8), shape, genres, 7.0, trained, relatives
    )
    _randomise(model)
    columns = torch.nonzero(trained).squeeze(1)
    weights = [torch.randn(columns.numel()) for _ in range(6)]

    def total(sides) -> torch.Tensor:
        return sum(
            ((part if part.dim() == 1 else part.sum(1)) * w).sum()
            for part, w in zip([*sides[0], *sides[1]], weights, strict=True)
        )

    grads = []
    for build in (
        lambda: [[part[columns] for part in side] for side in model.anime_sides()],
        lambda: model.trained_sides(columns),
    ):
        model.zero_grad()
        sides = build()
        total(sides).backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None})
        for part, other in zip(
            [*sides[0], *sides[1]],
            [p[columns] for side in model.anime_sides() for p in side],
            strict=True,
        ):
            assert torch.allclose(part, other, atol=1e-6)
    assert grads[0].keys() == grads[1].keys()
    for key in grads[0]:
        assert torch.allclose(grads[0][key], grads[1][key], atol=1e-5), key
