"""SPMD over every XLA device: four virtual XLA:CPU devices train the same model as one.

Each run is its own process (SPMD mode is process-wide and cannot be switched off): one with
four host devices (``CPU_NUM_DEVICES=4``, which torch_xla's PJRT CPU client reads, and
``XLA_FLAGS=--xla_force_host_platform_device_count=4``, XLA's own flag), where
``device="auto"`` must choose SPMD with the batch sharded over a 4-device mesh, and one with a
single device. Runs only in ``.venv-xla`` (see ``.ci/xla_check.sh``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch_xla", reason="torch_xla lives in .venv-xla only")

from tests.same_model import assert_same_model

pytestmark = pytest.mark.xla
REPO = Path(__file__).resolve().parents[2]
# same model within: 3 epochs of AdamW; the sharded program sums the batch in another order
TOLERANCE = 1e-4

RUN = r"""
import json, sys
import numpy as np
from recommender.model import get_config
from tests import model_synth
from training import data as tdata
import torch_xla.runtime as xr
from training.train import train_model

df, _ = model_synth.ratings(120, seed=3)
data = tdata.from_frame(df, model_synth.catalog())
cfg = get_config("default", epochs=3, batch_size=32, dim=16, genre_hidden=16,
                 ease_min_count=2, knn_topk=16, patience=100)
res = train_model(data, cfg, seed=0, device="auto", tune=False, threads=1)
state = {k: v.detach().numpy() for k, v in res.serving.module.state_dict().items()}
np.savez(sys.argv[1], **state)
spec = ""
if xr.is_spmd():  # a batch built on the device is split along its user axis
    import torch, torch_xla
    import torch_xla.distributed.spmd as xs
    from training import distributed, steps
    n = xr.global_runtime_device_count()
    plan = distributed.Plan("spmd", n, mesh=xs.Mesh(np.arange(n), (n,), ("data",)))
    dev = torch_xla.device()
    rows = tuple(torch.tensor(v, device=dev) for v in
                 ([0, 1, 2, 3], [0, 1, 2, 3], [5.0, 6, 0, 9], [1.0, 0, 1, 0], [1.0, 1, 1, 1]))
    z = steps.dense_from_rows(rows, 8, 4, 7.0, plan)[0] @ torch.ones(4, 3, device=dev)
    torch_xla.sync()
    spec = torch_xla._XLAC._get_xla_sharding_spec(z)
print(json.dumps({"device": res.device, "spmd": xr.is_spmd(), "spec": spec,
                  "world": xr.global_runtime_device_count(), "history": res.history}))
"""


def _run(out: Path, n_devices: int) -> dict[str, object]:
    env = dict(os.environ)
    env.update(
        PJRT_DEVICE="CPU",
        TPU_SKIP_MDS_QUERY="1",
        CPU_NUM_DEVICES=str(n_devices),
        XLA_FLAGS=f"--xla_force_host_platform_device_count={n_devices}",
        PYTHONPATH=str(REPO),
    )
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        check=False,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_spmd_over_four_devices_trains_the_same_model_as_one(tmp_path):
    four = _run(tmp_path / "four.npz", 4)
    one = _run(tmp_path / "one.npz", 1)
    assert (four["device"], four["spmd"], four["world"]) == ("xla", True, 4)
    assert (one["device"], one["spmd"], one["world"]) == ("xla", False, 1)
    assert four["spec"] == "{devices=[4,1]0,1,2,3}"  # user axis over the 4 devices
    a, b = np.load(tmp_path / "four.npz"), np.load(tmp_path / "one.npz")
    assert_same_model(a, b, TOLERANCE)
    h4, h1 = four["history"], one["history"]
    np.testing.assert_allclose(h4["train_mse"], h1["train_mse"], rtol=1e-4)  # type: ignore[index]
    assert h1["train_ce"][-1] < h1["train_ce"][0]  # type: ignore[index]
