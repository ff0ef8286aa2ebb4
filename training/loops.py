"""The two training loops: the hybrid model (users as batches of lists) and the seed model
(score pairs). Each returns the epochs it ran and its samples per second; on XLA every step ends
with ``xm.optimizer_step`` + ``torch_xla.sync()`` and no step calls ``.item()``. The hybrid
loop runs data-parallel when the device's plan says so (:mod:`training.distributed`); the seed
loop always trains on one device.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from recommender.model import HybridRecommender, ModelConfig
from training import data as tdata
from training import devices, distributed, heap, steps
from training.batches import (
    Batch,
    RowBatches,
    sample_negatives,
    validation_mask,
    visible_mask,
)
from training.evaluate import like_min

Progress = Callable[[int, int], None]
Log = Callable[[str], None]


def new_history() -> dict[str, list[float]]:
    return {"train_mse": [], "train_ce": [], "val_mse": [], "val_ce": []}


@dataclass
class LoopInput:
    """What both loops train on and report to."""

    model: HybridRecommender
    data: tdata.TrainingData
    train_users: np.ndarray
    val_users: np.ndarray
    cfg: ModelConfig
    dev: devices.DeviceInfo
    epochs: int
    seed: int
    progress: Progress | None
    log: Log
    history: dict[str, list[float]] = field(default_factory=new_history)


class _HybridSteps:
    """Batches and losses of one hybrid run (layout and parallel plan in
    :mod:`training.steps`): full softmax unless the config asks for sampled negatives on a
    catalog larger than the sample."""

    def __init__(self, run: LoopInput) -> None:
        data, cfg, plan = run.data, run.cfg, run.dev.plan
        self.run, self.plan = run, plan
        scale = (data.score_range[1] - data.score_range[0]) / 2.0
        self.like = like_min(data.score_range)
        self.sampled = bool(cfg.negatives) and cfg.negatives < data.n_items
        layout = steps.layout_for(run.dev.kind, self.sampled)
        users = steps.users_per_step(cfg.batch_size, plan)
        self.loss_fn = steps.HybridLoss(run.model, layout, users, scale, self.like, plan)
        self.step_fn = distributed.wrap(self.loss_fn, plan, run.dev.device)
        if os.environ.get("ANIREC_COMPILE") == "1" and run.dev.kind == "cuda":
            self.step_fn = torch.compile(self.step_fn)  # type: ignore[assignment]

    def batches(
        self, users: np.ndarray, vis: np.ndarray, rng: np.random.Generator | None, shard: bool
    ) -> RowBatches:
        plan = self.plan if shard else distributed.Plan()
        return steps.host_batches(self.run.data, users, self.run.cfg.batch_size, vis, rng, plan)

    def train_loss(self, rows: Batch, neg: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """(objective to minimise, MSE, softmax loss); the objective adds the content
        stand-in's terms, and under DDP each term is rescaled so that the averaged gradient is
        the whole global batch's."""
        mse, ce, c_mse, c_ce = self.step_fn(rows, neg)
        w, wc = self.run.cfg.rank_weight, self.run.cfg.content_weight
        if self.plan.kind != distributed.DDP:
            return mse + w * ce + wc * (c_mse + w * c_ce), mse, ce
        share = distributed.global_share(steps.target_counts(rows, self.like), self.plan)
        mse_part, ce_part = (mse + wc * c_mse) * share[0], (ce + wc * c_ce) * share[1]
        return mse_part + w * ce_part, mse, ce

    def negatives(self, gen: torch.Generator) -> torch.Tensor | None:
        if not self.sampled:
            return None
        neg = sample_negatives(self.run.cfg, self.run.data.n_items, gen)
        return neg.to(self.run.dev.device) if neg is not None else None


def _on_device(dev: devices.DeviceInfo, batches: Iterable[Batch]) -> Iterator[Batch]:
    loader: Iterator[Batch] = iter(devices.device_loader(dev, batches))
    return loader


def _hybrid_epoch(
    steps_: _HybridSteps,
    opt: torch.optim.Optimizer,
    rng: np.random.Generator,
    gen: torch.Generator,
) -> tuple[float, float]:
    """One pass over the training users; returns the mean train MSE and softmax loss (on
    this worker's share of each batch). No step reads a value back from the device."""
    run = steps_.run
    run.model.train()
    visible = visible_mask(run.data, run.cfg, rng)
    batches = steps_.batches(run.train_users, visible, rng, shard=True)
    tot_mse = torch.zeros((), device=run.dev.device)
    tot_ce = torch.zeros((), device=run.dev.device)
    for batch in _on_device(run.dev, batches):
        opt.zero_grad(set_to_none=True)
        objective, mse, ce = steps_.train_loss(batch, steps_.negatives(gen))
        objective.backward()  # type: ignore[no-untyped-call]
        devices.optimizer_step(run.dev, opt)
        devices.sync(run.dev)
        tot_mse = tot_mse + mse.detach()
        tot_ce = tot_ce + ce.detach()
    n = len(batches)
    return float(tot_mse.cpu()) / n, float(tot_ce.cpu()) / n


def _hybrid_validate(steps_: _HybridSteps, val_visible: np.ndarray) -> tuple[float, float]:
    """Validation MSE and softmax loss (80% of each validation user's list shown); every DDP
    rank sees every validation user, so all take the same schedule and stopping decisions."""
    run = steps_.run
    run.model.eval()
    with torch.no_grad():
        v_mse = torch.zeros((), device=run.dev.device)
        v_ce = torch.zeros((), device=run.dev.device)
        vb = steps_.batches(run.val_users, val_visible, None, shard=False)
        for batch in _on_device(run.dev, vb):
            mse, ce, _, _ = steps_.loss_fn(batch, None)
            v_mse, v_ce = v_mse + mse, v_ce + ce
            devices.sync(run.dev)
    return float(v_mse.cpu()) / len(vb), float(v_ce.cpu()) / len(vb)


@dataclass
class _EarlyStop:
    """Keeps the best weights by validation loss; says when patience ran out."""

    patience: int
    best: float = math.inf
    bad: int = 0
    state: dict[str, torch.Tensor] | None = None

    def update(self, loss: float, model: torch.nn.Module) -> None:
        if loss < self.best - 1e-4:
            self.best, self.bad = loss, 0
            self.state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        else:
            self.bad += 1

    @property
    def done(self) -> bool:
        return self.bad >= self.patience


def train_hybrid(run: LoopInput) -> tuple[int, float]:
    """AdamW on MSE + softmax, LR halved on a validation plateau, early stopping. On the CPU
    the step's large buffers are reused from the heap (:func:`training.heap.steady_heap`)."""
    with heap.steady_heap() if run.dev.kind == "cpu" else contextlib.nullcontext():
        return _train_hybrid(run)


def _train_hybrid(run: LoopInput) -> tuple[int, float]:
    cfg, data, history = run.cfg, run.data, run.history
    opt = devices.adamw(run.dev, run.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1)
    rng = np.random.default_rng(run.seed)
    gen = torch.Generator().manual_seed(run.seed)
    val_visible = validation_mask(data, run.val_users, run.seed)
    hsteps = _HybridSteps(run)
    stop = _EarlyStop(cfg.patience)
    samples, epoch = 0, 0
    per_epoch = int(data.indptr[run.train_users + 1].sum() - data.indptr[run.train_users].sum())
    t_loop = time.perf_counter()
    for epoch in range(run.epochs):
        mse, ce = _hybrid_epoch(hsteps, opt, rng, gen)
        samples += per_epoch
        history["train_mse"].append(mse)
        history["train_ce"].append(ce)
        if run.val_users.size:
            vm, vc = _hybrid_validate(hsteps, val_visible)
            history["val_mse"].append(vm)
            history["val_ce"].append(vc)
            val_loss = vm + cfg.rank_weight * vc
            sched.step(val_loss)
            stop.update(val_loss, run.model)
            run.log(
                f"epoch {epoch + 1}: train mse {mse:.4f} ce {ce:.4f} | val mse {vm:.4f} ce {vc:.4f}"
            )
        if run.progress:
            run.progress(epoch + 1, run.epochs)
        if stop.done:
            break
    seconds = time.perf_counter() - t_loop
    if stop.state is not None:
        run.model.load_state_dict(stop.state)
    return epoch + 1, samples / max(seconds, 1e-9)


def _pair_batches(data: tdata.TrainingData, sel: np.ndarray, b: int) -> Iterator[Batch]:
    """(user, anime, score, weight) batches of ``b`` pairs; the last padded with weight 0."""
    for start in range(0, sel.size, b):
        chunk = sel[start : start + b]
        pad = b - chunk.size
        w = np.r_[np.ones(chunk.size, np.float32), np.zeros(pad, np.float32)]
        chunk = np.r_[chunk, np.zeros(pad, np.int64)] if pad else chunk
        yield (
            torch.from_numpy(data.users[chunk]),
            torch.from_numpy(data.items[chunk]),
            torch.from_numpy(data.scores[chunk]),
            torch.from_numpy(w),
        )


def train_seed(run: LoopInput) -> tuple[int, float]:
    """The origin loop: (user, anime) -> score pairs, MSE, fixed-size padded batches. Every
    user is trained (each has its own embedding), so there is no validation split here."""
    data, cfg, dev, model = run.data, run.cfg, run.dev, run.model
    rows = np.flatnonzero(np.isin(data.users, run.train_users) & data.scored)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(run.seed)
    samples, epoch = 0, 0
    t_loop = time.perf_counter()
    for epoch in range(run.epochs):
        model.train()
        tot = torch.zeros((), device=dev.device)
        n = 0
        batches = list(_pair_batches(data, rng.permutation(rows), cfg.batch_size))
        for u, i, s, w in _on_device(dev, batches):
            opt.zero_grad(set_to_none=True)
            pred = model.forward_pairs(u, i)
            loss = (((pred - s) ** 2) * w).sum() / w.sum()
            loss.backward()  # type: ignore[no-untyped-call]
            devices.optimizer_step(dev, opt)
            devices.sync(dev)
            tot, n = tot + loss.detach(), n + 1
        samples += rows.size
        run.history["train_mse"].append(float(tot.cpu()) / max(n, 1))
        if run.progress:
            run.progress(epoch + 1, run.epochs)
        run.log(f"epoch {epoch + 1}: train mse {run.history['train_mse'][-1]:.4f}")
    seconds = time.perf_counter() - t_loop
    return epoch + 1, samples / max(seconds, 1e-9)
