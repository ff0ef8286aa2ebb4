"""A long import in another process never starves chat, stays all or nothing, and streams in
bounded memory (real processes, real SQLite files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage.repository import Store
from storage.schema import DATASET_PLATFORM

ANIME_IDS = range(1, 2001)
WRITE_LIMIT_S = 5.0  # the product's promise: no chat write waits longer than this


def make_catalog(path: Path) -> Path:
    lines = ["anime_id,name,genre,type,episodes,rating,members"]
    lines += [f"{i},Title {i},Drama,TV,12,7.5,{i * 10}" for i in ANIME_IDS]
    path.write_text("\n".join(lines) + "\n")
    return path


def make_ratings(path: Path, users: int, per_user: int = 100, bad_last: bool = False) -> Path:
    with path.open("w") as handle:
        handle.write("user_id,anime_id,score\n")
        for user in range(1, users + 1):
            start = (user * 13) % (len(ANIME_IDS) - per_user)
            handle.write(
                "".join(
                    f"{user},{a},{(user + a) % 11}\n"
                    for a in range(start + 1, start + 1 + per_user)
                )
            )
        if bad_last:
            handle.write(f"{users + 1},1,11\n")
    return path


def anirec(db: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "ANIREC_DATABASE": str(db)}
    env.pop("ANIREC_DEBUG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def rate_while_running(store: Store, importer: subprocess.Popen[str]) -> list[float]:
    """Chat-style rating writes on this process's own connection, every 20 ms, until the
    importer ends; returns how long each took."""
    user = store.users.ensure("telegram", "42", "Alice")
    waits: list[float] = []
    while importer.poll() is None:
        t0 = time.perf_counter()
        store.ratings.upsert(user.id, 1 + len(waits) % 50, 1 + len(waits) % 10)
        waits.append(time.perf_counter() - t0)
        time.sleep(0.02)
    return waits


@pytest.fixture
def catalog_db(tmp_path: Path) -> Path:
    db = tmp_path / "busy.db"
    with Store(db) as store:
        from storage.importers import import_catalog

        import_catalog(store, make_catalog(tmp_path / "catalog.csv"))
    return db


@pytest.mark.slow
def test_chat_writes_pass_during_a_long_import(tmp_path: Path, catalog_db: Path):
    ratings = make_ratings(tmp_path / "ratings.csv", users=8_000)  # 800,000 rows
    with Store(catalog_db) as store:
        importer = anirec(catalog_db, "import", "ratings", str(ratings))
        waits = rate_while_running(store, importer)
        _, err = importer.communicate()
        assert importer.returncode == 0, err
        assert len(waits) > 20  # the import ran long enough to overlap many writes
        assert max(waits) < WRITE_LIMIT_S, f"longest chat write {max(waits):.2f}s"
        stats = store.stats()
        assert stats["ratings"] == 800_000 + min(len(waits), 50)
        assert store.kv.get("import.publishing") is None  # the chunked publish completed


@pytest.mark.slow
def test_an_import_failing_at_its_last_line_publishes_nothing(tmp_path: Path, catalog_db: Path):
    ratings = make_ratings(tmp_path / "ratings.csv", users=3_000, bad_last=True)
    with Store(catalog_db) as store:
        importer = anirec(catalog_db, "import", "ratings", str(ratings))
        waits = rate_while_running(store, importer)
        _, err = importer.communicate()
        assert importer.returncode == 1 and "line 300002" in err and "out of range" in err
        assert max(waits) < WRITE_LIMIT_S
        users = store.db.query(
            "SELECT COUNT(*) FROM users WHERE platform = ?", (DATASET_PLATFORM,)
        )[0][0]
        assert users == 0
        assert store.stats()["ratings"] == min(len(waits), 50)  # only the chat's own


# VmHWM is this process's own peak; ru_maxrss would also count the parent's memory at fork.
MEMORY_PROBE = """
import json, sys
from storage.importers import import_ratings
from storage.repository import Store
with Store(sys.argv[1]) as store:
    report = import_ratings(store, sys.argv[2])
with open("/proc/self/status") as status:
    hwm_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(json.dumps({"rows": report.rows, "peak_mb": hwm_kb / 1024}))
"""


@pytest.mark.slow
def test_import_memory_is_bounded_whatever_the_file_size(tmp_path: Path, catalog_db: Path):
    ratings = make_ratings(tmp_path / "ratings.csv", users=30_000)  # 3,000,000 rows, ~40 MB
    assert ratings.stat().st_size > 35e6
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(catalog_db), str(ratings)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    result = json.loads(done.stdout)
    assert result["rows"] == 3_000_000
    assert result["peak_mb"] < 300, result  # the product's bound, whatever the size
