"""Device selection: PyTorch/XLA when a TPU is present or PJRT_DEVICE is set, else CUDA, else CPU.

``PJRT_DEVICE`` is read BEFORE torch_xla is imported, because importing torch_xla sets it.
torch_xla is optional (the ``xla`` extra lives in its own virtualenv); asking for ``xla``
without it is a one-line error.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

CHOICES = ("auto", "cpu", "cuda", "xla")


class DeviceError(RuntimeError):
    """The requested device is not available here."""


@dataclass(frozen=True)
class DeviceInfo:
    kind: str  # cpu | cuda | xla
    device: torch.device
    description: str

    @property
    def is_xla(self) -> bool:
        return self.kind == "xla"


def tpu_present(dev_root: Path = Path("/dev")) -> bool:
    """A TPU shows up as /dev/accel* or /dev/vfio devices on TPU VMs."""
    try:
        return any(p.name.startswith("accel") for p in dev_root.iterdir())
    except OSError:
        return False


def xla_installed() -> bool:
    return importlib.util.find_spec("torch_xla") is not None


def resolve_kind(
    requested: str,
    env: Mapping[str, str] | None = None,
    has_tpu: bool | None = None,
    has_xla: bool | None = None,
    has_cuda: bool | None = None,
) -> str:
    """Which kind of device ``requested`` means here (pure: every probe can be passed in)."""
    if requested not in CHOICES:
        raise DeviceError(f"unknown device {requested!r}; choose one of {', '.join(CHOICES)}")
    env = os.environ if env is None else env
    has_xla = xla_installed() if has_xla is None else has_xla
    has_cuda = torch.cuda.is_available() if has_cuda is None else has_cuda
    if requested == "cpu":
        return "cpu"
    if requested == "cuda":
        if not has_cuda:
            raise DeviceError(
                f"device cuda asked for, but torch sees no CUDA GPU (torch {torch.__version__})"
            )
        return "cuda"
    if requested == "xla":
        if not has_xla:
            raise DeviceError(
                "device xla asked for, but torch_xla is not installed "
                "(install the `xla` extra in its own virtualenv)"
            )
        return "xla"
    pjrt = env.get("PJRT_DEVICE")  # read before any torch_xla import sets it
    has_tpu = tpu_present() if has_tpu is None else has_tpu
    if (pjrt or has_tpu) and has_xla:
        return "xla"
    if has_cuda:
        return "cuda"
    return "cpu"


def select_device(requested: str = "auto") -> DeviceInfo:
    kind = resolve_kind(requested)
    if kind == "xla":
        import torch_xla

        dev = torch_xla.device()
        return DeviceInfo("xla", dev, f"XLA {dev} (PJRT_DEVICE={os.environ.get('PJRT_DEVICE')})")
    if kind == "cuda":
        return DeviceInfo("cuda", torch.device("cuda"), f"CUDA {torch.cuda.get_device_name(0)}")
    return DeviceInfo("cpu", torch.device("cpu"), f"CPU ({torch.get_num_threads()} threads)")


def sync(info: DeviceInfo) -> None:
    """End an XLA step (cut the lazy graph and run it); nothing on other devices."""
    if info.is_xla:
        import torch_xla

        torch_xla.sync()


def optimizer_step(info: DeviceInfo, optimizer: torch.optim.Optimizer) -> None:
    if info.is_xla:
        import torch_xla.core.xla_model as xm

        xm.optimizer_step(optimizer)
    else:
        optimizer.step()


def device_loader(info: DeviceInfo, loader: Any) -> Any:
    """Wrap a host-side batch iterable so batches arrive on the device (XLA: MpDeviceLoader)."""
    if info.is_xla:
        import torch_xla.distributed.parallel_loader as pl

        return pl.MpDeviceLoader(loader, info.device)
    return _ToDevice(loader, info.device)


class _ToDevice:
    def __init__(self, loader: Any, device: torch.device) -> None:
        self.loader, self.device = loader, device

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        non_blocking = self.device.type == "cuda"
        for batch in self.loader:
            yield tuple(t.to(self.device, non_blocking=non_blocking) for t in batch)

    def __len__(self) -> int:
        return len(self.loader)


def compile_count() -> int | None:
    """XLA graph compilations so far (from the metrics report), or None off XLA."""
    try:
        import torch_xla.debug.metrics as met
    except ImportError:
        return None
    data = met.metric_data("CompileTime")
    return int(data[0]) if data else 0
