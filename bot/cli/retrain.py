"""``anirec retrain`` (the bot's retraining job, run here and now) and ``anirec model``."""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
import signal
from typing import Any

import typer

from bot.cli.common import app, console, open_store, out, progress_bar, settings
from storage.repository import Store
from training.registry import Registry


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "-" if value is None else str(value)


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _claim_or_exit(store: Store, registry: Registry) -> int:
    """Our new run's id; exits 1 when another run is going or the model folder is read-only."""
    from training import runs

    try:
        claim = runs.claim(store, registry, "cli", _who(), os.getpid())
    except runs.ModelDirNotWritable as exc:
        console.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    if not claim.started:
        run = claim.run
        progress = runs.progress_text(run.progress)
        console.print(
            f"already running (run #{run.id}, started {run.started_at}"
            + (f", {progress}" if progress else "")
            + ")",
            markup=False,
        )
        raise typer.Exit(1)
    return int(claim.run.id)


@app.command()
def retrain(
    as_json: bool = typer.Option(False, "--json", help="print the run record as JSON"),
    device: str = typer.Option(
        None, "--device", help="auto, cpu, cuda or xla (default: ANIREC_DEVICE)"
    ),
    epochs: int = typer.Option(None, "--epochs", min=1, help="epochs (default: the config's)"),
    config: str = typer.Option("default", "--config", help="model config name"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Retrain now: train on all data, gate against the serving model, promote if not worse.

    The same job the bot runs at night; it refuses to start while another run is going.
    """
    from training import devices, runs
    from training.job import fail_run, run_job

    cfg = settings()
    device = device or cfg.device
    if device not in devices.CHOICES:
        raise typer.BadParameter(f"--device must be one of {', '.join(devices.CHOICES)}")
    registry = Registry(cfg.model_dir, keep=cfg.retrain_keep)
    with open_store(cfg) as store:
        run_id = _claim_or_exit(store, registry)
        bar, update = progress_bar("training")
        # SIGTERM unwinds like Ctrl-C, so the run is recorded as stopped and temp files go
        previous = signal.signal(signal.SIGTERM, _terminate)
        try:
            with bar:
                rec = run_job(
                    store,
                    run_id,
                    cfg.model_dir,
                    device=device,
                    config=config,
                    epochs=epochs,
                    seed=seed,
                    keep=cfg.retrain_keep,
                    on_epoch=update,
                )
        except BaseException as exc:
            fail_run(store, run_id, exc)
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)
        text = runs.outcome_text(runs.get_run(store, run_id))
    if as_json:
        out.print_json(json.dumps(rec, default=str))
        return
    out.print(text, markup=False)
    if rec.get("decision") == "promoted":
        out.print("a running bot picks the new version up within a minute", markup=False)


@app.command()
def model(
    as_json: bool = typer.Option(False, "--json", help="print as JSON"),
) -> None:
    """The serving model version, its holdout metrics, the last and the next retrain."""
    from training.retrain import RetrainService

    cfg = settings()
    with open_store(cfg) as store:
        status = RetrainService(store, cfg.model_dir, cfg.database).snapshot()
    doc = {
        "serving_version": status.serving_version,
        "serving_path": status.serving_path,
        "trained_at": status.trained_at,
        "metrics": status.serving_metrics,
        "last_run": None if status.last_run is None else dataclasses.asdict(status.last_run),
        "next_run": status.next_run,
        "running": None
        if status.running is None
        else {
            "run_id": status.running.run_id,
            "started_at": status.running.started_at,
            "progress": status.running.progress,
        },
    }
    if as_json:
        out.print_json(json.dumps(doc, default=str))
        return
    if status.serving_version is None:
        out.print("serving: no model trained yet (run `anirec retrain` or `anirec demo`)")
    else:
        out.print(
            f"serving: {status.serving_version} ({status.serving_path}), trained "
            f"{_fmt(status.trained_at)}",
            markup=False,
        )
        if status.serving_metrics:
            out.print(
                "metrics: "
                + ", ".join(f"{k} {_fmt(v)}" for k, v in sorted(status.serving_metrics.items())),
                markup=False,
            )
    if status.running is not None:
        r = status.running
        out.print(
            f"running: run #{r.run_id} started {r.started_at}"
            + (f", {r.progress}" if r.progress else ""),
            markup=False,
        )
    last = status.last_run
    out.print(
        "last run: "
        + (
            "none yet"
            if not last
            else f"#{last.id} ({last.trigger}) {last.status}, "
            f"{last.decision or 'no decision'}, started "
            f"{last.started_at}"
        ),
        markup=False,
    )
    out.print(f"next scheduled run: {status.next_run or 'not scheduled'}", markup=False)
