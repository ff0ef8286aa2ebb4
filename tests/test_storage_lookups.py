"""Read-only lookups and the busy-database policy, on real SQLite files and a real second process.

A write waits at most ``BUSY_WAIT_S`` for another writer and then says so (DatabaseBusyError);
reads never wait for a writer (WAL), not even behind this process's own waiting writer.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from storage.db import BUSY_WAIT_S, DatabaseBusyError
from storage.repository import Store
from storage.rows import Anime, RatingStamp

# A second process that takes the write lock, says so, and holds it until told to let go.
_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO kv (key, value) VALUES ('holder', 'x')")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
print("released", flush=True)
"""


@contextmanager
def write_lock_held_elsewhere(path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.communicate("go\n", timeout=30)


def _release(proc: subprocess.Popen[str]) -> None:
    out, _ = proc.communicate("go\n", timeout=30)
    assert "released" in out


@pytest.fixture
def world(store: Store) -> Store:
    store.catalog.upsert(
        [Anime(i, f"Title {i}", ("Action",), "TV", 12, 7.0, 100, False) for i in (1, 2, 3)]
    )
    return store


def test_find_never_creates(world: Store):
    assert world.users.find("telegram", 5) is None
    assert world.users.find_with_stamp("telegram", 5) is None
    assert world.chats.find("telegram", -100) is None
    assert world.stats()["users"] == 0
    world.chats.ensure("telegram", -100, "Club")
    assert world.chats.find("telegram", "-100").title == "Club"


def test_find_with_stamp_is_one_statement_matching_the_stamp(world: Store):
    user = world.users.ensure("telegram", 5, "Ann")
    found = world.users.find_with_stamp("telegram", "5")
    assert found is not None and found.user == user
    assert found.stamp == RatingStamp(0, None, 0.0) == world.ratings.stamp(user.id)
    world.ratings.upsert(user.id, 1, 7)
    world.ratings.upsert(user.id, 2, None, status="plan_to_watch")
    statements: list[str] = []
    world.db.trace(statements.append)
    try:
        found = world.users.find_with_stamp("telegram", 5)
    finally:
        world.db.trace(None)
    assert len(statements) == 1 and statements[0].lstrip().upper().startswith("SELECT")
    assert found is not None and found.stamp == world.ratings.stamp(user.id)
    assert found.stamp.rows == 2 and found.stamp.total == 7.0 and found.stamp.latest
    world.ratings.upsert(user.id, 1, 8)  # any change moves the stamp
    assert world.users.find_with_stamp("telegram", 5).stamp != found.stamp


def test_a_write_against_a_locked_database_gives_up_in_time_then_succeeds(world: Store):
    user = world.users.ensure("telegram", 5)
    with write_lock_held_elsewhere(world.path) as holder:
        started = time.monotonic()
        with pytest.raises(DatabaseBusyError):
            world.ratings.upsert(user.id, 1, 9)
        waited = time.monotonic() - started
        assert waited < 5.0  # the promise: an answer within 5 s
        assert waited >= BUSY_WAIT_S * 0.5  # it did wait for the other writer first
        _release(holder)
    world.ratings.upsert(user.id, 1, 9)
    assert [(r.anime_id, r.score) for r in world.ratings.of_user(user.id)] == [(1, 9)]
    assert world.kv.get("holder") == "x"  # the other process's write landed too


def test_a_write_waits_for_a_short_lock_and_lands(world: Store):
    user = world.users.ensure("telegram", 5)
    with write_lock_held_elsewhere(world.path) as holder:
        threading.Timer(0.5, _release, (holder,)).start()
        world.ratings.upsert(user.id, 2, 6)
    assert [(r.anime_id, r.score) for r in world.ratings.of_user(user.id)] == [(2, 6)]


def test_reads_do_not_wait_for_writers(world: Store):
    user = world.users.ensure("telegram", 5, "Ann")
    world.ratings.upsert(user.id, 3, 4)
    outcome: list[BaseException | None] = []

    def blocked_write() -> None:
        try:
            world.ratings.upsert(user.id, 1, 9)
            outcome.append(None)
        except DatabaseBusyError as exc:
            outcome.append(exc)

    with write_lock_held_elsewhere(world.path) as holder:
        writer = threading.Thread(target=blocked_write)
        writer.start()
        time.sleep(0.2)  # let the writer get into SQLite's busy wait
        started = time.monotonic()
        found = world.users.find_with_stamp("telegram", 5)
        ratings = world.ratings.of_user(user.id)
        read_took = time.monotonic() - started
        still_writing = writer.is_alive()
        writer.join(10)
        _release(holder)
    assert still_writing  # the reads ran while this process's writer was still waiting
    assert read_took < BUSY_WAIT_S / 2  # they did not queue behind it
    assert found is not None and found.stamp.rows == 1
    assert [(r.anime_id, r.score) for r in ratings] == [(3, 4)]
    assert len(outcome) == 1 and isinstance(outcome[0], DatabaseBusyError)


def test_writers_of_one_process_queue_within_the_same_bound(world: Store):
    user = world.users.ensure("telegram", 5)
    inside = threading.Event()
    finish = threading.Event()

    def long_batch() -> None:
        def work(conn: object) -> None:
            inside.set()
            finish.wait(10)

        world.write_batch(work)

    batch = threading.Thread(target=long_batch)
    batch.start()
    try:
        assert inside.wait(10)
        started = time.monotonic()
        with pytest.raises(DatabaseBusyError):
            world.ratings.upsert(user.id, 1, 9)
        assert time.monotonic() - started < 5.0
        assert world.ratings.of_user(user.id) == []  # reads still answer meanwhile
    finally:
        finish.set()
        batch.join(10)
    world.ratings.upsert(user.id, 1, 9)
    assert len(world.ratings.of_user(user.id)) == 1
