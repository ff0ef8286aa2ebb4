"""The retraining job: train a candidate, gate it against the serving model, promote or reject.

Run it in its own process (the bot does, so its event loop never waits on training)::

    python -m training.job --run-id N --database anirec.db --model-dir models [--device auto]

The run row ``N`` must exist (``training.runs.claim`` creates it). :func:`run_job` is five named
steps: :func:`prepare` (every list row in the database, data-set rows and chat users' ratings,
minus the gate's holdout), :func:`train` (a candidate into a temporary folder, renamed to the
next version), :func:`evaluate` (candidate and serving model on the same holdout), :func:`judge`
(the gate's decision; on promotion the SERVING pointer is swapped atomically) and
:func:`record` (``training_runs``, ``model_versions``, the audit log). Progress
({"phase", "epoch", "epochs"}) goes to the run row; the final record is printed as JSON on
stdout. ``--no-early-stop`` trains every epoch (a run that is reliably still going).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from recommender.model import ModelConfig
from storage.db import utcnow
from storage.repository import Store
from training import devices, runs
from training import gate as qgate
from training.job_steps import (
    Job,
    JobError,
    JobSettings,
    Trainer,
    evaluate,
    judge,
    prepare,
    progress_writer,
    record,
    train,
)
from training.registry import DEFAULT_KEEP, Registry
from training.runs import get_run
from training.train import train_model

log = logging.getLogger("training.job")

__all__ = ["JobError", "fail_run", "main", "run_job"]


def run_job(
    store: Store,
    run_id: int,
    model_dir: str | Path,
    *,
    device: str = "auto",
    config: str = "default",
    epochs: int | None = None,
    seed: int = 0,
    gate: qgate.GateConfig | None = None,
    keep: int = DEFAULT_KEEP,
    threads: int | None = None,
    early_stop: bool = True,
    overrides: dict[str, Any] | None = None,
    on_epoch: Callable[[int, int], None] | None = None,
    trainer: Trainer = train_model,
) -> dict[str, Any]:
    """Do the whole retrain for run ``run_id`` in this process; returns the run record."""
    settings = JobSettings(
        device, config, epochs, seed, threads, early_stop, tuple((overrides or {}).items())
    )
    registry = Registry(model_dir, keep=keep)
    run = get_run(store, run_id)
    if run.status != "running":
        raise JobError(f"training run #{run_id} is {run.status}, not running")
    store.runs.update(run_id, pid=os.getpid())
    owner = runs.owner_of(os.getpid())
    write = progress_writer(
        store, run_id, {"phase": "loading data", "device": device, "owner": owner}
    )
    # the work folder is removed below, or by recovery after a kill -9
    job = Job(store, run_id, registry, gate or qgate.GateConfig(), write, Path())
    job.workdir = registry.new_workdir(run_id)
    try:
        prepared = prepare(job)
        _result, candidate = train(job, prepared, settings, trainer, on_epoch)
        ev = evaluate(job, candidate, prepared.holdout)
        decision = judge(job, candidate, ev)
        record(job, candidate, ev, decision)
        return runs.record(get_run(store, run_id))
    finally:
        if job.workdir.exists():
            shutil.rmtree(job.workdir, ignore_errors=True)


def fail_run(store: Store, run_id: int, exc: BaseException) -> None:
    """Record a failure in the run row (one line; the traceback goes to the log)."""
    text = str(exc).strip().splitlines()
    message = text[0] if text else type(exc).__name__
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        message = "stopped (interrupted or terminated)"
    try:
        store.runs.update(
            run_id,
            status="failed",
            finished_at=utcnow(),
            error=message,
            progress={"phase": "failed"},
        )
        store.audit.record("trainer", "retrain_failed", run_id=run_id, error=message)
    except Exception:
        log.exception("could not record the failure of run #%s", run_id)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    assert __doc__ is not None
    p = argparse.ArgumentParser(prog="python -m training.job", description=__doc__.split("\n")[0])
    p.add_argument("--run-id", type=int, required=True)
    p.add_argument("--database", type=Path, required=True)
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--device", default="auto", choices=devices.CHOICES)
    p.add_argument("--config", default="default")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", type=int, default=DEFAULT_KEEP, help="model versions kept on disk")
    p.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: one per 4 cores)"
    )
    p.add_argument("--nice", type=int, default=10, help="lower the trainer's CPU priority")
    p.add_argument("--ndcg-tolerance", type=float, default=qgate.GateConfig.ndcg_tolerance)
    p.add_argument("--rmse-tolerance", type=float, default=qgate.GateConfig.rmse_tolerance)
    p.add_argument("--holdout-reveal", type=int, default=qgate.GateConfig.reveal)
    p.add_argument("--holdout-min-scored", type=int, default=None)
    p.add_argument("--holdout-fraction", type=float, default=qgate.GateConfig.dataset_fraction)
    p.add_argument("--holdout-max-users", type=int, default=qgate.GateConfig.dataset_max_users)
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a model config field, e.g. --set batch_size=32",
    )
    p.add_argument("--no-early-stop", action="store_true", help="train every epoch")
    return p.parse_args(argv)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["batch_size=32", "lr=0.01"]`` -> typed values for ModelConfig fields."""
    types = {f.name: type(getattr(ModelConfig(), f.name)) for f in fields(ModelConfig)}
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in types:
            raise JobError(
                f"--set {item!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(types))}"
            )
        kind = types[key]
        try:
            out[key] = (raw.lower() in ("1", "true", "yes")) if kind is bool else kind(raw)
        except ValueError:
            raise JobError(f"--set {item!r}: {raw!r} is not a valid {kind.__name__}") from None
    return out


def gate_config(args: argparse.Namespace) -> qgate.GateConfig:
    """The gate settings given on the command line."""
    return qgate.GateConfig(
        ndcg_tolerance=args.ndcg_tolerance,
        rmse_tolerance=args.rmse_tolerance,
        reveal=args.holdout_reveal,
        min_scored=args.holdout_min_scored,
        dataset_fraction=args.holdout_fraction,
        dataset_max_users=args.holdout_max_users,
    )


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the cleanup in run_job


def main(argv: list[str] | None = None, trainer: Trainer = train_model) -> int:
    """The trainer process; ``trainer`` trains the candidate (tests pass a deliberately bad one)."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s trainer[%(process)d]: %(message)s",
    )
    signal.signal(signal.SIGTERM, _terminate)
    if args.nice:
        with contextlib.suppress(OSError):
            os.nice(args.nice)
    store = Store(args.database)
    try:
        rec = run_job(
            store,
            args.run_id,
            args.model_dir,
            device=args.device,
            config=args.config,
            epochs=args.epochs,
            seed=args.seed,
            gate=gate_config(args),
            keep=args.keep,
            threads=args.threads,
            early_stop=not args.no_early_stop,
            overrides=parse_overrides(args.overrides),
            trainer=trainer,
        )
    except BaseException as exc:
        log.error(
            "run #%s failed: %s",
            args.run_id,
            exc,
            exc_info=not isinstance(exc, KeyboardInterrupt | SystemExit | JobError),
        )
        fail_run(store, args.run_id, exc)
        store.close()
        if isinstance(exc, SystemExit):
            return int(exc.code or 1)
        return 1
    store.close()
    print(json.dumps(rec, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
