"""Data-parallel training: DDP over two CPU processes on gloo trains the same model as one
process, and the device-side dense batches equal the host-built ones.

The DDP check starts two real processes (torch.multiprocessing, a process group on 127.0.0.1
at a free port); each trains a tiny model for a few steps on its half of every batch.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from recommender.model import get_config
from tests import model_synth
from tests.same_model import assert_same_model
from training import data as tdata
from training import distributed, steps
from training.batches import DenseBatches, visible_mask
from training.train import train_model

# same model within: weights after 3 epochs of AdamW, float32 sums in another order
TOLERANCE = 1e-5  # measured: 4.5e-8 (2e-2 without the per-rank loss rescaling)


def _data() -> tdata.TrainingData:
    df, _ = model_synth.ratings(120, seed=3)
    return tdata.from_frame(df, model_synth.catalog())


def _cfg():
    return get_config(
        "default",
        epochs=3,
        batch_size=32,
        dim=16,
        genre_hidden=16,
        ease_min_count=2,
        knn_topk=16,
        patience=100,
    )


def _train(out: Path) -> dict[str, object]:
    torch.manual_seed(0)
    res = train_model(_data(), _cfg(), seed=0, device="cpu", tune=False, threads=1)
    state = {k: v.detach().numpy() for k, v in res.serving.module.state_dict().items()}
    np.savez(out, **state)
    return {"history": res.history}


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    import torch.distributed as dist

    try:
        _train(Path(out_dir) / f"rank{rank}.npz")
        main = distributed.is_main()
        Path(out_dir, f"rank{rank}.main").write_text(str(main))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_ddp_two_gloo_processes_train_the_same_model_as_one(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    _train(tmp_path / "single.npz")
    single = np.load(tmp_path / "single.npz")
    rank0, rank1 = np.load(tmp_path / "rank0.npz"), np.load(tmp_path / "rank1.npz")
    assert (tmp_path / "rank0.main").read_text() == "True"
    assert (tmp_path / "rank1.main").read_text() == "False"
    for key in single.files:
        np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)  # DDP: in step
    assert_same_model(rank0, single, TOLERANCE)
    # the runs did train: the weights left their initial values by far more than the tolerance
    assert np.abs(single["item_emb.weight"] - _initial_item_emb()).max() > 100 * TOLERANCE


def _initial_item_emb() -> np.ndarray:
    from training.devices import select_device
    from training.train import _network

    torch.manual_seed(0)
    model = _network(_data(), _cfg(), select_device("cpu", parallel=False))[0]
    return model.item_emb.weight.detach().numpy()


def test_dense_batches_built_on_the_device_equal_the_host_ones():
    data = _data()
    cfg = _cfg()
    rng = np.random.default_rng(1)
    vis = visible_mask(data, cfg, rng)
    users = np.arange(data.n_users)
    like = 7.3
    host = DenseBatches(data, users, 40, vis, like, None)
    rows = steps.host_batches(data, users, 40, vis, None, distributed.Plan())
    for group_h, group_r, batch_h, batch_r in zip(
        host.groups, rows.groups, host, rows, strict=False
    ):
        np.testing.assert_array_equal(group_h, group_r)
        dense = steps.dense_from_rows(batch_r, 40, data.n_items, like, distributed.Plan())
        for h, r in zip(batch_h, dense, strict=True):
            np.testing.assert_array_equal(h.numpy(), r.numpy())
        counts = steps.target_counts(batch_r, like).numpy()
        assert counts[0] == (batch_h[3] > 0).sum()
        assert counts[1] == batch_h[4].sum()


def test_ddp_ranks_split_every_batch_and_round_users():
    ddp = distributed.Plan(distributed.DDP, 3, 1)
    group = np.arange(10)
    parts = [distributed.shard_users(group, distributed.Plan("ddp", 3, r)) for r in range(3)]
    np.testing.assert_array_equal(np.concatenate(parts), group)
    assert distributed.shard_users(group, ddp).size == 3
    assert steps.users_per_step(512, ddp) == 171
    spmd = distributed.Plan(distributed.SPMD, 4)
    assert steps.users_per_step(30, spmd) == 32
    assert steps.users_per_step(30, distributed.Plan()) == 30
    assert distributed.env_world({}) == (1, 0, 0)
    assert distributed.env_world({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0"}) == (4, 2, 0)
    assert distributed.start_ddp("cpu", {}) == distributed.Plan()


def test_layout_follows_the_device():
    assert steps.layout_for("cpu", sampled=False) == steps.ROWS
    assert steps.layout_for("cuda", sampled=False) == steps.DENSE
    assert steps.layout_for("xla", sampled=False) == steps.DENSE
    assert steps.layout_for("cuda", sampled=True) == steps.ROWS


def test_prefetch_hands_over_batches_in_order_errors_and_early_stops():
    from training.devices import Prefetch

    cpu = torch.device("cpu")
    batches = [(torch.full((3,), float(i)),) for i in range(7)]
    got = [int(b[0][0]) for b in Prefetch(batches, cpu)]
    assert got == list(range(7))

    def broken():
        yield (torch.zeros(2),)
        raise ValueError("bad batch")

    it = iter(Prefetch(broken(), cpu))
    next(it)
    with pytest.raises(ValueError, match="bad batch"):
        next(it)

    import threading

    before = threading.active_count()
    for _ in Prefetch(batches * 10, cpu, depth=1):
        break  # the consumer stops early: the builder thread must end, not block
    assert threading.active_count() <= before
