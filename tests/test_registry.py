"""The model registry: versions on disk, the atomic SERVING pointer, fallback, cleanup, pruning."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.serving import build_recommender
from bot.settings import Settings
from recommender.scoring import ServingModel
from storage.repository import Store
from storage.rows import Anime
from tests.retrain_helpers import untrained_checkpoint
from training.registry import CHECKPOINT, Registry, RegistryError, load_serving

IDS = [1, 2, 3, 4, 5, 6]


def add_version(registry: Registry, seed: int) -> str:
    work = registry.new_workdir(seed)
    version = registry.next_version()
    untrained_checkpoint(work / CHECKPOINT, IDS, seed=seed, version=version)
    return registry.commit(work, version)


def test_commit_promote_and_pointer(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "models")
    assert reg.serving_path() is None and reg.pointer() is None
    v1 = add_version(reg, 1)
    v2 = add_version(reg, 2)
    assert (v1, v2) == ("v0001", "v0002")
    assert reg.serving_path() is None  # committed is not served
    reg.promote(v1)
    reg.promote(v2)
    doc = json.loads((reg.root / "SERVING").read_text())
    assert doc["version"] == "v0002" and doc["history"] == ["v0002", "v0001"]
    assert reg.serving_path() == reg.checkpoint("v0002")
    assert ServingModel.load(reg.serving_path()).version == "v0002"
    with pytest.raises(RegistryError):
        reg.promote("v0099")
    with pytest.raises(RegistryError):
        reg.checkpoint("../etc")
    # no temporary files left behind by the pointer writes
    assert not [p for p in reg.root.iterdir() if p.name.startswith(".tmp")]


def test_legacy_checkpoint_serves_until_a_version_is_promoted(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "models")
    reg.root.mkdir()
    untrained_checkpoint(reg.legacy_path, IDS, seed=5, version="legacy")
    assert reg.serving_path() == reg.legacy_path
    reg.promote(add_version(reg, 1))
    assert reg.serving_path() == reg.checkpoint("v0001")
    assert [v for v, _ in reg.serving_chain()] == ["v0001", None]


def test_cleanup_removes_leftovers_only(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "models")
    v1 = add_version(reg, 1)
    reg.promote(v1)
    half = reg.new_workdir(7)  # a trainer killed while writing its candidate
    (half / ".model.safetensors.abc.tmp").write_bytes(b"partial")
    (reg.root / ".tmp-SERVING.xyz").write_text("{")  # killed while swapping the pointer
    removed = reg.cleanup()
    assert half in removed and not half.exists()
    assert not (reg.root / ".tmp-SERVING.xyz").exists()
    assert reg.versions() == ["v0001"] and reg.serving_version() == "v0001"
    assert ServingModel.load(reg.serving_path()).version == "v0001"


def test_prune_keeps_newest_and_the_served_fallback(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "models", keep=3)
    for seed in range(1, 8):
        add_version(reg, seed)
    reg.promote("v0001")
    reg.promote("v0002")  # v0002 serves, v0001 is its fallback; v0003.. were rejected
    removed = reg.prune()
    assert reg.versions() == ["v0001", "v0002", "v0005", "v0006", "v0007"]
    assert removed == ["v0003", "v0004"]
    assert reg.next_version() == "v0008"


def test_corrupt_serving_checkpoint_falls_back_loudly(tmp_path: Path, caplog) -> None:
    reg = Registry(tmp_path / "models")
    v1, v2 = add_version(reg, 1), add_version(reg, 2)
    reg.promote(v1)
    reg.promote(v2)
    path = reg.checkpoint(v2)
    path.write_bytes(path.read_bytes()[:-100])  # truncated on disk
    with caplog.at_level(logging.ERROR):
        served = load_serving(reg, ServingModel.load)
    assert served is not None
    assert (served.version, served.path) == ("v0001", reg.checkpoint("v0001"))
    assert served.loaded.version == "v0001"
    assert served.failed == (("v0002", reg.checkpoint("v0002")),)
    assert "SERVING CHECKPOINT UNUSABLE" in caplog.text and "v0002" in caplog.text
    assert reg.serving_version() == "v0002"  # a failed load never moves the pointer


def test_bot_starts_on_the_previous_version_when_serving_is_corrupt(tmp_path: Path, caplog) -> None:
    settings = Settings(database=tmp_path / "bot.db", model_dir=tmp_path / "models", _env_file=None)
    with Store(settings.database) as store:
        store.catalog.upsert(
            [Anime(i, f"Anime {i}", ("A",), "TV", 12, 7.0, 100 * i, False) for i in IDS]
        )
        reg = Registry(settings.model_dir)
        rows = {}
        for seed in (1, 2):
            version = add_version(reg, seed)
            rows[version] = store.versions.add(str(reg.checkpoint(version)), {}, None)
            reg.promote(version)
            store.versions.promote(rows[version])
        reg.checkpoint("v0002").write_bytes(b"\x00" * 64)  # garbage
        with caplog.at_level(logging.ERROR):
            rec = build_recommender(store, settings)
        assert rec.ready and rec.info().version == "v0001"
        assert "SERVING CHECKPOINT UNUSABLE" in caplog.text
        assert reg.serving_version() == "v0002"  # still named: a restored file serves again
        statuses = {r.id: r.status for r in store.versions.all()}
        assert statuses == {rows["v0001"]: "serving", rows["v0002"]: "failed"}
        # everything broken: the bot still starts, without a model
        reg.checkpoint("v0001").write_bytes(b"")
        assert not build_recommender(store, settings).ready


def _catalog_store(path: Path) -> Store:
    store = Store(path)
    store.catalog.upsert(
        [Anime(i, f"Anime {i}", ("A",), "TV", 12, 7.0, 100 * i, False) for i in IDS]
    )
    return store


async def test_a_failed_load_keeps_the_pointer_and_a_restored_file_serves_again(
    tmp_path: Path,
) -> None:
    from training.retrain import RetrainService

    settings = Settings(database=tmp_path / "bot.db", model_dir=tmp_path / "models", _env_file=None)
    store = _catalog_store(settings.database)
    reg = Registry(settings.model_dir)
    v1 = add_version(reg, 1)
    reg.promote(v1)
    row = store.versions.add(str(reg.checkpoint(v1)), {}, None)
    store.versions.promote(row)
    good = reg.checkpoint(v1).read_bytes()
    reg.checkpoint(v1).write_bytes(good[:-100])  # the only version, truncated
    rec = build_recommender(store, settings)
    assert not rec.ready
    assert reg.serving_version() == "v0001"  # the pointer survives the failed load
    assert {r.id: r.status for r in store.versions.all()} == {row: "failed"}
    again = build_recommender(store, settings)  # a restart does not lose it either
    assert not again.ready and reg.serving_version() == "v0001"
    reg.checkpoint(v1).write_bytes(good)  # the operator restores the file
    service = RetrainService(
        store, settings.model_dir, settings.database, swap=rec.swap, follow_interval=0
    )
    text = await service.reload()  # what an admin's /model reload calls
    assert rec.ready and rec.info().version == "v0001", text
    assert text == "Now serving v0001."
    assert {r.id: r.status for r in store.versions.all()} == {row: "serving"}
    # without an admin: the follower keeps retrying while no model serves
    follower = RetrainService(
        store,
        settings.model_dir,
        settings.database,
        swap=again.swap,
        is_ready=lambda: again.ready,
        follow_interval=0.05,
    )
    await follower.start()
    try:
        for _ in range(400):
            if again.ready:
                break
            await asyncio.sleep(0.05)
    finally:
        await follower.stop()
    assert again.ready and again.info().version == "v0001"
    store.close()


def test_serving_from_a_read_only_model_folder_never_writes_there(tmp_path: Path) -> None:
    """`anirec chat` starts and answers; nothing in the model folder is created or changed.

    The folder is made read-only, and, so that the test means something when run as root
    (whom permissions do not stop), every entry's name, size and mtime is compared before
    and after.
    """
    db = tmp_path / "bot.db"
    _catalog_store(db).close()
    models = tmp_path / "models"
    reg = Registry(models)
    reg.promote(add_version(reg, 1))

    def snapshot() -> dict[str, tuple[int, int]]:
        return {
            str(p.relative_to(models)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in [models, *models.rglob("*")]
        }

    before = snapshot()
    modes = {p: p.stat().st_mode for p in [models, *models.rglob("*")]}
    for p in modes:
        p.chmod(0o555 if p.is_dir() else 0o444)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANIREC_")}
    env.update(ANIREC_DATABASE=str(db), ANIREC_MODEL_DIR=str(models), ANIREC_ADMINS="console:me")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bot.cli", "chat", "--user", "me"],
            input="/rate Anime 1 9\n/recommend 2\n/model\n",
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            cwd=tmp_path,
            check=False,
        )
    finally:
        for p, mode in modes.items():
            p.chmod(mode)
    assert done.returncode == 0, done.stderr
    assert "v0001" in done.stdout and "Anime" in done.stdout, done.stdout
    assert snapshot() == before
    assert not (models / ".retrain.lock").exists()


def test_retraining_says_clearly_when_the_model_folder_is_not_writable(tmp_path: Path) -> None:
    """A folder that cannot be created stands in for a read-only one (root ignores modes)."""
    from training import runs

    (tmp_path / "a-file").write_text("not a folder")
    reg = Registry(tmp_path / "a-file" / "models")
    with Store(tmp_path / "bot.db") as store:
        assert runs.recover(store, reg) == []  # starting the bot is fine
        with pytest.raises(runs.ModelDirNotWritable, match="retraining needs write access"):
            runs.claim(store, reg, "admin", "console:me", os.getpid())
        assert store.runs.recent() == []
