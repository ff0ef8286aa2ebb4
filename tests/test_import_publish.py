"""The ratings publish: user numbers in staging, the anime index rebuilt after a bulk publish,
the catalog checked per chunk (real SQLite files)."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from storage import staging
from storage.importers import ImportFileError, import_catalog, import_ratings, ratings_publish
from storage.importers import ratings as ratings_importer
from storage.repository import Store
from tests.test_import import CATALOG, dump, write


@pytest.fixture
def small(tmp_path: Path, store: Store) -> Store:
    import_catalog(store, write(tmp_path, "anime.csv", CATALOG))
    return store


def indexes(store: Store) -> list[str]:
    with closing(sqlite3.connect(store.path)) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'ratings'")
        return sorted(r[0] for r in rows if r[0])


def rows(store: Store) -> list[tuple[str, int, int | None]]:
    return [
        tuple(r)
        for r in store.db.query(
            "SELECT u.platform_user_id, r.anime_id, r.score FROM ratings r "
            "JOIN users u ON u.id = r.user_id ORDER BY 1, 2"
        )
    ]


TEXT = "user_id,anime_id,score\n10,1,8\n2,5,0\n10,30,7\n2,1,3\n7,44,9\n"
EXPECTED = [("10", 1, 8), ("10", 30, 7), ("2", 1, 3), ("2", 5, None), ("7", 44, 9)]


@pytest.mark.parametrize("chunk_rows", [1, 2, 600_000])
def test_chunked_and_one_step_publish_write_the_same_rows_and_keep_the_index(
    small: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_rows: int
):
    monkeypatch.setattr(ratings_importer, "ONE_STEP_ROWS", chunk_rows)
    monkeypatch.setattr(ratings_importer, "PUBLISH_CHUNK_ROWS", chunk_rows)
    monkeypatch.setattr(ratings_importer, "PARSE_CHUNK_ROWS", 2)
    before = indexes(small)
    report = import_ratings(small, write(tmp_path, "r.csv", TEXT))
    assert report.written == 5 and report.users == 3 and report.scored == 4
    assert rows(small) == EXPECTED
    assert indexes(small) == before and "ratings_anime" in before
    assert small.kv.get("import.publishing") is None


def test_a_small_import_into_a_big_table_keeps_the_index_and_a_reimport_writes_nothing(
    small: Store, tmp_path: Path
):
    import_ratings(small, write(tmp_path, "big.csv", TEXT))
    extra = write(tmp_path, "extra.csv", "user_id,anime_id,score\n3,5,6\n")
    assert import_ratings(small, extra).written == 1
    before = dump(small)
    assert import_ratings(small, extra).written == 0
    assert dump(small) == before and "ratings_anime" in indexes(small)


@pytest.mark.parametrize("per_statement", [1, 2, 3, 10])
def test_a_clash_names_its_user_and_line(
    small: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, per_statement: int
):
    """Rows are staged several to a statement: the clash is found, and its line named,
    whether the two rows share a statement, a chunk, or neither."""
    monkeypatch.setattr(staging, "VALUES_PER_STATEMENT", per_statement)
    monkeypatch.setattr(ratings_importer, "PARSE_CHUNK_ROWS", 3)
    path = write(
        tmp_path,
        "r.csv",
        "user_id,anime_id,score\n1,1,8\nbob,5,3\nbob,1,2\nbob,5,3\n1,30,7\nbob,5,4\n",
    )
    before = dump(small)
    with pytest.raises(ImportFileError, match="line 7") as err:
        import_ratings(small, path)
    assert "user bob and anime 5" in str(err.value)
    assert dump(small) == before


@pytest.mark.parametrize("per_statement", [1, 4, 10])
def test_rows_staged_several_to_a_statement_are_all_written_once(
    small: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, per_statement: int
):
    monkeypatch.setattr(staging, "VALUES_PER_STATEMENT", per_statement)
    monkeypatch.setattr(ratings_importer, "PARSE_CHUNK_ROWS", 3)
    text = TEXT + "10,1,8\n"  # an exact duplicate of line 2: counted, written once
    report = import_ratings(small, write(tmp_path, "r.csv", text))
    assert report.written == 5 and report.duplicates == 1
    assert rows(small) == EXPECTED


def test_the_last_step_of_a_chunked_publish_runs_in_a_transaction_of_its_own(
    small: Store,
):
    """The index build waits for every chunk to commit (another connection sees their rows),
    so no chunk's transaction holds the write lock for the sort; the marker goes with it."""
    seen: list[tuple[int, str | None]] = []

    def chunk(conn: sqlite3.Connection, key: tuple[int, ...]) -> int:
        conn.execute("INSERT INTO kv (key, value) VALUES (?, 'x')", (f"chunk{key[0]}",))
        return 1

    def finish(conn: sqlite3.Connection) -> None:
        with closing(sqlite3.connect(small.path)) as other:
            done = other.execute("SELECT COUNT(*) FROM kv WHERE key LIKE 'chunk%'").fetchone()
            marker = other.execute(
                "SELECT value FROM kv WHERE key = ?", (staging.PUBLISHING_KEY,)
            ).fetchone()
        seen.append((done[0], json.loads(marker[0])["import"] if marker else None))

    with staging.Staging(small.path) as stage:
        assert stage.publish_chunks([(1,), (2,), (3,)], chunk, "file.csv", finish) == 3
    assert seen == [(3, "file.csv")]
    assert small.kv.get(staging.PUBLISHING_KEY) is None


def test_an_anime_leaving_the_catalog_before_the_publish_writes_nothing(
    small: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    real_ranges = ratings_publish.user_ranges

    def catalog_changes(*args: object) -> list[tuple[int, int]]:
        with closing(sqlite3.connect(small.path)) as conn, conn:
            conn.execute("DELETE FROM anime WHERE anime_id = 44")
        return real_ranges(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(ratings_publish, "user_ranges", catalog_changes)
    before = [r for r in dump(small) if "44" not in r]
    with pytest.raises(ImportFileError, match="catalog changed"):
        import_ratings(small, write(tmp_path, "r.csv", TEXT))
    assert rows(small) == [] and "ratings_anime" in indexes(small)
    assert [r for r in dump(small) if "44" not in r] == before


def test_an_index_an_interrupted_import_left_dropped_is_back_on_the_next_open(tmp_path: Path):
    path = tmp_path / "crashed.db"
    with Store(path) as store:
        assert "ratings_anime" in indexes(store)
    with closing(sqlite3.connect(path)) as conn:  # what a crash mid-publish leaves behind
        conn.execute("DROP INDEX ratings_anime")
        conn.commit()
    with Store(path) as store:
        assert "ratings_anime" in indexes(store)
