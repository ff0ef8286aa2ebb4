"""Training runs across processes: one at a time, dead runs recovered, records for people.

Why a file lock and the database together: the run row says which process trains (its pid and,
in ``progress.owner``, that process's start time, so a pid reused by another program is not
mistaken for the trainer), so a bot and an `anirec retrain` started side by side see each
other's run; the ``flock`` on ``model_dir/.retrain.lock`` makes "look for a live run, else
insert mine" one step, so two processes asking at the same moment cannot both start. A run
whose trainer is gone (kill -9, crash, reboot) is marked failed on the next claim or start, and
leftover temporary files are removed.

Serving never writes to the model folder: the lock file is only created when there is
something to claim or clean up, and a folder that is not writable stops retraining (with a
message that says so), never the bot.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storage.db import utcnow
from storage.repository import Store
from storage.rows import TrainingRun
from training.registry import Registry, version_row

log = logging.getLogger(__name__)

LOCK_NAME = ".retrain.lock"


def pid_alive(pid: int | None) -> bool:
    """True when ``pid`` is a running (not zombie) process on this machine that could be ours."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
        # a recycled pid: some other program now has it (ours are Python processes)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().lower()
        return not cmdline or b"python" in cmdline or b"anirec" in cmdline
    except (OSError, IndexError):
        return True


def process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot: /proc/PID/stat field 22), or None
    when it cannot be read. A pid and its start time name one process, even after pid reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def owner_of(pid: int) -> dict[str, int | None]:
    """The identity a run records for its trainer process (see :func:`run_alive`)."""
    return {"pid": pid, "start": process_start(pid)}


def run_alive(run: TrainingRun) -> bool:
    """Is the process that owns this running run still the one that started it?"""
    pid = run.pid
    if pid is None or not pid_alive(int(pid)):
        return False
    owner = (run.progress or {}).get("owner")
    if isinstance(owner, dict) and owner.get("pid") == pid and owner.get("start") is not None:
        return bool(process_start(int(pid)) == owner["start"])  # same pid, other process: dead
    return True


class ModelDirNotWritable(RuntimeError):
    """Retraining needs to write to the model folder (serving does not)."""


@contextlib.contextmanager
def run_lock(model_dir: str | Path) -> Iterator[None]:
    """Exclusive across processes for the few milliseconds of a claim or a recovery."""
    folder = Path(model_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fh = open(folder / LOCK_NAME, "a+")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ModelDirNotWritable(
            f"the model folder {folder} is not writable ({exc.strerror or exc}): retraining "
            "needs write access there (serving does not)"
        ) from None
    with fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@dataclass(frozen=True)
class Claim:
    """Either our new run (``started``) or the live run that is already going."""

    started: bool
    run: TrainingRun


def progress_text(progress: dict[str, Any] | None) -> str | None:
    """ "epoch 3/12", "evaluating", ... from a training_runs.progress document."""
    if not progress:
        return None
    phase = progress.get("phase")
    if phase == "training" and progress.get("epoch") is not None:
        return f"epoch {progress['epoch']}/{progress.get('epochs', '?')}"
    return str(phase) if phase else None


def _fail_dead(store: Store, run: TrainingRun, registry: Registry) -> None:
    pid = run.pid
    message = f"the trainer process ({pid}) is gone: killed or crashed before finishing"
    fields: dict[str, Any] = {"status": "failed", "finished_at": utcnow(), "error": message}
    version = (run.progress or {}).get("version")
    pointer = registry.pointer()
    if version and pointer and pointer.version == version:
        fields["decision"] = "promoted"  # it died after the atomic pointer swap
    store.runs.update(run.id, **fields)
    store.audit.record("trainer", "retrain_failed", run_id=run.id, error=message)
    log.warning("training run #%s marked failed: %s", run.id, message)


def recover(store: Store, registry: Registry) -> list[int]:
    """Mark runs whose process is gone as failed; if none is alive, remove temporary files.

    Returns the ids of the runs marked failed. A model folder that is not writable is logged
    (retraining is off) and left alone.
    """
    running = store.runs.recent("running", limit=1000)
    failed: list[int] = []
    if running or registry.leftovers():  # else nothing to do: the model folder is not touched
        try:
            with run_lock(registry.root):
                failed = _recover_locked(store, registry)
        except ModelDirNotWritable as exc:
            log.warning("%s; retraining is off until it is", exc)
    version = registry.serving_version()  # model_versions in line with what the pointer names
    if version:
        row = version_row(store, registry.checkpoint(version))
        if row is not None and row.status not in ("serving", "failed"):
            store.versions.promote(row.id)
    return failed


def _recover_locked(store: Store, registry: Registry) -> list[int]:
    failed = []
    alive = False
    for run in store.runs.recent("running", limit=1000):
        if run_alive(run):
            alive = True
        else:
            _fail_dead(store, run, registry)
            failed.append(run.id)
    if not alive:
        registry.cleanup()
    return failed


def claim(
    store: Store, registry: Registry, trigger: str, requested_by: str | None, pid: int
) -> Claim:
    """Start a run owned by ``pid`` unless a live one exists (then return that one).

    Raises :class:`ModelDirNotWritable` when the model folder cannot be written.
    """
    with run_lock(registry.root):
        for run in store.runs.recent("running", limit=1000):
            if run_alive(run):
                return Claim(False, run)
            _fail_dead(store, run, registry)
        registry.cleanup()  # nobody trains now: leftovers are garbage
        run_id = store.runs.start(trigger, requested_by, pid)
        store.runs.update(run_id, progress={"phase": "starting", "owner": owner_of(pid)})
        store.audit.record(requested_by or trigger, "retrain_start", run_id=run_id, trigger=trigger)
        return Claim(True, get_run(store, run_id))


def get_run(store: Store, run_id: int) -> TrainingRun:
    run = store.runs.get(run_id)
    if run is None:
        raise LookupError(f"training run #{run_id} not found")
    return run


def _metric_block(metrics: dict[str, Any] | None, version: str | None) -> dict[str, Any]:
    metrics = dict(metrics or {})
    return {
        "version": version,
        "rmse": metrics.pop("rmse", None),
        "ndcg_at_10": metrics.pop("ndcg_at_10", None),
        **metrics,
    }


def record(run: TrainingRun) -> dict[str, Any]:
    """The run as `anirec retrain --json` prints it (stable keys, metrics side by side)."""
    progress = run.progress or {}
    return {
        "run_id": run.id,
        "status": run.status,
        "decision": run.decision,
        "reason": progress.get("reason"),
        "trigger": run.trigger,
        "requested_by": run.requested_by,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "error": run.error,
        "candidate": _metric_block(run.candidate_metrics, progress.get("version")),
        "serving": _metric_block(run.serving_metrics, progress.get("serving_version")),
        "data_size": run.data_size or {},
        "epochs": progress.get("epochs_run", progress.get("epochs")),
        "device": progress.get("device"),
        "train_seconds": progress.get("train_seconds"),
    }


def outcome_text(run: TrainingRun) -> str:
    """One line for the admin: promoted / rejected / failed, with the numbers."""
    rec = record(run)
    if rec["status"] == "failed":
        return f"Retrain #{rec['run_id']} failed: {rec['error'] or 'unknown error'}"
    cand, serv = rec["candidate"], rec["serving"]

    def fmt(v: Any, spec: str) -> str:
        return format(v, spec) if isinstance(v, int | float) else "-"

    numbers = (
        f"NDCG@10 {fmt(serv['ndcg_at_10'], '.3f')} -> {fmt(cand['ndcg_at_10'], '.3f')}, "
        f"RMSE {fmt(serv['rmse'], '.3f')} -> {fmt(cand['rmse'], '.3f')}"
    )
    if rec["decision"] == "promoted":
        return f"Retrain #{rec['run_id']}: promoted {cand['version']} ({numbers})."
    stays = f"; {serv['version']} keeps serving" if serv.get("version") else ""
    return (
        f"Retrain #{rec['run_id']}: rejected {cand['version']} ({rec['reason'] or numbers}){stays}."
    )
