"""The catalog from anime-offline-database files: mapping by MyAnimeList id, own ids for the
rest, idempotence, all or nothing, hostile entries, and both layouts, on real SQLite files."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import storage.importers.jsonstream as jsonstream
from bot.core.cards import card
from recommender.recommender import Recommender
from storage.importers import ImportFileError, import_any_catalog, import_offline_catalog
from storage.repository import Store
from storage.schema import OWN_ID_BASE
from tests.offline_db import entry, write_jsonl, write_minified
from tests.test_import import dump

BEBOP = "https://myanimelist.net/anime/1"


def world() -> list[dict[str, Any]]:
    """Cowboy Bebop (in the CSV catalog), a new MAL title, and one MyAnimeList lacks."""
    return [
        entry(
            "Cowboy Bebop (offline spelling)",
            1,
            others=("https://anilist.co/anime/1", "https://kitsu.app/anime/1"),
            synonyms=["カウボーイビバップ", "Bebop"],
            status="FINISHED",
            animeSeason={"season": "SPRING", "year": 1998},
            studios=["sunrise"],
            tags=["action", "space", "bounty hunters"],
            relatedAnime=["https://myanimelist.net/anime/5", "https://anilist.co/anime/999"],
        ),
        entry(
            "Frieren Next Season",
            60001,
            status="UPCOMING",
            type="MOVIE",
            animeSeason={"season": "FALL", "year": 2026},
            tags=["adventure", "fantasy", "science fiction", "elves"],
            synonyms=["Sousou no Frieren 3"],
            relatedAnime=[BEBOP, "https://anidb.net/anime/77"],
        ),
        entry(
            "Only On AniDB",
            others=("https://anidb.net/anime/77", "https://anilist.co/anime/177"),
            type="ONA",
            status="ONGOING",
            tags=["comedy"],
        ),
    ]


@pytest.fixture
def csv_store(tmp_path: Path, store: Store) -> Store:
    from tests.test_import import CATALOG

    path = tmp_path / "anime.csv"
    path.write_text(CATALOG)
    import_any_catalog(store, path)
    return store


def _own_id(store: Store) -> int:
    [anime] = [a for a in store.catalog.all() if a.title == "Only On AniDB"]
    return anime.anime_id


def test_existing_anime_gain_fields_and_keep_their_own(tmp_path, csv_store):
    report = import_offline_catalog(csv_store, write_minified(tmp_path / "db.json", world()))
    assert report.rows == 3
    bebop = csv_store.catalog.get(1)
    assert bebop is not None
    # the main catalog's title, genres and numbers stay
    assert (bebop.title, bebop.genres, bebop.episodes) == (
        "Cowboy Bebop",
        ("Action", "Adventure", "Sci-Fi"),
        26,
    )
    assert (bebop.status, bebop.season, bebop.year, bebop.duration_s) == (
        "FINISHED",
        "SPRING",
        1998,
        1440,
    )
    assert bebop.tags == ("action", "space", "bounty hunters")
    assert bebop.studios == ("sunrise",)
    assert bebop.picture == "https://cdn.myanimelist.net/images/anime/1/1.jpg"
    assert bebop.thumbnail == "https://cdn.myanimelist.net/images/anime/1/1t.jpg"
    aliases = set(csv_store.catalog.aliases())
    assert {("カウボーイビバップ", 1), ("Bebop", 1), ("Sousou no Frieren 3", 60001)} <= aliases
    assert csv_store.catalog.related(1) == [
        ("https://anilist.co/anime/999", None),
        ("https://myanimelist.net/anime/5", 5),
    ]
    assert card(bebop).picture == bebop.picture


def test_new_titles_are_added_with_genres_from_their_tags(tmp_path, csv_store):
    import_offline_catalog(csv_store, write_minified(tmp_path / "db.json", world()))
    frieren = csv_store.catalog.get(60001)
    assert frieren is not None
    assert (frieren.title, frieren.type, frieren.episodes, frieren.status) == (
        "Frieren Next Season",
        "Movie",
        12,
        "UPCOMING",
    )
    # only genres the catalog knows: adventure, and science fiction spelled as Sci-Fi
    assert frieren.genres == ("Adventure", "Sci-Fi")
    assert (frieren.members, frieren.mal_score, frieren.nsfw) == (0, None, False)
    own = _own_id(csv_store)
    assert OWN_ID_BASE <= own < 2**31
    # a related link to an entry without a MAL id resolves to that entry's own id
    assert dict(csv_store.catalog.related(60001)) == {BEBOP: 1, "https://anidb.net/anime/77": own}


def test_own_ids_are_stable_across_imports_and_databases(tmp_path, csv_store):
    import_offline_catalog(csv_store, write_minified(tmp_path / "db.json", world()))
    first = _own_id(csv_store)
    # the next release lists one more provider first: the stored mapping keeps the id
    later = world()
    later[2]["sources"] = ["https://a.example/anime/1", *later[2]["sources"]]
    later[2]["episodes"] = 13
    import_offline_catalog(csv_store, write_minified(tmp_path / "db2.json", later))
    assert _own_id(csv_store) == first
    assert csv_store.catalog.get(first).episodes == 13  # titles it added follow the file
    with Store(tmp_path / "other.db") as other:
        import_offline_catalog(other, write_minified(tmp_path / "db.json", world()))
        assert _own_id(other) == first  # derived from the URL, not from the order of imports


def test_reimport_changes_nothing(tmp_path, csv_store):
    path = write_minified(tmp_path / "db.json", world())
    first = import_offline_catalog(csv_store, path)
    before = dump(csv_store)
    again = import_offline_catalog(csv_store, path)
    assert first.written == 3
    assert (again.written, again.unchanged) == (0, 3)
    assert dump(csv_store) == before


def test_jsonl_and_minified_give_the_same_catalog(tmp_path):
    dumps = []
    for name, write in (
        ("db.jsonl", write_jsonl),
        ("db.json", write_minified),
        ("db.json.gz", write_minified),
        ("db.jsonl.gz", write_jsonl),
    ):
        with Store(tmp_path / f"{name}.db") as store:
            report = import_any_catalog(store, write(tmp_path / name, world()))
            assert report.rows == 3
            dumps.append(dump(store))
    assert all(d == dumps[0] for d in dumps)


def test_data_may_come_before_the_metadata(tmp_path, store):
    import_offline_catalog(store, write_minified(tmp_path / "db.json", world(), data_first=True))
    assert store.catalog.get(60001) is not None


def test_streams_across_chunk_boundaries(tmp_path, store, monkeypatch):
    """A tiny read size cuts every token somewhere: the result is the same as in one piece."""
    entries = [entry(f"Show {i}", 1000 + i, episodes=10**i % 997) for i in range(40)]
    path = write_minified(tmp_path / "db.json", entries)
    monkeypatch.setattr(jsonstream, "_CHUNK", 7)
    report = import_offline_catalog(store, path)
    assert report.rows == 40
    assert store.catalog.get(1039).episodes == 10**39 % 997


def test_a_too_long_entry_is_refused_without_holding_it(tmp_path, store, monkeypatch):
    monkeypatch.setattr(jsonstream, "MAX_ENTRY_CHARS", 3000)
    big = entry("Huge", 7, synonyms=[f"name {i}" for i in range(1000)])
    path = write_minified(tmp_path / "db.json", [entry("Fine", 6), big])
    with pytest.raises(ImportFileError, match="entry 2: longer than 3,000 characters"):
        import_offline_catalog(store, path)
    assert store.catalog.all() == []


def test_a_bad_entry_leaves_the_catalog_as_it_was(tmp_path, csv_store):
    before = dump(csv_store)
    entries = [*world(), entry("Broken Show", 70000, episodes=-1)]
    with pytest.raises(ImportFileError) as caught:
        import_offline_catalog(csv_store, write_minified(tmp_path / "db.json", entries))
    message = str(caught.value)
    assert "entry 4 ('Broken Show', https://anilist.co/anime/" in message
    assert "episodes -1 is out of range" in message
    assert dump(csv_store) == before


HOSTILE = [
    ({"episodes": float("inf")}, "Infinity is not a number"),
    ({"episodes": "12"}, "episodes must be a number"),
    ({"episodes": True}, "episodes must be a number"),
    ({"episodes": 2.5}, "episodes must be a whole number"),
    ({"title": 42}, "title must be text"),
    ({"title": "<b></b>  "}, "empty title"),
    ({"title": "x" * 3000}, "title is longer than"),
    ({"tags": "action"}, "tags must be a list"),
    ({"synonyms": [1, 2]}, "synonyms must be text"),
    ({"type": "MUSIC"}, "type must be one of"),
    ({"status": None}, "status must be one of"),
    ({"animeSeason": {"season": "SPRING", "year": 10**30}}, "number 1000"),
    ({"animeSeason": {"season": "SPRING", "year": 1800}}, "animeSeason.year 1800 is out of"),
    ({"animeSeason": []}, "animeSeason must be an object"),
    ({"duration": {"value": 60, "unit": "MINUTES"}}, "duration.unit"),
    ({"sources": []}, "no sources"),
    ({"sources": ["javascript:alert(1)"]}, "sources must be http"),
    ({"sources": ["https://myanimelist.net/anime/99999999999"]}, "MyAnimeList id 99999999999"),
]


@pytest.mark.parametrize(("fields", "problem"), HOSTILE)
def test_hostile_entries_are_refused_by_name(tmp_path, store, fields, problem):
    bad = {**entry("Hostile", 9), **fields}
    with pytest.raises(ImportFileError, match="line 3") as caught:
        import_offline_catalog(store, write_jsonl(tmp_path / "db.jsonl", [entry("Ok", 8), bad]))
    assert problem in str(caught.value)
    assert store.catalog.all() == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"title": "A", "episodes": NaN}', "NaN is not a number"),
        ('{"title": "A", "sources": ["https://a.example/1"], "episodes": 1e400}', "got inf"),
        ('{"title": "A", "episodes": ' + "9" * 5000 + "}", "out of range"),
        ('{"title": "A", ', "malformed JSON"),
        ("[1, 2]", "must be a JSON object"),
    ],
)
def test_undecodable_lines_are_refused_by_line(tmp_path, store, text, problem):
    path = tmp_path / "db.jsonl"
    path.write_text(json.dumps({"lastUpdate": "2026-01-31"}) + "\n" + text + "\n")
    with pytest.raises(ImportFileError, match="line 2") as caught:
        import_offline_catalog(store, path)
    assert problem in str(caught.value)


def test_markup_and_control_codes_are_cleaned(tmp_path, store):
    hostile = entry(
        "<script>x</script><b>Bold</b> &amp; \x1b[31mred\x07 title",
        11,
        synonyms=["<i>Other</i> name", "", "   "],
        studios=["a, b"],
        picture="http://insecure.example/p.jpg",
        thumbnail="javascript:alert(1)",
    )
    import_offline_catalog(store, write_minified(tmp_path / "db.json", [hostile]))
    anime = store.catalog.get(11)
    assert anime.title == "xBold & red title"
    assert anime.studios == ("a b",)
    assert (anime.picture, anime.thumbnail) == (None, None)
    assert store.catalog.aliases() == [("Other name", 11)]


def test_hentai_tag_marks_nsfw(tmp_path, csv_store):
    import_offline_catalog(
        csv_store,
        write_minified(tmp_path / "db.json", [entry("Adult", 90001, tags=["hentai"])]),
    )
    assert csv_store.catalog.get(90001).nsfw


def test_the_same_anime_twice_is_refused_naming_both(tmp_path, store):
    entries = [entry("First", 12), entry("Second", 12)]
    with pytest.raises(ImportFileError) as caught:
        import_offline_catalog(store, write_minified(tmp_path / "db.json", entries))
    message = str(caught.value)
    assert "entry 2 ('Second'" in message and "entry 1 ('First'" in message
    assert store.catalog.all() == []


def test_not_an_offline_database(tmp_path, store):
    path = tmp_path / "db.json"
    path.write_text('{"lastUpdate": "2026-01-31"}')
    with pytest.raises(ImportFileError, match='no "data" array'):
        import_offline_catalog(store, path)
    path.write_text("[]")
    with pytest.raises(ImportFileError, match="expected a JSON object"):
        import_offline_catalog(store, path)


def test_zst_needs_zstandard(tmp_path, store):
    pytest.importorskip("storage")  # keep the module importable either way
    try:
        import zstandard  # noqa: F401
    except ImportError:
        path = tmp_path / "db.jsonl.zst"
        path.write_bytes(b"\x28\xb5\x2f\xfd")
        with pytest.raises(ImportFileError, match="needs the zstandard module"):
            import_offline_catalog(store, path)
    else:
        pytest.skip("zstandard is installed")


def test_new_titles_become_searchable(tmp_path, csv_store):
    rec = Recommender(csv_store)
    assert not rec.search("Only On AniDB")
    import_offline_catalog(csv_store, write_jsonl(tmp_path / "db.jsonl", world()))
    rec.reload_titles()
    assert rec.search("Only On AniDB")[0].anime.anime_id == _own_id(csv_store)
    assert rec.search("Sousou no Frieren 3")[0].anime.anime_id == 60001


def test_cli_imports_the_offline_database(tmp_path):
    from tests.test_cli_data import anirec

    write_minified(tmp_path / "anime-offline-database-minified.json", world())
    result = anirec(tmp_path, "import", "catalog", "anime-offline-database-minified.json", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["rows"] == 3
    with closing(sqlite3.connect(tmp_path / "cli.db")) as conn:
        assert conn.execute("SELECT count(*) FROM anime").fetchone()[0] == 3


def test_synonym_limit_is_the_alias_limit():
    from storage.aliases import MAX_ALIAS_CHARS
    from storage.importers import offline_entry

    assert offline_entry.MAX_ALIAS_CHARS == MAX_ALIAS_CHARS


def test_a_csv_reimport_keeps_what_the_offline_database_added(tmp_path, csv_store):
    from tests.test_import import CATALOG

    import_offline_catalog(csv_store, write_minified(tmp_path / "db.json", world()))
    gained = csv_store.catalog.get(1)
    (tmp_path / "again.csv").write_text(CATALOG.replace("486824", "486825"))
    import_any_catalog(csv_store, tmp_path / "again.csv")
    after = csv_store.catalog.get(1)
    assert after.members == 486825
    assert (after.picture, after.tags, after.status) == (gained.picture, gained.tags, "FINISHED")
