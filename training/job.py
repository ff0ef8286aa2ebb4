"""The retraining job: train a candidate, gate it against the serving model, promote or reject.

Run it in its own process (the bot does, so its event loop never waits on training)::

    python -m training.job --run-id N --database anirec.db --model-dir models [--device auto]

The run row ``N`` must exist (``training.runs.claim`` creates it). The job trains on every list
row in the database (data-set rows and chat users' ratings) minus the gate's holdout, writes
the candidate into a temporary folder and renames it to the next version, scores candidate and
serving model on the same holdout, and swaps the SERVING pointer atomically when the gate
passes. Progress ({"phase", "epoch", "epochs"}) and the outcome go to ``training_runs`` and
``model_versions``; the final record is printed as JSON on stdout.

``--shuffle-scores`` is a SABOTAGE SWITCH FOR TESTS: it shuffles the training scores so that
the candidate is worse and the gate must reject it. ``--no-early-stop`` trains every epoch
(tests use it to have a run that is reliably still going).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from storage.db import utcnow
from storage.repository import Store
from training import gate as qgate
from training.registry import CHECKPOINT, Registry, load_serving
from training.runs import get_run, record

log = logging.getLogger("training.job")


class JobError(RuntimeError):
    """The job cannot run (unknown run id, nothing to train on...)."""


def _progress_writer(store: Store, run_id: int, base: dict[str, Any]) -> Callable[..., None]:
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
    keep: int = 5,
    threads: int | None = 2,
    shuffle_scores: bool = False,
    early_stop: bool = True,
    overrides: dict[str, Any] | None = None,
    on_epoch: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Do the whole retrain for run ``run_id`` in this process; returns the run record."""
    from recommender.model import get_config
    from recommender.scoring import ServingModel
    from training import data as tdata
    from training.plots import plot_history
    from training.train import _user_keys, train_model

    gate = gate or qgate.GateConfig()
    registry = Registry(model_dir, keep=keep)
    run = get_run(store, run_id)
    if run.status != "running":
        raise JobError(f"training run #{run_id} is {run.status}, not running")
    store.runs.update(run_id, pid=os.getpid())
    progress: dict[str, Any] = {"phase": "loading data", "device": device}
    write = _progress_writer(store, run_id, progress)
    write(phase="loading data")
    workdir = registry.new_workdir(run_id)  # removed below, or by recovery after a kill -9
    try:
        arrays = store.ratings.arrays()
        if arrays.user_ids.size == 0:
            raise JobError(
                "no ratings to train on: import a data set first (`anirec import ratings PATH`)"
            )
        key_of = _user_keys(store, np.unique(arrays.user_ids))
        keys = qgate.row_keys(arrays, key_of)
        holdout = qgate.build_holdout(arrays, keys, gate)
        # "not interested" rows without a score are not interactions to learn "watch" from
        mask = holdout.train_mask & ~((arrays.statuses == "not_interested") & (arrays.scores == 0))
        scores = arrays.scores.astype(np.float32)[mask]
        if shuffle_scores:  # sabotage for tests: scores no longer belong to their rows
            scored = np.flatnonzero(scores > 0)
            scores[scored] = np.random.default_rng(seed + 99).permutation(scores[scored])
        genres = {a.anime_id: a.genres for a in store.catalog.all()}
        data = tdata.from_arrays(arrays.user_ids[mask], arrays.anime_ids[mask], scores, genres)
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
        store.runs.update(run_id, data_size=data_size)

        changes = dict(overrides or {})
        if not early_stop:
            changes["patience"] = 10**9
        cfg = get_config(config, **changes)
        total = cfg.epochs if epochs is None else int(epochs)

        def progress_cb(epoch: int, n: int) -> None:
            write(phase="training", epoch=epoch, epochs=n)
            if on_epoch:
                on_epoch(epoch, n)

        write(phase="training", epoch=0, epochs=total)
        result = train_model(
            data,
            cfg,
            total,
            seed,
            device,
            progress=progress_cb,
            log=lambda m: log.info("%s", m),
            threads=threads,
        )

        write(phase="saving")
        version = registry.next_version()
        serving_model = result.serving
        serving_model.meta["train_users"] = [
            key_of.get(int(u), str(u)) for u in serving_model.meta["train_users"]
        ]
        serving_model.save(
            workdir / CHECKPOINT,
            version=version,
            run_id=run_id,
            holdout=gate.to_json(),
            shuffled_scores=bool(shuffle_scores),
        )
        try:
            plot_history(
                result.history,
                workdir / "loss.png",
                title=f"anirec {cfg.name} {version} ({result.device})",
            )
        except Exception as exc:
            log.warning("loss plot not written: %s", exc)
        version = registry.commit(workdir, version)
        path = registry.checkpoint(version).resolve()
        write(
            version=version,
            epochs_run=result.epochs_run,
            device=result.device,
            train_seconds=round(result.train_seconds, 2),
        )

        write(phase="evaluating")
        candidate = ServingModel.load(path)  # what serving will load, not the in-memory copy
        served = load_serving(registry, ServingModel.load, store)
        serving_version = served[0] if served else None
        serving = served[2] if served else None
        compare = holdout
        if serving is not None:  # data-set holdout users it trained on would flatter it
            trained_on = set(serving.meta.get("train_users") or ()) & set(holdout.dataset_users)
            compare = holdout.restricted(trained_on)
            if trained_on:
                log.info(
                    "gate: %d holdout users left out (the serving model trained on them)",
                    len(trained_on),
                )
        cand_metrics = qgate.evaluate(candidate, compare)
        serv_metrics = qgate.evaluate(serving, compare) if serving is not None else None
        base = qgate.baseline(compare, candidate.anime_ids)
        decision = qgate.decide(cand_metrics, serv_metrics, base, gate)
        version_id = store.versions.add(
            str(path),
            {
                **cand_metrics,
                "baseline_rmse": base.get("rmse"),
                "baseline_ndcg_at_10": base.get("ndcg_at_10"),
            },
            serving_model.fingerprint,
            run_id=run_id,
        )
        if decision.promote:
            registry.promote(version)  # the atomic step: from here on, the candidate serves
            store.versions.promote(version_id)
        else:
            store.versions.set_status(version_id, "rejected")
        registry.prune()
        write(
            phase="done",
            reason=decision.reason,
            serving_version=serving_version if serving is not None else None,
        )
        store.runs.update(
            run_id,
            status="finished",
            finished_at=utcnow(),
            decision="promoted" if decision.promote else "rejected",
            candidate_metrics=cand_metrics,
            serving_metrics=serv_metrics or {},
        )
        store.audit.record(
            "trainer",
            "retrain_finished",
            run_id=run_id,
            version=version,
            decision="promoted" if decision.promote else "rejected",
            reason=decision.reason,
        )
        log.info(
            "run #%s: %s %s (%s)",
            run_id,
            "promoted" if decision.promote else "rejected",
            version,
            decision.reason,
        )
        return record(get_run(store, run_id))
    finally:
        if workdir.exists():
            shutil.rmtree(workdir, ignore_errors=True)


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
    p = argparse.ArgumentParser(prog="python -m training.job", description=__doc__.split("\n")[0])
    p.add_argument("--run-id", type=int, required=True)
    p.add_argument("--database", type=Path, required=True)
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "xla"))
    p.add_argument("--config", default="default")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", type=int, default=5, help="model versions kept on disk")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
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
    p.add_argument(
        "--shuffle-scores",
        action="store_true",
        help="SABOTAGE SWITCH FOR TESTS: train on shuffled scores (a worse model)",
    )
    return p.parse_args(argv)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["batch_size=32", "lr=0.01"]`` -> typed values for ModelConfig fields."""
    from dataclasses import fields

    from recommender.model import ModelConfig

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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s trainer[%(process)d]: %(message)s",
    )
    signal.signal(signal.SIGTERM, _terminate)
    if args.nice:
        try:
            os.nice(args.nice)
        except OSError:
            pass
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
            shuffle_scores=args.shuffle_scores,
            early_stop=not args.no_early_stop,
            overrides=parse_overrides(args.overrides),
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
