"""Hostile import files: every refusal is a typed error naming file, place and problem, and
leaves the database exactly as it was (no user row either); gzip files import like plain ones."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from bot.core import Caller, Core, Request
from bot.settings import Settings
from recommender import Recommender
from storage.importers import (
    ImportFileError,
    import_catalog,
    import_mal_xml_for,
    import_ratings,
    parse_mal_xml,
)
from storage.repository import Store
from tests.test_import import CATALOG, MAL_XML, dump, write

HUGE = "9" * 5000


def mal_entry(anime_id: str, score: str, title: str = "Cowboy Bebop") -> bytes:
    return (
        "<myanimelist>"
        "<anime><series_animedb_id>5</series_animedb_id><my_score>7</my_score></anime>"
        f"<anime><series_animedb_id>{anime_id}</series_animedb_id>"
        f"<series_title>{title}</series_title><my_score>{score}</my_score></anime>"
        "</myanimelist>"
    ).encode()


MAL_CASES = {
    "score inf": (mal_entry("1", "inf"), "my_score"),
    "score 1e309": (mal_entry("1", "1e309"), "my_score"),
    "score nan": (mal_entry("1", "nan"), "my_score"),
    "score -1": (mal_entry("1", "-1"), "out of range"),
    "5000-digit id": (mal_entry(HUGE, "8"), "out of range"),
    "id 2**63": (mal_entry(str(2**63), "8"), "out of range"),
    "superscript id": (mal_entry("²", "8"), "whole number"),
    "id 0": (mal_entry("0", "8"), "out of range"),
}


@pytest.fixture
def small(tmp_path: Path, store: Store) -> Store:
    import_catalog(store, write(tmp_path, "anime.csv", CATALOG))
    return store


@pytest.mark.parametrize("case", sorted(MAL_CASES))
def test_mal_xml_errors_name_file_entry_and_problem(small: Store, case: str):
    data, problem = MAL_CASES[case]
    before = dump(small)
    with pytest.raises(ImportFileError) as info:
        import_mal_xml_for(small, "telegram", "55", data, "alice.xml")
    message = str(info.value)
    assert message.startswith("alice.xml, entry 2 (anime id "), message
    assert "'Cowboy Bebop'" in message and problem in message, message
    assert len(message) < 300
    assert dump(small) == before  # no user row, no rating


def test_a_refused_list_creates_no_user_but_a_good_one_does(small: Store):
    with pytest.raises(ImportFileError):
        import_mal_xml_for(small, "telegram", "55", mal_entry("1", "inf"), "bad.xml")
    assert small.users.find("telegram", "55") is None
    report = import_mal_xml_for(small, "telegram", "55", MAL_XML.encode(), "alice.xml")
    user = small.users.find("telegram", "55")
    assert user is not None and report.written == 3 and len(small.ratings.of_user(user.id)) == 3


async def test_chat_import_says_what_is_wrong(small: Store):
    settings = Settings(_env_file=None, database=small.path)
    core = Core(small, Recommender(small, None), settings, rate_limited=False)
    alice = Caller("console", "alice", "alice")
    reply = await core.handle(
        Request("import", alice, data=mal_entry("1", "1e309"), filename="list.xml")
    )
    assert reply.kind == "error"
    assert "list.xml" in reply.text and "entry 2" in reply.text and "my_score" in reply.text
    assert "went wrong" not in reply.text
    assert small.users.find("console", "alice") is None  # a refused file creates no user
    good = await core.handle(Request("import", alice, data=MAL_XML.encode(), filename="a.xml"))
    user = small.users.find("console", "alice")
    assert good.kind != "error" and user is not None and user.display_name == "alice"
    assert len(small.ratings.of_user(user.id)) == 3


def test_mal_xml_file_name_control_codes_are_not_echoed():
    with pytest.raises(ImportFileError) as info:
        parse_mal_xml(b"<notmal/>", "evil\x1b[31m\x07.xml")
    assert "\x1b" not in str(info.value) and "\x07" not in str(info.value)


CATALOG_HEADER = "anime_id,name,genre,type,episodes,rating,members\n"
CATALOG_CASES = {
    "rating nan": ("7,X,Drama,TV,12,nan,100", "rating"),
    "rating inf": ("7,X,Drama,TV,12,inf,100", "rating"),
    "rating -7.5": ("7,X,Drama,TV,12,-7.5,100", "rating"),
    "rating 1e3": ("7,X,Drama,TV,12,1e3,100", "rating"),
    "episodes -5": ("7,X,Drama,TV,-5,7.5,100", "episodes"),
    "members -100": ("7,X,Drama,TV,12,7.5,-100", "members"),
    "id 2**63": (f"{2**63},X,Drama,TV,12,7.5,100", "anime_id"),
    "id 5000 digits": (f"{HUGE},X,Drama,TV,12,7.5,100", "anime_id"),
    "id -3": ("-3,X,Drama,TV,12,7.5,100", "anime_id"),
    "arabic digits": ("\u0667,X,Drama,TV,12,7.5,100", "anime_id"),
    "id twice": ("1,Again,Drama,TV,12,7.5,100", "appears twice"),
}


@pytest.mark.parametrize("case", sorted(CATALOG_CASES))
def test_catalog_values_out_of_range_are_refused(small: Store, tmp_path: Path, case: str):
    row, field = CATALOG_CASES[case]
    before = dump(small)
    text = CATALOG + row + "\n"
    with pytest.raises(ImportFileError) as info:
        import_catalog(small, write(tmp_path, "cat.csv", text))
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'cat.csv'}, line 6: "), message
    assert field in message and len(message) < 300
    assert dump(small) == before


def test_ratings_with_huge_numbers_are_refused_by_line(small: Store, tmp_path: Path):
    before = dump(small)
    for text, problem in (
        (f"user_id,anime_id,score\n1,1,8\n1,{2**63},7\n", "anime_id"),
        (f"user_id,anime_id,score\n1,1,8\n1,5,{HUGE}\n", "out of range"),
        ("user_id,anime_id,score\n1,1,8\n1,5,nan\n", "whole number"),
    ):
        with pytest.raises(ImportFileError, match=f"r.csv, line 3: .*{problem}"):
            import_ratings(small, write(tmp_path, "r.csv", text))
    assert dump(small) == before


def test_gzip_files_import_like_plain_ones(store: Store, tmp_path: Path):
    catalog = tmp_path / "catalog.csv.gz"
    catalog.write_bytes(gzip.compress(CATALOG.encode()))
    ratings = tmp_path / "r.csv.gz"
    ratings.write_bytes(gzip.compress(b"user_id,anime_id,score\n1,1,8\n1,5,0\n2,30,9\n"))
    assert import_catalog(store, catalog).written == 4
    assert import_ratings(store, ratings).written == 3
    assert store.stats()["ratings"] == 3
    before = dump(store)
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(gzip.compress(b"user_id,anime_id,score\n1,1,7\n" * 50)[:-30])
    with pytest.raises(ImportFileError, match="broken.csv.gz"):
        import_ratings(store, broken)
    bomb = tmp_path / "bomb.csv.gz"
    bomb.write_bytes(gzip.compress(b"user_id,anime_id,score\n" + b"1,1,7\n" * 400_000))
    with pytest.raises(ImportFileError, match="decompressed, over the 1 MB limit"):
        import_ratings(store, bomb, max_bytes=1_000_000)
    assert dump(store) == before
