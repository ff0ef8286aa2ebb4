"""Retraining end to end, with real trainer processes and the real APScheduler.

A small real world (SQLite on disk, planted genre tastes) gets a weak first model v0001 once;
each test works on its own copy. Nothing is mocked: the job is ``python -m training.job``,
signals are real signals, the scheduler is APScheduler's AsyncIOScheduler.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from apscheduler.triggers.interval import IntervalTrigger

from bot.core import Core
from bot.core.types import Caller
from bot.serving import build_recommender
from bot.settings import Settings
from recommender import Recommender
from recommender.scoring import ServingModel
from storage.repository import Store
from tests.retrain_helpers import GATE, GATE_ARGS, job_command, make_world
from training import data as tdata
from training import gate as qgate
from training import runs
from training.job import run_job
from training.registry import Registry
from training.retrain import JobOptions, RetrainService
from training.scheduler import KV_NEXT, RetrainScheduler

pytestmark = pytest.mark.slow

FAST = ["--set", "batch_size=16"]
HANG_GUARD = 300.0  # seconds; only to fail instead of hanging forever, never a timing check


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """The world with a weak first model (3 epochs) promoted as v0001."""
    folder = tmp_path_factory.mktemp("retrain-base")
    db, _ = make_world(folder)
    with Store(db) as store:
        reg = Registry(folder / "models")
        claim = runs.claim(store, reg, "cli", "test", os.getpid())
        rec = run_job(
            store,
            claim.run.id,
            reg.root,
            device="cpu",
            epochs=3,
            gate=GATE,
            overrides={"batch_size": 16},
            threads=1,
        )
    assert rec["decision"] == "promoted", rec
    assert rec["candidate"]["version"] == "v0001"
    return folder


def copy_world(base: Path, tmp_path: Path) -> tuple[Path, Path]:
    target = tmp_path / "w"
    shutil.copytree(base, target)
    return target / "world.db", target / "models"


async def until(predicate, what: str, interval: float = 0.1):
    deadline = asyncio.get_running_loop().time() + HANG_GUARD
    while True:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(interval)


def picks(rec: Recommender, user_id: int) -> list[tuple[int, float]]:
    return [(p.anime.anime_id, round(p.predicted_score, 3)) for p in rec.recommend(user_id, 10)]


def new_runs(store: Store) -> list[dict]:
    return [r for r in store.runs.recent(limit=100) if r.id > 1]


async def test_scheduled_run_promotes_and_the_live_recommender_switches(base, tmp_path):
    db, models = copy_world(base, tmp_path)
    store = Store(db)
    rec = Recommender(store, Registry(models).serving_path())
    assert rec.info().version == "v0001"
    fan = store.users.find("console", "fan0").id
    before = picks(rec, fan)
    announced: list[str] = []

    async def announce(text: str) -> None:
        announced.append(text)

    # This test is about schedule -> train -> gate -> promote -> swap. On the tiny world's
    # holdout (<= 60 users, 3 ratings revealed) two equally good models differ by up to ~0.015
    # NDCG@10 from run to run, so the gate gets a wider NDCG tolerance here; test_gate checks
    # the gate's own rule and the shuffled-scores test below (tests.bad_trainer) checks that a
    # bad candidate fails.
    service = RetrainService(
        store,
        models,
        db,
        swap=rec.swap,
        announce=announce,
        follow_interval=0,
        options=JobOptions(
            device="cpu",
            epochs=10,
            nice=0,
            threads=1,
            extra_args=[*GATE_ARGS, *FAST, "--ndcg-tolerance", "0.03"],
        ),
    )
    scheduler = RetrainScheduler(service, store, trigger=IntervalTrigger(seconds=1))
    service.next_run = scheduler.next_run_time
    await service.start()
    await scheduler.start()
    try:
        assert store.kv.get(KV_NEXT)  # the due time is persisted for the next start
        assert (await service.status()).next_run is not None
        await until(lambda: announced, "the scheduled run's outcome")
    finally:
        await scheduler.stop()
        await service.stop()
    run = new_runs(store)[-1]  # the first scheduled run
    assert (run.trigger, run.requested_by) == ("schedule", "scheduler")
    assert run.status == "finished" and run.decision == "promoted", run
    assert announced[0].startswith(f"Retrain #{run.id}: promoted v0002"), announced
    for side in ("candidate_metrics", "serving_metrics"):
        assert {"rmse", "ndcg_at_10"} <= set(getattr(run, side)), side
    assert run.data_size["chat_users"] == 5 and run.data_size["holdout_dataset_users"] > 0
    # the live recommender switched without a restart, and its answers changed
    assert rec.info().version == "v0002"
    assert picks(rec, fan) != before
    assert Registry(models).serving_version() == "v0002"
    statuses = {r.path.split("/")[-2]: r.status for r in store.versions.all()}
    assert statuses["v0002"] == "serving" and statuses["v0001"] == "retired"
    store.close()


async def test_worse_candidate_is_rejected_and_serving_stays(base, tmp_path):
    db, models = copy_world(base, tmp_path)
    store = Store(db)
    rec = Recommender(store, Registry(models).serving_path())
    told: list[str] = []

    async def notify(text: str) -> None:
        told.append(text)

    service = RetrainService(  # tests.bad_trainer: the job, trained on shuffled scores
        store,
        models,
        db,
        swap=rec.swap,
        follow_interval=0,
        options=JobOptions(
            device="cpu",
            epochs=5,
            nice=0,
            threads=1,
            extra_args=[*GATE_ARGS, *FAST],
            module="tests.bad_trainer",
        ),
    )
    await service.start()
    ticket = await service.request("admin", "console:admin", notify)
    assert ticket.started
    record = await service.wait(ticket.run_id)
    await service.stop()
    assert record["decision"] == "rejected", record
    assert "RMSE" in record["reason"]
    assert record["candidate"]["rmse"] > record["serving"]["rmse"] + GATE.rmse_tolerance
    assert record["serving"]["version"] == "v0001"
    assert told == [runs.outcome_text(runs.get_run(store, ticket.run_id))]
    assert "rejected v0002" in told[0] and "v0001 keeps serving" in told[0]
    assert rec.info().version == "v0001"
    reg = Registry(models)
    assert reg.serving_version() == "v0001"
    assert ServingModel.load(reg.serving_path()).version == "v0001"
    rows = {r.path.split("/")[-2]: r.status for r in store.versions.all()}
    assert rows == {"v0001": "serving", "v0002": "rejected"}
    store.close()
    # `anirec model --json` in another process reads the same state
    env = {**os.environ, "ANIREC_DATABASE": str(db), "ANIREC_MODEL_DIR": str(models)}
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot.cli", "model", "--json"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    doc = json.loads(out.stdout)
    assert doc["serving_version"] == "v0001" and doc["last_run"]["decision"] == "rejected"
    assert "ndcg_at_10" in doc["metrics"]


async def test_killed_trainer_keeps_serving_and_the_next_start_marks_it_failed(base, tmp_path):
    db, models = copy_world(base, tmp_path)
    store = Store(db)
    reg = Registry(models)
    claim = runs.claim(store, reg, "admin", "console:admin", os.getpid())
    run_id = claim.run.id
    log_path = tmp_path / "trainer.log"
    with open(log_path, "wb") as log:  # noqa: ASYNC230 - a local file, instant
        proc = subprocess.Popen(  # noqa: ASYNC220 - starting it is instant
            job_command(run_id, db, models, "--epochs", "400", "--no-early-stop", *FAST),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def training() -> bool:
            if proc.poll() is not None:
                raise AssertionError(
                    f"the trainer exited early ({proc.returncode}):\n"
                    + log_path.read_text()[-3000:]
                )
            run = runs.get_run(store, run_id)
            return run.pid == proc.pid and (run.progress.get("epoch") or 0) >= 2

        await until(training, "the trainer to be a few epochs in")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    run = runs.get_run(store, run_id)
    assert run.status == "running"  # nobody could record anything: kill -9
    leftovers = list(reg.versions_dir.glob(".tmp-run*"))
    assert leftovers, "the killed trainer's work folder should still be there"
    # the bot keeps serving: the serving checkpoint is intact and loadable
    assert reg.serving_version() == "v0001"
    assert ServingModel.load(reg.serving_path()).version == "v0001"
    settings = Settings(database=db, model_dir=models, _env_file=None)
    assert build_recommender(store, settings).info().version == "v0001"
    # the next start recovers
    service = RetrainService(store, models, db, follow_interval=0)
    await service.start()
    run = runs.get_run(store, run_id)
    assert run.status == "failed" and "gone" in (run.error or "") and run.finished_at
    assert not any(p.exists() for p in leftovers)
    assert reg.versions() == ["v0001"]
    assert any(
        e.action == "retrain_failed" and e.details["run_id"] == run_id for e in store.audit.recent()
    )
    again = runs.claim(store, reg, "admin", "console:admin", os.getpid())
    assert again.started  # nothing blocks the next run
    store.runs.update(again.run.id, status="failed", error="test cleanup")
    store.close()


async def test_two_concurrent_requests_start_one_job(base, tmp_path):
    db, models = copy_world(base, tmp_path)
    store = Store(db)
    rec = Recommender(store, Registry(models).serving_path())
    service = RetrainService(
        store,
        models,
        db,
        swap=rec.swap,
        follow_interval=0,
        options=JobOptions(
            device="cpu",
            epochs=400,
            nice=0,
            threads=1,
            extra_args=[*GATE_ARGS, *FAST, "--no-early-stop"],
        ),
    )
    await service.start()
    settings = Settings(database=db, model_dir=models, admins="console:boss", _env_file=None)
    core = Core(store, rec, settings, retrain=service, limiter=None)
    boss = Caller("console", "boss", "boss")
    try:
        a, b = await asyncio.gather(
            service.request("admin", "console:a"), service.request("admin", "console:b")
        )
        assert sorted([a.started, b.started]) == [False, True]
        assert a.run_id == b.run_id
        # another process's view of the same database is blocked too (the pid is alive)
        other = RetrainService(store, models, db, follow_interval=0)
        assert not (await other.request("admin", "console:c")).started

        def epoch_shown():
            running = other.snapshot().running
            return running if running and (running.progress or "").startswith("epoch") else None

        await until(epoch_shown, "progress to show an epoch")
        reply = await core.handle_text(boss, "/retrain")
        assert re.fullmatch(r"Already running \(started .+, epoch \d+/400\)\.", reply.text), (
            reply.text
        )
        model = await core.handle_text(boss, "/model")
        assert "Running: run #" in model.text and "/400" in model.text
    finally:
        await service.stop()  # SIGTERM: the trainer records itself as stopped
    started = new_runs(store)
    assert len(started) == 1, started
    assert started[0].status == "failed" and "stopped" in (started[0].error or "")
    assert Registry(models).serving_version() == "v0001" and rec.info().version == "v0001"
    assert not list(Registry(models).versions_dir.glob(".tmp-*"))
    store.close()


def test_cli_retrain_json(base, tmp_path):
    db, models = copy_world(base, tmp_path)
    env = {**os.environ, "ANIREC_DATABASE": str(db), "ANIREC_MODEL_DIR": str(models)}
    out = subprocess.run(
        [sys.executable, "-m", "bot.cli", "retrain", "--json", "--epochs", "2", "--device", "cpu"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    rec = json.loads(out.stdout)
    assert rec["decision"] in ("promoted", "rejected") and rec["status"] == "finished"
    for side in ("candidate", "serving"):
        assert isinstance(rec[side]["rmse"], float) and isinstance(rec[side]["ndcg_at_10"], float)
    assert rec["serving"]["version"] == "v0001" and rec["candidate"]["version"] == "v0002"
    with Store(db) as store:
        run = runs.get_run(store, rec["run_id"])
        assert (run.trigger, run.decision) == ("cli", rec["decision"])
        assert run.requested_by.startswith("cli")


def test_crontab_day_of_week_numbers_mean_what_crontab_means() -> None:
    from datetime import UTC, datetime, timedelta

    from training.scheduler import ScheduleError, crontab_trigger

    def fire_days(expr: str) -> set[int]:
        trig, t, days = crontab_trigger(expr), datetime(2026, 1, 1, tzinfo=UTC), set()
        while t < datetime(2026, 1, 8, tzinfo=UTC):
            t = trig.get_next_fire_time(None, t + timedelta(seconds=1))
            days.add(t.isoweekday() % 7)  # 0 = Sunday, as crontab counts
        return days

    assert fire_days("0 3 * * 0") == {0} == fire_days("0 3 * * 7") == fire_days("0 3 * * sun")
    assert fire_days("30 3 * * 1-5") == {1, 2, 3, 4, 5}
    assert fire_days("0 3 * * */2") == {0, 2, 4, 6}
    assert fire_days("30 3 * * *") == set(range(7))
    for bad in ("30 3 * *", "61 3 * * *", "0 3 * * 9"):
        with pytest.raises(ScheduleError):
            crontab_trigger(bad)


async def test_a_run_missed_while_down_runs_once_at_start_within_the_grace(base, tmp_path):
    from datetime import UTC, datetime, timedelta

    db, models = copy_world(base, tmp_path)
    store = Store(db)
    service = RetrainService(
        store,
        models,
        db,
        follow_interval=0,
        options=JobOptions(
            device="cpu",
            epochs=400,
            nice=0,
            threads=1,
            extra_args=[*GATE_ARGS, *FAST, "--no-early-stop"],
        ),
    )
    await service.start()
    yearly = "0 0 1 1 *"
    now = datetime.now(UTC)
    store.kv.set(KV_NEXT, (now - timedelta(days=2)).isoformat())  # too long ago
    old = RetrainScheduler(service, store, cron=yearly, misfire_grace_time=3600)
    await old.start()
    await old.stop()
    assert old.caught_up is None and new_runs(store) == []
    assert store.kv.get(KV_NEXT).startswith(f"{now.year + 1}-01-01T00:00")
    due = (now - timedelta(seconds=60)).isoformat()
    store.kv.set(KV_NEXT, due)  # the bot was down when a run was due a minute ago
    scheduler = RetrainScheduler(service, store, cron=yearly, misfire_grace_time=3600)
    await scheduler.start()
    try:
        assert scheduler.caught_up == due
        await until(lambda: new_runs(store), "the missed run to start")
    finally:
        await scheduler.stop()
        await service.stop()
    (run,) = new_runs(store)
    assert run.trigger == "schedule" and run.requested_by == f"scheduler (missed {due})"
    store.close()


def test_a_stale_run_whose_pid_now_belongs_to_another_process_does_not_block(tmp_path):
    """The pid of a dead trainer reused by another live Python process: the run's recorded
    process start time tells them apart; the real trainer (same start time) still blocks."""
    db, _ = make_world(tmp_path)
    reg = Registry(tmp_path / "models")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        start = runs.process_start(other.pid)
        assert start is not None and runs.pid_alive(other.pid)  # pid alone says "alive"
        with Store(db) as store:
            stale = store.runs.start("admin", "console:a", other.pid)
            store.runs.update(
                stale,
                progress={"phase": "training", "owner": {"pid": other.pid, "start": start - 1}},
            )
            claim = runs.claim(store, reg, "admin", "console:b", os.getpid())
            assert claim.started, claim.run
            old = runs.get_run(store, stale)
            assert old.status == "failed" and "gone" in (old.error or "")
            store.runs.update(claim.run.id, status="failed", error="test cleanup")
            # the same pid with its true start time is the trainer: nobody else may start
            live = store.runs.start("admin", "console:c", other.pid)
            store.runs.update(live, progress={"owner": runs.owner_of(other.pid)})
            blocked = runs.claim(store, reg, "admin", "console:d", os.getpid())
            assert not blocked.started and blocked.run.id == live
    finally:
        other.kill()
        other.wait()


def test_after_a_demo_style_model_a_retrain_is_judged_and_promoted(tmp_path):
    """`anirec demo`/`anirec train` keep the gate's fixed holdout out of training, so the
    first retrain compares both models on users neither saw, and a candidate that is not
    worse is promoted."""
    from training.train import train_from_store

    db, _ = make_world(tmp_path)
    models = tmp_path / "models"
    models.mkdir()
    reg = Registry(models)
    with Store(db) as store:
        summary = train_from_store(
            store,
            epochs=3,
            device="cpu",
            out=reg.legacy_path,
            holdout=GATE,
        )
        demo = ServingModel.load(summary.checkpoint)
        arrays = store.ratings.arrays()
        keys = qgate.row_keys(arrays, tdata.user_keys(store))
        held = qgate.build_holdout(arrays, keys, GATE).dataset_users
        assert held and not set(held) & set(demo.meta["train_users"])
        claim = runs.claim(store, reg, "cli", "test", os.getpid())
        rec = run_job(
            store,
            claim.run.id,
            models,
            device="cpu",
            epochs=3,
            gate=dataclasses.replace(GATE, ndcg_tolerance=0.03),
            overrides={"batch_size": 16},
            threads=1,
        )
    assert rec["decision"] == "promoted", rec
    assert "unseen" not in (rec["reason"] or "") and "->" in rec["reason"], rec["reason"]
    assert rec["serving"]["users"] >= len(held)
    assert reg.serving_version() == rec["candidate"]["version"] == "v0001"
    # the job trains what `anirec train` trains: every catalog title, the same content features
    candidate = ServingModel.load(reg.checkpoint("v0001"))
    assert list(candidate.anime_ids) == list(demo.anime_ids)
    assert candidate.content_vocab == demo.content_vocab
    assert rec["data_size"]["anime"] == len(demo.anime_ids)
