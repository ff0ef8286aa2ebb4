"""Importers: real data counts, idempotence, and a malformed input leaves the database as it was."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from storage.importers import (
    ImportFileError,
    import_catalog,
    import_mal_xml,
    import_ratings,
    parse_mal_xml,
    read_capped,
)
from storage.repository import Store

CATALOG = """anime_id,name,genre,type,episodes,rating,members
1,Cowboy Bebop,"Action, Adventure, Sci-Fi",TV,26,8.82,486824
5,Kimi no Na wa.,"Drama, Romance",Movie,1,9.37,200630
30,Gintama&#039;,"Action, Comedy",TV,51,9.04,336376
44,Secret Title,"Hentai",OVA,Unknown,,120
"""


def dump(store: Store) -> list[str]:
    """The whole database as SQL text: equal dumps mean nothing changed."""
    with closing(sqlite3.connect(store.path)) as conn:
        return list(conn.iterdump())


@pytest.fixture
def small(tmp_path: Path, store: Store) -> Store:
    path = tmp_path / "anime.csv"
    path.write_text(CATALOG)
    import_catalog(store, path)
    return store


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_catalog_unescapes_titles_marks_nsfw_and_parses_unknowns(small: Store):
    assert small.catalog.get(30).title == "Gintama'"
    secret = small.catalog.get(44)
    assert secret.nsfw and secret.episodes is None and secret.mal_score is None
    assert small.catalog.get(1).genres == ("Action", "Adventure", "Sci-Fi")
    assert not small.catalog.get(1).nsfw


def test_three_rating_formats(small: Store, tmp_path: Path):
    import_ratings(small, write(tmp_path, "a.csv", "user_id,anime_id,score\n1,1,8\n1,5,0\n"))
    import_ratings(small, write(tmp_path, "b.csv", "user_id,anime_id,rating\n2,1,-1\n2,30,10\n"))
    import_ratings(
        small,
        write(
            tmp_path,
            "c.csv",
            "user_id,anime_id,status,score,num_episodes_watched\n3,1,4,3,5\n3,5,6,0,0\n",
        ),
    )
    rows = {}
    for uid in ("1", "2", "3"):
        user = small.users.find("dataset", uid)
        rows[uid] = {
            r.anime_id: (r.score, r.status, r.source) for r in small.ratings.of_user(user.id)
        }
    assert rows["1"] == {1: (8, None, "dataset"), 5: (None, None, "dataset")}
    assert rows["2"] == {1: (None, None, "dataset"), 30: (10, None, "dataset")}
    assert rows["3"] == {1: (3, "dropped", "dataset"), 5: (None, "plan_to_watch", "dataset")}


def test_reimport_changes_nothing(small: Store, tmp_path: Path):
    path = write(tmp_path, "r.csv", "user_id,anime_id,score\n1,1,8\n1,5,0\n2,30,7\n")
    first = import_ratings(small, path)
    before = dump(small)
    again = import_ratings(small, path)
    assert first.written == 3 and again.written == 0 and again.unchanged == 3
    assert dump(small) == before
    assert import_catalog(small, write(tmp_path, "anime.csv", CATALOG)).written == 0
    assert dump(small) == before


BAD_RATINGS = {
    "bad header": ("user,anime,score\n1,1,8\n", "bad header"),
    "non-numeric score": ("user_id,anime_id,score\n1,1,8\n1,5,great\n", "line 3"),
    "score 11": ("user_id,anime_id,score\n1,1,8\n1,5,11\n", "out of range"),
    "truncated line": ("user_id,anime_id,score\n1,1,8\n1,5\n", "truncated"),
    "unknown anime id": ("user_id,anime_id,score\n1,1,8\n1,999,7\n", "not in the catalog"),
    "same pair twice": ("user_id,anime_id,score\n1,1,8\n1,1,6\n", "twice"),
    "not utf-8": (b"user_id,anime_id,score\n1,1,8\n\xff\xfe,1,2\n", "line 3"),
}


@pytest.mark.parametrize("case", sorted(BAD_RATINGS))
def test_malformed_ratings_leave_the_database_untouched(small: Store, tmp_path: Path, case: str):
    import_ratings(small, write(tmp_path, "ok.csv", "user_id,anime_id,score\n9,1,5\n"))
    before = dump(small)
    text, expected = BAD_RATINGS[case]
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(ImportFileError) as err:
        import_ratings(small, path)
    message = str(err.value)
    assert "bad.csv" in message and expected in message
    assert dump(small) == before


def test_unknown_anime_can_be_skipped_and_is_reported(small: Store, tmp_path: Path):
    path = write(tmp_path, "r.csv", "user_id,anime_id,score\n1,1,8\n1,999,7\n2,998,0\n")
    report = import_ratings(small, path, skip_unknown=True)
    assert report.unknown_anime == 2 and sorted(report.unknown_anime_ids) == [998, 999]
    assert report.written == 1 and "not in the catalog" in report.summary()


def test_exact_duplicate_rows_are_merged_and_counted(small: Store, tmp_path: Path):
    report = import_ratings(
        small, write(tmp_path, "r.csv", "user_id,anime_id,score\n1,1,8\n1,1,8\n")
    )
    assert report.written == 1 and report.duplicates == 1


def test_malformed_catalog_leaves_the_database_untouched(small: Store, tmp_path: Path):
    before = dump(small)
    bad = CATALOG.replace('Drama, Romance",Movie,1,9.37,200630', 'Drama",Movie,one,9.37,2')
    with pytest.raises(ImportFileError, match="episodes"):
        import_catalog(small, write(tmp_path, "anime2.csv", bad))
    with pytest.raises(ImportFileError, match="bad header"):
        import_catalog(small, write(tmp_path, "anime3.csv", "id,title\n1,x\n"))
    assert dump(small) == before


def test_ratings_need_a_catalog(store: Store, tmp_path: Path):
    with pytest.raises(ImportFileError, match="catalog is empty"):
        import_ratings(store, write(tmp_path, "r.csv", "user_id,anime_id,score\n1,1,8\n"))


MAL_XML = """<?xml version="1.0" encoding="UTF-8" ?>
<myanimelist>
  <myinfo><user_name>alice</user_name></myinfo>
  <anime><series_animedb_id>1</series_animedb_id><my_score>9</my_score>
         <my_status>Completed</my_status></anime>
  <anime><series_animedb_id>5</series_animedb_id><my_score>0</my_score>
         <my_status>Plan to Watch</my_status></anime>
  <anime><series_animedb_id>30</series_animedb_id><my_score>2</my_score>
         <my_status>Dropped</my_status></anime>
  <anime><series_animedb_id>777</series_animedb_id><my_score>7</my_score>
         <my_status>Completed</my_status></anime>
</myanimelist>
"""


def test_mal_xml_import_for_a_chat_user(small: Store):
    user = small.users.ensure("telegram", "55", "Alice")
    report = import_mal_xml(small, user, MAL_XML.encode(), "alice.xml")
    assert report.unknown_anime == 1 and report.unknown_anime_ids == [777]
    rows = {r.anime_id: (r.score, r.status, r.source) for r in small.ratings.of_user(user.id)}
    assert rows == {
        1: (9, "completed", "import"),
        5: (None, "plan_to_watch", "import"),
        30: (2, "dropped", "import"),
    }
    assert import_mal_xml(small, user, MAL_XML.encode(), "alice.xml").written == 0


@pytest.mark.parametrize(
    "payload",
    [
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]>'
        "<myanimelist>&lol;</myanimelist>",
        '<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://127.0.0.1/evil.dtd"><myanimelist/>',
    ],
)
def test_mal_xml_with_doctype_or_entities_is_refused(small: Store, payload: str):
    user = small.users.ensure("telegram", "55")
    before = dump(small)
    with pytest.raises(ImportFileError, match="DOCTYPE or entities"):
        import_mal_xml(small, user, payload.encode(), "evil.xml")
    assert dump(small) == before


@pytest.mark.parametrize(
    "payload, expected",
    [
        ("<notmal/>", "not a MyAnimeList export"),
        (
            "<myanimelist><anime><series_animedb_id>x</series_animedb_id></anime></myanimelist>",
            "series_animedb_id",
        ),
        (
            (
                "<myanimelist><anime><series_animedb_id>1</series_animedb_id><my_score>12</my_score>"
                "</anime></myanimelist>"
            ),
            "out of range",
        ),
        ("<myanimelist><anime>", "not a valid XML"),
    ],
)
def test_mal_xml_malformed(payload: str, expected: str):
    with pytest.raises(ImportFileError, match=expected):
        parse_mal_xml(payload.encode(), "list.xml")


def test_a_50_mb_upload_is_refused_before_it_is_read(small: Store, tmp_path: Path):
    path = tmp_path / "huge.xml"
    with path.open("wb") as handle:
        handle.write(b"<myanimelist>")
        handle.truncate(50 * 1024 * 1024)
    before = dump(small)
    with pytest.raises(ImportFileError, match="over the 10 MB limit"):
        read_capped(path)
    with pytest.raises(ImportFileError, match="limit"):
        parse_mal_xml(b" " * (50 * 1024 * 1024), "huge.xml")
    with pytest.raises(ImportFileError, match="limit"):
        import_ratings(small, path, max_bytes=10 * 1024 * 1024)
    assert dump(small) == before


@pytest.mark.slow
def test_real_shared_data_imports_fully_and_idempotently(data_dir: Path, store: Store):
    catalog = import_catalog(store, data_dir / "anime" / "catalog.csv")
    ratings = import_ratings(store, data_dir / "anime" / "animelist.csv")
    stats = store.stats()
    assert (stats["anime"], stats["ratings"], stats["scored"]) == (12_294, 453_101, 358_223)
    assert catalog.written == 12_294 and ratings.written == 453_101 and ratings.users == 4_500
    assert stats["nsfw_anime"] == 1_141
    assert not any("&#039;" in a.title or "&quot;" in a.title for a in store.catalog.all())
    again = import_ratings(store, data_dir / "anime" / "animelist.csv")
    assert again.written == 0 and store.stats() == stats
