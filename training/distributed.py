"""Data-parallel training on every chip: DDP across processes, SPMD across XLA devices.

Two standard mechanisms, nothing home-made:

- **DDP** (``torch.distributed``): one process per GPU (or per CPU worker in tests) started by
  ``torchrun``, which sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``. Every rank reads the same
  data and draws the same shuffled global batches (same seed); each keeps its slice of every
  batch's users. Each rank's loss is rescaled by its share of the global batch's targets, so
  DDP's gradient average equals the single-process gradient of the whole batch. Validation is
  replicated (every rank sees every validation user), so the learning-rate schedule and early
  stopping decide identically everywhere; only rank 0 writes files.
- **SPMD** (``torch_xla.distributed.spmd``): one process drives every XLA device of the host or
  slice as one big device; the batch is sharded along its user axis over a 1-D mesh and the
  anime tables are replicated. The program keeps single-device semantics, so nothing is
  rescaled.

:func:`plan_for` picks one from the environment (see :mod:`training.devices`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

SINGLE, DDP, SPMD = "single", "ddp", "spmd"


@dataclass(frozen=True)
class Plan:
    """How one training run spreads over devices: ``world`` workers, this one ``rank``."""

    kind: str = SINGLE
    world: int = 1
    rank: int = 0
    local_rank: int = 0
    mesh: Any = None  # SPMD: the torch_xla Mesh over every device

    @property
    def is_main(self) -> bool:
        """The rank that logs, writes checkpoints and plots."""
        return self.rank == 0


def env_world(env: Mapping[str, str] | None = None) -> tuple[int, int, int]:
    """(world size, rank, local rank) as torchrun sets them; (1, 0, 0) outside torchrun."""
    env = os.environ if env is None else env
    return (
        int(env.get("WORLD_SIZE", "1")),
        int(env.get("RANK", "0")),
        int(env.get("LOCAL_RANK", env.get("RANK", "0"))),
    )


def start_ddp(kind: str, env: Mapping[str, str] | None = None) -> Plan:
    """Join the process group torchrun describes (nccl on CUDA, gloo on CPU); a single-process
    plan when there is no group to join."""
    world, rank, local = env_world(env)
    if world <= 1:
        return Plan()
    import torch.distributed as dist

    if not dist.is_initialized():
        if kind == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if kind == "cuda" else "gloo")
    return Plan(DDP, dist.get_world_size(), dist.get_rank(), local)


def start_spmd() -> Plan:
    """SPMD over every XLA device when there is more than one (must run before any tensor is
    placed on an XLA device); a single-device plan otherwise."""
    import torch_xla.runtime as xr

    n = xr.global_runtime_device_count()
    if n <= 1:
        return Plan()
    import torch_xla.distributed.spmd as xs

    xr.use_spmd()
    mesh = xs.Mesh(np.arange(n), (n,), ("data",))
    return Plan(SPMD, n, 0, 0, mesh)


def is_main() -> bool:
    """True outside DDP and on DDP's rank 0."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def shard_users(group: np.ndarray, plan: Plan) -> np.ndarray:
    """This rank's slice of one global batch of users (DDP); the whole batch otherwise."""
    if plan.kind != DDP:
        return group
    return np.array_split(group, plan.world)[plan.rank]


def wrap(module: torch.nn.Module, plan: Plan, device: torch.device) -> torch.nn.Module:
    """The module the training step calls: DDP-wrapped under DDP, itself otherwise."""
    if plan.kind != DDP:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def global_share(counts: torch.Tensor, plan: Plan) -> torch.Tensor:
    """Per loss term, this rank's share of the global batch's targets times the world size:
    multiplying each rank's mean loss by it turns DDP's gradient average into the gradient of
    the whole batch's mean (1 outside DDP)."""
    if plan.kind != DDP:
        return torch.ones_like(counts)
    import torch.distributed as dist

    total = counts.clone()
    dist.all_reduce(total)
    return counts.clamp(min=1.0) * plan.world / total.clamp(min=1.0)


def shard_batch(tensors: tuple[torch.Tensor, ...], plan: Plan) -> None:
    """SPMD: shard [users, ...] batch tensors along the user axis over the mesh."""
    if plan.kind != SPMD:
        return
    import torch_xla.distributed.spmd as xs

    for t in tensors:
        xs.mark_sharding(t, plan.mesh, ("data",) + (None,) * (t.dim() - 1))


def replicated_users(plan: Plan) -> int:
    """Users per batch must divide evenly over an SPMD mesh: the multiple to round up to."""
    return plan.world if plan.kind == SPMD else 1
