"""Device selection: PyTorch/XLA when a TPU is present or PJRT_DEVICE is set, else CUDA, else CPU.

``PJRT_DEVICE`` is read BEFORE torch_xla is imported, because importing torch_xla sets it.
torch_xla is optional (the ``xla`` extra lives in its own virtualenv); asking for ``xla``
without it is a one-line error. The parallel plan comes with the device: SPMD over every XLA
device when there is more than one, DDP when torchrun started several processes
(:mod:`training.distributed`).
"""

from __future__ import annotations

import importlib.util
import os
import queue
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from training import distributed

CHOICES = ("auto", "cpu", "cuda", "xla")


class DeviceError(RuntimeError):
    """The requested device is not available here."""


@dataclass(frozen=True)
class DeviceInfo:
    kind: str  # cpu | cuda | xla
    device: torch.device
    description: str
    plan: distributed.Plan = field(default_factory=distributed.Plan)

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


def select_device(requested: str = "auto", parallel: bool = True) -> DeviceInfo:
    """The device and its parallel plan (``parallel=False``: one device, one process)."""
    kind = resolve_kind(requested)
    if kind == "xla":
        import torch_xla

        plan = distributed.start_spmd() if parallel else distributed.Plan()
        dev = torch_xla.device()
        where = f"PJRT_DEVICE={os.environ.get('PJRT_DEVICE')}"
        if plan.kind == distributed.SPMD:
            where += f", SPMD over {plan.world} devices"
        return DeviceInfo("xla", dev, f"XLA {dev} ({where})", plan)
    plan = distributed.start_ddp(kind) if parallel else distributed.Plan()
    ddp = f", DDP rank {plan.rank}/{plan.world}" if plan.kind == distributed.DDP else ""
    if kind == "cuda":
        dev = torch.device("cuda", plan.local_rank)
        name = torch.cuda.get_device_name(dev)
        return DeviceInfo("cuda", dev, f"CUDA {name}{ddp}", plan)
    cpu = f"CPU ({torch.get_num_threads()} threads{ddp})"
    return DeviceInfo("cpu", torch.device("cpu"), cpu, plan)


#: overrides :func:`training_threads`' choice (e.g. on a large CPU-only server)
THREADS_ENV = "ANIREC_TORCH_THREADS"


def training_threads(requested: int | None = None) -> int:
    """torch's intra-op threads for a fit: ``requested``, else ``ANIREC_TORCH_THREADS``, else
    one per four CPU cores (1 to 4).

    The step's products ([512 users x 7k anime]) are too small to split well: on two cores two
    threads took about the wall time of one on an idle machine and 4-10x longer, with 5x the
    CPU, as soon as anything else ran (the bot beside a retrain, for one); see
    benchmarks/RESULTS.md. The item-to-item solves use BLAS's own threads either way.
    """
    if requested:
        return max(1, int(requested))
    env = os.environ.get(THREADS_ENV, "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ValueError(f"{THREADS_ENV} must be a whole number, got {env!r}") from None
    return max(1, min(4, (os.cpu_count() or 1) // 4))


def sync(info: DeviceInfo) -> None:
    """End an XLA step (cut the lazy graph and run it); nothing on other devices."""
    if info.is_xla:
        import torch_xla

        torch_xla.sync()


def adamw(
    info: DeviceInfo, params: Iterable[torch.nn.Parameter], **options: Any
) -> torch.optim.AdamW:
    """AdamW with its fused kernel where PyTorch has one (CPU, CUDA): one pass over every
    parameter instead of a dozen (the 12k-anime model's step: 1.4 ms against 8 ms on the
    CPU). XLA keeps the default implementation, which it traces into the step's graph."""
    fused = info.kind in ("cpu", "cuda")
    return torch.optim.AdamW(params, fused=fused or None, **options)


def optimizer_step(info: DeviceInfo, optimizer: torch.optim.Optimizer) -> None:
    if info.is_xla:
        import torch_xla.core.xla_model as xm

        xm.optimizer_step(optimizer)
    else:
        optimizer.step()


def device_loader(info: DeviceInfo, loader: Any) -> Any:
    """Wrap a host-side batch iterable so batches arrive on the device (XLA: MpDeviceLoader,
    which builds and uploads ahead on its own threads; elsewhere :class:`Prefetch`)."""
    if info.is_xla:
        import torch_xla.distributed.parallel_loader as pl

        return pl.MpDeviceLoader(loader, info.device)
    return Prefetch(loader, info.device)


_DONE = object()


class Prefetch:
    """Builds the next host batches on a background thread while the current step runs (numpy
    and torch release the GIL in their kernels); on CUDA each batch is pinned and copied
    without blocking, so the upload overlaps the previous step too."""

    def __init__(self, loader: Iterable[Any], device: torch.device, depth: int = 2) -> None:
        self.loader, self.device, self.depth = loader, device, depth

    @staticmethod
    def _put(out: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
        """Hand ``item`` over unless the consumer has stopped; False when it has."""
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _host(self, out: queue.Queue[Any], stop: threading.Event) -> None:
        cuda = self.device.type == "cuda"
        try:
            for batch in self.loader:
                batch = tuple(t.pin_memory() for t in batch) if cuda else batch
                if not self._put(out, batch, stop):
                    return
        except BaseException as exc:  # raised again in the consuming thread
            self._put(out, exc, stop)
            return
        self._put(out, _DONE, stop)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        out: queue.Queue[Any] = queue.Queue(maxsize=self.depth)
        stop = threading.Event()
        worker = threading.Thread(target=self._host, args=(out, stop), daemon=True)
        worker.start()
        non_blocking = self.device.type == "cuda"
        try:
            while (batch := out.get()) is not _DONE:
                if isinstance(batch, BaseException):
                    raise batch
                yield tuple(t.to(self.device, non_blocking=non_blocking) for t in batch)
        finally:
            stop.set()
            worker.join()

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]


def compile_count() -> int | None:
    """XLA graph compilations so far (from the metrics report), or None off XLA."""
    try:
        import torch_xla.debug.metrics as met
    except ImportError:
        return None
    data = met.metric_data("CompileTime")
    return int(data[0]) if data else 0
