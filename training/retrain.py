"""Retraining from inside the bot: the trainer runs as a child process, never on the loop.

:class:`RetrainService` implements the bot core's ``RetrainControl`` port. A request claims a
run (one at a time, also across processes: see :mod:`training.runs`), starts
``python -m training.job`` with asyncio's subprocess support (the loop only waits on the pipe
and the exit), and a watcher task reads the outcome from the run row when the child exits: on
promotion it calls ``swap(path)`` (the bot passes ``recommender.swap``) in a worker thread, then
tells the admin who asked (``notify``) and the admin channel (``announce``).

Device: the job gets the configured device (``auto`` by default), so on a TPU host with
PyTorch/XLA installed in the trainer's Python (``python`` option: the XLA virtualenv) it trains
on XLA; checkpoints written there load on the bot's plain CPU torch.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from storage.db import utcnow
from storage.repository import Store
from storage.rows import TrainingRun
from training import runs
from training.registry import Registry, load_serving, record_serving, version_row
from training.retrain_types import Notify, RetrainStatus, RetrainTicket

log = logging.getLogger(__name__)

# the project root, put on the trainer's path (its Python may be another virtualenv: XLA)
PROJECT_ROOT = str(Path(__file__).resolve().parents[1])


@dataclass(frozen=True)
class JobOptions:
    """How the trainer process is started."""

    device: str = "auto"
    config: str = "default"
    epochs: int | None = None
    seed: int = 0
    keep: int = 5
    threads: int | None = None  # None: the trainer picks (training.devices.training_threads)
    nice: int = 10
    python: str = sys.executable  # e.g. the PyTorch/XLA virtualenv's python on a TPU host
    extra_args: Sequence[str] = ()  # more `python -m training.job` options (tests, tuning)
    module: str = "training.job"  # the job's entry (a module that calls training.job.main)

    def command(self, run_id: int, database: Path, model_dir: Path) -> list[str]:
        cmd = [
            self.python,
            "-m",
            self.module,
            "--run-id",
            str(run_id),
            "--database",
            str(database),
            "--model-dir",
            str(model_dir),
            "--device",
            self.device,
            "--config",
            self.config,
            "--seed",
            str(self.seed),
            "--keep",
            str(self.keep),
            "--nice",
            str(self.nice),
        ]
        if self.epochs is not None:
            cmd += ["--epochs", str(self.epochs)]
        if self.threads is not None:
            cmd += ["--threads", str(self.threads)]
        return cmd + list(self.extra_args)


def _ticket(run: TrainingRun, started: bool, message: str = "") -> RetrainTicket:
    return RetrainTicket(started, run.id, run.started_at, runs.progress_text(run.progress), message)


class RetrainService:
    """The ``RetrainControl`` of the running bot (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        model_dir: str | Path,
        database: str | Path,
        *,
        options: JobOptions | None = None,
        swap: Callable[[Path], Any] | None = None,
        is_ready: Callable[[], bool] | None = None,
        announce: Notify | None = None,
        next_run: Callable[[], datetime | None] | None = None,
        log_dir: str | Path | None = None,
        follow_interval: float = 30.0,
    ) -> None:
        self.store = store
        self.registry = Registry(model_dir, keep=(options or JobOptions()).keep)
        self.database = Path(database)
        self.options = options or JobOptions()
        self.swap = swap
        self.is_ready = is_ready  # does the live recommender hold a model at all?
        self.announce = announce
        self.next_run = next_run
        self.log_dir = Path(log_dir) if log_dir else self.registry.root / "logs"
        self._lock = asyncio.Lock()
        self._proc: asyncio.subprocess.Process | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._done: dict[int, asyncio.Future[None]] = {}
        self.follow_interval = follow_interval
        self._follower: asyncio.Task[None] | None = None
        self._served: str | None = None  # the registry version the recommender holds

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Recover from a previous life: dead runs failed, temporary files removed."""
        failed = await asyncio.to_thread(runs.recover, self.store, self.registry)
        for run_id in failed:
            log.warning(
                "retraining: run #%s was left running by a process that is gone; marked failed",
                run_id,
            )
        self._served = await asyncio.to_thread(self.registry.serving_version)
        if self.swap is not None and self.follow_interval > 0:
            self._follower = asyncio.create_task(self._follow(), name="retrain-follow")

    async def stop(self, wait: bool = False) -> None:
        """Stop our trainer (SIGTERM: it records itself as failed), or wait for it to finish."""
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
            self._follower = None
        proc, watcher = self._proc, self._watcher
        if proc is not None and proc.returncode is None and not wait:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        if watcher is not None:
            try:
                await asyncio.wait_for(asyncio.shield(watcher), timeout=None if wait else 30)
            except TimeoutError:
                if proc is not None and proc.returncode is None:
                    proc.kill()
                await watcher

    # -- RetrainControl --------------------------------------------------------------------------
    async def request(
        self, trigger: str, requested_by: str | None, notify: Notify | None = None
    ) -> RetrainTicket:
        async with self._lock:
            try:
                claim = await asyncio.to_thread(
                    runs.claim, self.store, self.registry, trigger, requested_by, os.getpid()
                )
            except runs.ModelDirNotWritable as exc:
                log.error("retraining: %s", exc)
                return RetrainTicket(False, message=f"Cannot retrain: {exc}.")
            if not claim.started:
                return _ticket(claim.run, False)
            run_id = claim.run.id
            try:
                proc = await self._spawn(run_id)
            except Exception as exc:
                await asyncio.to_thread(self._fail, run_id, f"could not start the trainer: {exc}")
                raise
            self._proc = proc
            await asyncio.to_thread(
                self.store.runs.update,
                run_id,
                pid=proc.pid,
                progress={"phase": "starting", "owner": runs.owner_of(proc.pid)},
            )
            self._done[run_id] = asyncio.get_running_loop().create_future()
            self._watcher = asyncio.create_task(
                self._watch(proc, run_id, notify), name=f"retrain-{run_id}"
            )
            log.info(
                "retraining: run #%s started (%s, by %s), trainer pid %s",
                run_id,
                trigger,
                requested_by or "-",
                proc.pid,
            )
            return _ticket(dataclasses.replace(claim.run, pid=proc.pid), True)

    async def status(self) -> RetrainStatus:
        return await asyncio.to_thread(self.snapshot)

    # -- helpers for the scheduler, the CLI and tests ----------------------------------------------
    async def wait(self, run_id: int) -> dict[str, Any]:
        """The run record once run ``run_id`` (started by this service) is over."""
        fut = self._done.get(run_id)
        if fut is not None:
            await asyncio.shield(fut)
        return await asyncio.to_thread(lambda: runs.record(runs.get_run(self.store, run_id)))

    @property
    def running_pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    # -- internals ---------------------------------------------------------------------------------
    async def _spawn(self, run_id: int) -> asyncio.subprocess.Process:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        cmd = self.options.command(run_id, self.database.resolve(), self.registry.root.resolve())
        # the project root on the path: the trainer's Python may be another virtualenv (XLA)
        root = PROJECT_ROOT
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p),
        }
        logfile = open(self.log_dir / f"run-{run_id}.log", "ab")  # noqa: ASYNC230, SIM115
        try:
            return await asyncio.create_subprocess_exec(
                *cmd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=logfile,
                stderr=logfile,
                env=env,
                start_new_session=True,
            )  # a Ctrl-C in the bot's terminal is the bot's to handle
        finally:
            logfile.close()

    def _fail(self, run_id: int, message: str) -> None:
        run = runs.get_run(self.store, run_id)
        if run.status == "running":
            self.store.runs.update(
                run_id,
                status="failed",
                finished_at=utcnow(),
                error=message,
                progress={"phase": "failed"},
            )
            self.store.audit.record("trainer", "retrain_failed", run_id=run_id, error=message)
        self.registry.cleanup()

    async def _watch(
        self, proc: asyncio.subprocess.Process, run_id: int, notify: Notify | None
    ) -> None:
        try:
            code = await proc.wait()
            run = await asyncio.to_thread(runs.get_run, self.store, run_id)
            if run.status == "running":  # died without recording anything (kill -9, OOM)
                how = f"signal {-code}" if code < 0 else f"exit code {code}"
                await asyncio.to_thread(
                    self._fail, run_id, f"the trainer process ended with {how} before finishing"
                )
                run = await asyncio.to_thread(runs.get_run, self.store, run_id)
            text = runs.outcome_text(run)
            if run.decision == "promoted" and self.swap is not None:
                text = await self._swap_in(run, text)
            log.info("retraining: %s", text)
            await self._tell(notify, text)
        except Exception:
            log.exception("retraining: watching run #%s failed", run_id)
        finally:
            if self._proc is proc:
                self._proc = None
            fut = self._done.get(run_id)
            if fut is not None and not fut.done():
                fut.set_result(None)

    async def _swap_in(self, run: TrainingRun, text: str) -> str:
        version = (run.progress or {}).get("version")
        path = self.registry.checkpoint(version) if version else self.registry.serving_path()
        if path is None:
            return text + " (no checkpoint to load!)"
        swap = self.swap
        if swap is None:
            return text
        try:  # loading a checkpoint is CPU work: off the loop
            result = await asyncio.to_thread(swap, path)
            if asyncio.iscoroutine(result):
                await result
            self._served = version
        except Exception as exc:
            log.error("retraining: the promoted checkpoint %s could not be loaded: %s", path, exc)
            return text + f" But loading it failed ({exc}); the old model keeps serving."
        return text + " Now serving it."

    async def reload(self) -> str:
        """Load the serving model again through the registry (the admin's ``/model reload``;
        the follower retries it while no model serves). Returns a line for the admin."""
        if self.swap is None:
            return "This process serves no model."
        swap = self.swap
        pointer = await asyncio.to_thread(self.registry.serving_version)
        served = await asyncio.to_thread(load_serving, self.registry, swap)
        failed = [path for _v, path in served.failed] if served else []
        if served is None:
            failed = [path for _v, path in self.registry.serving_chain()]
        try:
            await asyncio.to_thread(record_serving, self.store, served, failed)
        except Exception as exc:
            log.warning("retraining: could not record the serving model: %s", exc)
        if served is None:
            return "No model could be loaded (see the log); the bot keeps trying."
        self._served = pointer
        name = served.version or "the legacy checkpoint"
        note = f" ({len(served.failed)} newer version(s) failed to load)" if served.failed else ""
        log.info("retraining: serving %s%s", name, note)
        return f"Now serving {name}{note}."

    async def _follow(self) -> None:
        """Swap in versions promoted by another process (`anirec retrain` beside the bot), and
        keep trying while no model serves (a checkpoint restored on disk comes back)."""
        while True:
            await asyncio.sleep(self.follow_interval)
            if self._proc is not None:
                continue  # our own run swaps when it ends
            try:
                current = await asyncio.to_thread(self.registry.serving_version)
                missing = self.is_ready is not None and not self.is_ready()
                if not missing and (current is None or current == self._served):
                    continue
                await self.reload()
            except Exception as exc:
                log.error("retraining: could not load the serving model: %s", exc)

    async def _tell(self, notify: Notify | None, text: str) -> None:
        for target in (notify, self.announce):
            if target is None:
                continue
            try:
                await target(text)
            except Exception:
                log.exception("retraining: could not deliver the outcome")

    def snapshot(self) -> RetrainStatus:
        """The status, read synchronously (the CLI's `anirec model`; ``status`` off the loop)."""
        from recommender.checkpoint import CheckpointError, read_metadata
        from training.scheduler import KV_NEXT

        last = self.store.runs.recent(limit=1)
        running = None
        for run in self.store.runs.recent("running", limit=10):
            if runs.run_alive(run):
                running = _ticket(run, False)
                break
        next_run = self.next_run() if self.next_run else None
        status_args: dict[str, Any] = {
            "last_run": last[0] if last else None,
            "next_run": (
                next_run.isoformat()
                if next_run
                else None
                if self.next_run
                else self.store.kv.get(KV_NEXT)
            ),
            "running": running,
        }
        path = self.registry.serving_path()
        if path is None:
            return RetrainStatus(**status_args)
        version = self.registry.serving_version()
        metrics: dict[str, float] = {}
        trained_at = None
        try:
            meta = read_metadata(path)
            trained_at = meta.get("trained_at")
            version = version or str(meta.get("version", "legacy"))
            metrics = {
                k: v for k, v in (meta.get("metrics") or {}).items() if isinstance(v, int | float)
            }
        except CheckpointError as exc:
            log.error("retraining: cannot read the serving checkpoint's metadata: %s", exc)
        row = version_row(self.store, path)
        if row is not None:  # the gate's holdout numbers say more than training's own
            metrics = {
                k: v for k, v in (row.metrics or {}).items() if isinstance(v, int | float)
            } or metrics
        return RetrainStatus(version, str(path), metrics, trained_at, **status_args)
