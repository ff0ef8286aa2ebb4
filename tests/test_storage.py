"""The repository on a real SQLite file: schema, pragmas, upserts, namespaces, runs and audit."""

from __future__ import annotations

import sqlite3

import pytest

from storage.db import connect, migrate, schema_version
from storage.repository import Store
from storage.rows import Anime, ScoreError
from storage.schema import DATASET_PLATFORM, MIGRATIONS


def _anime(anime_id: int, title: str = "Title", genres=("Action",), nsfw: bool = False) -> Anime:
    return Anime(anime_id, title, tuple(genres), "TV", 12, 7.5, 1000, nsfw)


def test_new_database_is_migrated_with_wal_and_foreign_keys(tmp_path):
    db = connect(tmp_path / "x.db")
    assert migrate(db) == schema_version(db) == len(MIGRATIONS)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    assert {
        "anime",
        "users",
        "ratings",
        "chats",
        "model_versions",
        "training_runs",
        "audit_log",
        "anime_aliases",
    } <= {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    # Opening again applies nothing new and keeps the data.
    db.close()
    again = connect(tmp_path / "x.db")
    assert migrate(again) == len(MIGRATIONS)
    again.close()


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    conn.close()
    with pytest.raises(Exception, match="newer than this Anirec"):
        Store(path)


def test_rating_upsert_keeps_one_row_per_user_and_anime(store: Store):
    store.catalog.upsert([_anime(1), _anime(2)])
    user = store.users.ensure("telegram", 42, "Alice")
    store.ratings.upsert(user.id, 1, 7)
    store.ratings.upsert(user.id, 1, 9)
    store.ratings.upsert(user.id, 2, None, status="plan_to_watch")
    ratings = {r.anime_id: r for r in store.ratings.of_user(user.id)}
    assert ratings[1].score == 9 and ratings[1].source == "chat"
    assert ratings[2].score is None and ratings[2].status == "plan_to_watch"
    assert store.stats()["ratings"] == 2 and store.stats()["scored"] == 1
    assert store.ratings.delete(user.id, 1) is True
    assert store.ratings.delete(user.id, 1) is False


@pytest.mark.parametrize("bad", [0, 11, -1, 7.5, "8", True])
def test_scores_outside_one_to_ten_are_refused(store: Store, bad):
    store.catalog.upsert([_anime(1)])
    user = store.users.ensure("console", "bob")
    with pytest.raises(ScoreError):
        store.ratings.upsert(user.id, 1, bad)
    assert store.ratings.of_user(user.id) == []


def test_unknown_anime_is_refused_by_the_foreign_key(store: Store):
    user = store.users.ensure("console", "bob")
    with pytest.raises(sqlite3.IntegrityError):
        store.ratings.upsert(user.id, 999, 8)


def test_dataset_users_never_collide_with_chat_users(store: Store):
    store.catalog.upsert([_anime(1)])
    chat_user = store.users.ensure("telegram", "7")
    store.write_batch(lambda conn: store.users.ensure_dataset(["7"], conn))
    dataset_user = store.users.find(DATASET_PLATFORM, "7")
    assert dataset_user is not None and dataset_user.id != chat_user.id
    store.ratings.upsert(chat_user.id, 1, 3)
    assert store.ratings.of_user(dataset_user.id) == []


def test_display_name_and_settings(store: Store):
    user = store.users.ensure("discord", "1", "Cara")
    same = store.users.ensure("discord", "1")
    assert same.id == user.id and same.display_name == "Cara"
    assert store.users.ensure("discord", "1", "Cara B").display_name == "Cara B"
    assert store.users.update_settings(user.id, nsfw=True).settings == {"nsfw": True}
    assert store.users.get(user.id).settings == {"nsfw": True}
    assert [u.id for u in store.users.find_by_name("discord", "cara b")] == [user.id]
    chat = store.chats.ensure("telegram", -100, "Anime club")
    assert chat.settings == {}
    assert store.chats.update_settings("telegram", -100, nsfw=False).settings == {"nsfw": False}
    assert store.chats.find("telegram", -100).title == "Anime club"


def test_model_versions_training_runs_and_audit(store: Store):
    run_id = store.runs.start("admin", "telegram:1", pid=123)
    store.runs.update(run_id, progress={"epoch": 3, "epochs": 12})
    first = store.versions.add("models/v1", {"rmse": 1.2}, "abc", run_id)
    second = store.versions.add("models/v2", {"rmse": 1.1}, "def", run_id)
    store.versions.promote(first)
    store.versions.promote(second)
    assert store.versions.serving().id == second
    assert {v.id: v.status for v in store.versions.all()} == {
        first: "retired",
        second: "serving",
    }
    store.runs.update(run_id, status="finished", decision="promoted")
    run = store.runs.recent()[0]
    assert run.progress == {"epoch": 3, "epochs": 12} and run.decision == "promoted"
    with pytest.raises(ValueError):
        store.runs.update(run_id, bogus=1)
    store.audit.record("telegram:1", "retrain", reason="test")
    assert store.audit.recent()[0].details == {"reason": "test"}


def test_interaction_arrays_hold_every_row(store: Store):
    store.catalog.upsert([_anime(1), _anime(2), _anime(3)])
    a = store.users.ensure("console", "a")
    b = store.users.ensure("console", "b")
    store.ratings.upsert(a.id, 1, 8)
    store.ratings.upsert(a.id, 2, None)
    store.ratings.upsert(b.id, 3, 5)
    arrays = store.ratings.arrays()
    assert sorted(
        zip(
            arrays.user_ids.tolist(), arrays.anime_ids.tolist(), arrays.scores.tolist(), strict=True
        )
    ) == sorted([(a.id, 1, 8), (a.id, 2, 0), (b.id, 3, 5)])
    assert set(arrays.platforms) == {"console"}
    assert len(store.ratings.arrays(platforms=["dataset"]).user_ids) == 0
