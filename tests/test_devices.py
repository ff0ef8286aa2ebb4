"""Device selection: XLA when a TPU is present or PJRT_DEVICE is set, else CUDA, else CPU."""

from __future__ import annotations

import pytest
import torch

from training.devices import DeviceError, resolve_kind, select_device, tpu_present


def kind(requested, env=None, tpu=False, xla=False, cuda=False):
    return resolve_kind(requested, env or {}, has_tpu=tpu, has_xla=xla, has_cuda=cuda)


def test_auto_prefers_xla_then_cuda_then_cpu():
    assert kind("auto") == "cpu"
    assert kind("auto", cuda=True) == "cuda"
    assert kind("auto", {"PJRT_DEVICE": "CPU"}, xla=True, cuda=True) == "xla"
    assert kind("auto", tpu=True, xla=True) == "xla"
    # a PJRT_DEVICE without torch_xla installed falls through to the next choice
    assert kind("auto", {"PJRT_DEVICE": "TPU"}, xla=False, cuda=True) == "cuda"
    assert kind("auto", tpu=True, xla=False) == "cpu"


def test_explicit_choices():
    assert kind("cpu", {"PJRT_DEVICE": "TPU"}, tpu=True, xla=True, cuda=True) == "cpu"
    assert kind("cuda", cuda=True) == "cuda"
    assert kind("xla", xla=True) == "xla"
    with pytest.raises(DeviceError, match="no CUDA"):
        kind("cuda")
    with pytest.raises(DeviceError, match="torch_xla is not installed"):
        kind("xla")
    with pytest.raises(DeviceError, match="unknown device"):
        kind("tpu")


def test_tpu_probe_reads_dev(tmp_path):
    assert not tpu_present(tmp_path)
    (tmp_path / "accel0").touch()
    assert tpu_present(tmp_path)
    assert not tpu_present(tmp_path / "missing")


def test_select_cpu_here():
    info = select_device("cpu")
    assert info.kind == "cpu" and info.device == torch.device("cpu") and not info.is_xla


def test_training_threads_default_follows_the_cores_and_yields_to_the_setting(monkeypatch):
    from training.devices import THREADS_ENV, training_threads

    monkeypatch.delenv(THREADS_ENV, raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert training_threads() == 1  # two threads cost 4-10x on a busy 2-core machine
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert training_threads() == 4
    monkeypatch.setattr("os.cpu_count", lambda: 64)
    assert training_threads() == 4
    assert training_threads(3) == 3
    monkeypatch.setenv(THREADS_ENV, "6")
    assert training_threads() == 6
    assert training_threads(2) == 2  # an explicit request wins
    monkeypatch.setenv(THREADS_ENV, "many")
    with pytest.raises(ValueError, match=THREADS_ENV):
        training_threads()


def test_cpu_training_takes_adamws_fused_kernel_and_steps_like_the_loop_of_kernels():
    from training.devices import adamw

    torch.manual_seed(0)
    weights = [torch.nn.Parameter(torch.randn(50, 8)) for _ in range(2)]
    plain = [torch.nn.Parameter(w.detach().clone()) for w in weights]
    fused = adamw(select_device("cpu"), weights, lr=1e-2, weight_decay=0.01)
    reference = torch.optim.AdamW(plain, lr=1e-2, weight_decay=0.01, foreach=False)
    assert fused.defaults["fused"] is True
    for step in range(5):
        for a, b in zip(weights, plain, strict=True):
            a.grad = torch.full_like(a, 0.1 * (step + 1)) + a.detach()
            b.grad = a.grad.clone()
        fused.step()
        reference.step()
    for a, b in zip(weights, plain, strict=True):
        assert torch.allclose(a, b, atol=1e-6)
