"""The retraining job's steps: prepare, train, evaluate, judge (the gate) and record.

:func:`training.job.run_job` runs them in this order in the trainer process; each step is a
function of the :class:`Job` being run and what the steps before it produced, so a test can
run them one by one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recommender.model import ModelConfig, get_config
from recommender.scoring import ServingModel
from storage.db import utcnow
from storage.repository import Store
from training import data as tdata
from training import gate as qgate
from training.registry import CHECKPOINT, Registry, load_serving, record_serving
from training.train import FitResult

log = logging.getLogger("training.job")

Trainer = Callable[..., FitResult]  # train_model's signature; tests pass a saboteur


class JobError(RuntimeError):
    """The job cannot run (unknown run id, nothing to train on...)."""


@dataclass(frozen=True)
class JobSettings:
    """How the candidate is trained."""

    device: str = "auto"
    config: str = "default"
    epochs: int | None = None
    seed: int = 0
    threads: int | None = None  # None: training.devices.training_threads
    early_stop: bool = True
    overrides: tuple[tuple[str, Any], ...] = ()

    def model_config(self) -> ModelConfig:
        changes = dict(self.overrides)
        if not self.early_stop:
            changes["patience"] = 10**9
        return get_config(self.config, **changes)


@dataclass
class Job:
    """One run in progress: where it writes, and how it reports."""

    store: Store
    run_id: int
    registry: Registry
    gate: qgate.GateConfig
    write: Callable[..., None]
    workdir: Path


@dataclass
class Prepared:
    data: tdata.TrainingData
    holdout: qgate.Holdout
    key_of: dict[int, str]


@dataclass
class Candidate:
    version: str
    path: Path
    model: ServingModel
    fingerprint: str


@dataclass
class Evaluation:
    candidate: dict[str, float]
    serving: dict[str, float] | None
    baseline: dict[str, float]
    serving_version: str | None


def progress_writer(store: Store, run_id: int, base: dict[str, Any]) -> Callable[..., None]:
    """Write progress to the run row, at most ~4 times a second (the last epoch always)."""
    last = [0.0]

    def write(**fields: Any) -> None:
        base.update(fields)
        now = time.monotonic()
        final = fields.get("epoch") is not None and fields.get("epoch") == fields.get("epochs")
        if fields.get("epoch") is None or final or now - last[0] >= 0.25:
            last[0] = now
            store.runs.update(run_id, progress=dict(base))

    return write


def prepare(job: Job) -> Prepared:
    """The training rows: every list row minus the gate's holdout and bare "not interested"."""
    store = job.store
    job.write(phase="loading data")
    arrays = store.ratings.arrays()
    if arrays.user_ids.size == 0:
        raise JobError(
            "no ratings to train on: import a data set first (`anirec import ratings PATH`)"
        )
    key_of = tdata.user_keys(store)
    holdout = qgate.build_holdout(arrays, qgate.row_keys(arrays, key_of), job.gate)
    # "not interested" rows without a score are not interactions to learn "watch" from
    mask = holdout.train_mask & ~((arrays.statuses == "not_interested") & (arrays.scores == 0))
    scores = arrays.scores.astype(np.float32)[mask]
    # the same data as `anirec train`: every catalog title gets an index (content-only ones are
    # served by the stand-in) and the content encoder sees each title's full catalog row and
    # its earlier relatives, not the genres alone
    catalog = store.catalog.all()
    genres = {a.anime_id: a.genres for a in catalog}
    relatives = tdata.store_relatives(store, catalog)
    data = tdata.from_arrays(
        arrays.user_ids[mask],
        arrays.anime_ids[mask],
        scores,
        genres,
        catalog=catalog,
        relatives=relatives,
    )
    is_chat = arrays.platforms != "dataset"
    data_size = {
        "rows": int(arrays.user_ids.size),
        "scored_rows": int((arrays.scores > 0).sum()),
        "train_rows": int(data.n_rows),
        "train_users": int(data.n_users),
        "anime": int(data.n_items),
        "chat_users": int(np.unique(arrays.user_ids[is_chat]).size),
        "chat_rows": int(is_chat.sum()),
        **holdout.describe(),
    }
    store.runs.update(job.run_id, data_size=data_size)
    return Prepared(data, holdout, key_of)


def train(
    job: Job,
    prepared: Prepared,
    settings: JobSettings,
    trainer: Trainer,
    on_epoch: Callable[[int, int], None] | None,
) -> tuple[FitResult, Candidate]:
    """Train the candidate and commit it as the next version (not served yet)."""
    from training.plots import plot_history

    cfg = settings.model_config()
    total = cfg.epochs if settings.epochs is None else int(settings.epochs)

    def progress(epoch: int, n: int) -> None:
        job.write(phase="training", epoch=epoch, epochs=n)
        if on_epoch:
            on_epoch(epoch, n)

    job.write(phase="training", epoch=0, epochs=total)
    result = trainer(
        prepared.data,
        cfg,
        total,
        settings.seed,
        settings.device,
        progress=progress,
        log=lambda m: log.info("%s", m),
        threads=settings.threads,
    )
    job.write(phase="saving")
    version = job.registry.next_version()
    model = result.serving
    key_of = prepared.key_of
    model.meta["train_users"] = [key_of.get(int(u), str(u)) for u in model.meta["train_users"]]
    model.save(
        job.workdir / CHECKPOINT, version=version, run_id=job.run_id, holdout=job.gate.to_json()
    )
    try:
        title = f"anirec {cfg.name} {version} ({result.device})"
        plot_history(result.history, job.workdir / "loss.png", title=title)
    except Exception as exc:
        log.warning("loss plot not written: %s", exc)
    version = job.registry.commit(job.workdir, version)
    path = job.registry.checkpoint(version).resolve()
    job.write(
        version=version,
        epochs_run=result.epochs_run,
        device=result.device,
        train_seconds=round(result.train_seconds, 2),
    )
    # what serving will load, not the in-memory copy
    return result, Candidate(version, path, ServingModel.load(path), str(model.fingerprint))


def evaluate(job: Job, candidate: Candidate, holdout: qgate.Holdout) -> Evaluation:
    """Candidate and serving model on the same holdout users, none of which either trained on."""
    job.write(phase="evaluating")
    served = load_serving(job.registry, ServingModel.load)
    record_serving(job.store, served, [path for _v, path in served.failed] if served else ())
    serving = served.loaded if served else None
    compare = holdout
    if serving is not None:  # data-set holdout users it trained on would flatter it
        trained_on = set(serving.meta.get("train_users") or ()) & set(holdout.dataset_users)
        compare = holdout.restricted(trained_on)
        if trained_on:
            log.info(
                "gate: %d holdout users left out (the serving model trained on them)",
                len(trained_on),
            )
    return Evaluation(
        qgate.evaluate(candidate.model, compare),
        qgate.evaluate(serving, compare) if serving is not None else None,
        qgate.baseline(compare, candidate.model.anime_ids),
        served.version if served else None,
    )


def judge(job: Job, candidate: Candidate, ev: Evaluation) -> qgate.Decision:
    """The gate's decision; a promotion swaps the SERVING pointer (the atomic step)."""
    decision = qgate.decide(ev.candidate, ev.serving, ev.baseline, job.gate)
    version_id = job.store.versions.add(
        str(candidate.path),
        {
            **ev.candidate,
            "baseline_rmse": ev.baseline.get("rmse"),
            "baseline_ndcg_at_10": ev.baseline.get("ndcg_at_10"),
        },
        candidate.fingerprint,
        run_id=job.run_id,
    )
    if decision.promote:
        job.registry.promote(candidate.version)  # from here on, the candidate serves
        job.store.versions.promote(version_id)
    else:
        job.store.versions.set_status(version_id, "rejected")
    job.registry.prune()
    return decision


def record(job: Job, candidate: Candidate, ev: Evaluation, decision: qgate.Decision) -> None:
    """The outcome in the run row and the audit log."""
    outcome = "promoted" if decision.promote else "rejected"
    job.write(phase="done", reason=decision.reason, serving_version=ev.serving_version)
    job.store.runs.update(
        job.run_id,
        status="finished",
        finished_at=utcnow(),
        decision=outcome,
        candidate_metrics=ev.candidate,
        serving_metrics=ev.serving or {},
    )
    job.store.audit.record(
        "trainer",
        "retrain_finished",
        run_id=job.run_id,
        version=candidate.version,
        decision=outcome,
        reason=decision.reason,
    )
    log.info("run #%s: %s %s (%s)", job.run_id, outcome, candidate.version, decision.reason)
