"""PyTorch/XLA on its CPU backend: a short training, bounded compilations, and a checkpoint that
plain CPU torch loads with the same predictions.

Runs only in the separate ``.venv-xla`` (torch 2.9 + torch_xla 2.9; see ``.ci/xla_check.sh``)
with ``PJRT_DEVICE=CPU``; everywhere else it skips. ``ANIREC_CPU_PYTHON`` names the default
virtualenv's python (torch 2.13, no torch_xla) that must load the checkpoint.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

torch_xla = pytest.importorskip("torch_xla", reason="torch_xla lives in .venv-xla only")

import torch

from recommender.model import get_config
from tests import model_synth
from training import data as tdata
from training import devices
from training.train import train_model

pytestmark = pytest.mark.xla
REPO = Path(__file__).resolve().parents[2]
HISTORY = ([100, 101, 102, 150], [10.0, 9.0, np.nan, 3.0])

CPU_SCRIPT = r"""
import json, sys
import numpy as np
import torch
assert "torch_xla" not in sys.modules
from recommender.scoring import RatingMix, ServingModel
tuned = ServingModel.load(sys.argv[1])
m = tuned.with_rating_mix(RatingMix(), RatingMix(), 0)  # the network's own prediction
hist = [m.index_of[a] for a in json.loads(sys.argv[2])]
scores = np.array(json.loads(sys.argv[3]), dtype=np.float32)
state = m.fold_in_indices(np.array(hist), scores)
net = m.baseline(state) + m.dot_part(state)
served = tuned.fold_in_indices(np.array(hist), scores)
print(json.dumps({"torch": torch.__version__, "net": net.tolist(),
                  "rank": tuned.rank(served).tolist()}))
"""


def test_pjrt_device_is_cpu_and_auto_picks_xla():
    assert os.environ.get("PJRT_DEVICE") == "CPU", "run with PJRT_DEVICE=CPU"
    assert devices.resolve_kind("auto") == "xla"
    assert devices.select_device("auto").is_xla


def test_short_training_on_xla_cpu(tmp_path):
    df, _ = model_synth.ratings(160, seed=5)
    data = tdata.from_frame(df, model_synth.catalog())
    cfg = get_config(
        "default",
        epochs=5,
        batch_size=32,
        dim=16,
        genre_hidden=16,
        ease_min_count=2,
        knn_topk=16,
        patience=100,
    )
    compiles: list[int] = []
    res = train_model(
        data,
        cfg,
        seed=0,
        device="xla",
        progress=lambda e, n: compiles.append(devices.compile_count()),
    )
    assert res.device == "xla"
    h = res.history
    assert h["train_mse"][-1] < h["train_mse"][0]
    assert h["train_ce"][-1] < h["train_ce"][0]
    # no recompilation per step: the graphs are built in the first epoch (train step,
    # validation step); later epochs add at most one for a learning-rate change
    steps_per_epoch = int(np.ceil(data.n_users * 0.9 / cfg.batch_size))
    assert compiles[0] <= 12, compiles
    assert compiles[-1] - compiles[1] <= 2, compiles
    assert compiles[-1] < steps_per_epoch * len(compiles), compiles

    # same weights computed on the XLA device...
    dev = torch_xla.device()
    module = res.serving.module.to(dev)
    s = res.serving
    hist = np.array([s.index_of[a] for a in HISTORY[0]])
    sc = np.array(HISTORY[1], np.float32)
    slot = torch.zeros(hist.size, dtype=torch.long, device=dev)
    item = torch.from_numpy(hist).to(dev)
    score = torch.from_numpy(np.nan_to_num(sc, nan=0.0)).to(dev)
    visible = torch.ones(hist.size, device=dev)
    with torch.no_grad():
        scale = (s.score_range[1] - s.score_range[0]) / 2
        _, _, _, z = module.forward_rows(slot, item, score, visible, 1, scale)
        scored = (score > 0).float()
        bias_i = module.item_bias.weight.squeeze(-1)
        bu = ((score - module.global_mean - bias_i[item]) * scored).sum() / (
            scored.sum() + module.config.user_bias_reg
        )
        table = module.item_table()
        net = module.global_mean + bu + bias_i + z @ table.T
        torch_xla.sync()
    on_xla = net.cpu().numpy()[0]
    module.cpu()

    # ...and by the default CPU torch from the checkpoint
    path = s.save(tmp_path / "xla.safetensors")
    python = os.environ.get("ANIREC_CPU_PYTHON", str(REPO / ".venv" / "bin" / "python"))
    env = {k: v for k, v in os.environ.items() if k not in ("PJRT_DEVICE", "PYTHONPATH")}
    done = subprocess.run(
        [
            python,
            "-c",
            CPU_SCRIPT,
            str(path),
            json.dumps(HISTORY[0]),
            json.dumps([None if np.isnan(x) else x for x in HISTORY[1]]),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert not out["torch"].startswith("2.9"), "the check must load under the default torch"
    np.testing.assert_allclose(np.array(out["net"]), on_xla, atol=1e-4)
    state = s.fold_in(HISTORY[0], [10, 9, None, 3])
    np.testing.assert_allclose(np.array(out["rank"]), s.rank(state), atol=1e-4)
