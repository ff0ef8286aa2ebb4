"""Alias import from anime-offline-database JSON files made by the test (pretty, minified,
JSON Lines), streamed in tiny chunks; all-or-nothing; the CLI command end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import storage.aliases as aliases_mod
from recommender.search import TitleIndex
from storage.aliases import import_aliases, mal_id, parse_aliases
from storage.importers import ImportFileError
from storage.repository import Store
from storage.rows import Anime

CATALOG = [
    Anime(16498, "Shingeki no Kyojin", ("Action",), "TV", 25, 8.5, 900_000, False),
    Anime(5114, "Fullmetal Alchemist: Brotherhood", ("Action",), "TV", 64, 9.2, 800_000, False),
    Anime(1535, "Death Note", ("Mystery",), "TV", 37, 8.7, 1_000_000, False),
]

ENTRIES = [
    {
        "sources": ["https://anidb.net/anime/9541", "https://myanimelist.net/anime/16498"],
        "title": "Shingeki no Kyojin",
        "type": "TV",
        "episodes": 25,
        "synonyms": ["Attack on Titan", "AoT", "進撃の巨人", "L'Attaque des Titans"],
    },
    {
        "sources": ["https://myanimelist.net/anime/5114/"],
        "title": "Fullmetal Alchemist: Brotherhood",
        "synonyms": ["FMA:B", "Hagane no Renkinjutsushi: Fullmetal Alchemist"],
    },
    {"sources": ["https://kitsu.io/anime/1"], "title": "Only On Kitsu", "synonyms": ["OOK"]},
    {
        "sources": ["https://myanimelist.net/anime/999999"],
        "title": "Not In Our Catalog",
        "synonyms": ["Nope"],
    },
]
META = {
    "$schema": "https://example.invalid/schema.json",
    "license": {"name": "ODbL-1.0"},
    "repository": "https://github.com/manami-project/anime-offline-database",
    "lastUpdate": "2026-01-01",
}


def write_pretty(path: Path, entries=ENTRIES) -> Path:
    path.write_text(
        json.dumps({**META, "data": entries}, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    return path


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "a.db") as s:
        s.catalog.upsert(CATALOG)
        yield s


def test_mal_id_from_source_urls():
    assert mal_id("https://myanimelist.net/anime/5114") == 5114
    assert mal_id("https://myanimelist.net/anime/5114/Fullmetal_Alchemist") == 5114
    assert mal_id("http://www.myanimelist.net/anime/7") == 7
    assert mal_id("https://myanimelist.net/manga/5114") is None
    assert mal_id("https://anidb.net/anime/5114") is None


def test_import_reports_and_stores_aliases(store, tmp_path):
    report = import_aliases(store, write_pretty(tmp_path / "db.json"))
    stored = set(store.catalog.aliases())
    assert ("Attack on Titan", 16498) in stored
    assert ("AoT", 16498) in stored
    assert ("L'Attaque des Titans", 16498) in stored  # accented Latin is kept
    assert ("FMA:B", 5114) in stored
    assert ("Shingeki no Kyojin", 16498) not in stored  # the catalog title itself is not an alias
    assert all(alias != "進撃の巨人" for alias, _ in stored)
    assert (report.entries, report.with_mal, report.without_mal) == (4, 3, 1)
    assert report.without_mal_titles == ["Only On Kitsu"]
    assert report.unknown_anime == 1 and report.skipped_scripts == 1
    assert report.written == report.aliases == 5
    again = import_aliases(store, tmp_path / "db.json")
    assert again.written == 0 and again.unchanged == 5
    index = TitleIndex(store.catalog.all(), store.catalog.aliases())
    assert index.search("attack on titan")[0].anime.anime_id == 16498


def test_all_scripts_keeps_other_scripts(store, tmp_path):
    report = import_aliases(store, write_pretty(tmp_path / "db.json"), all_scripts=True)
    assert ("進撃の巨人", 16498) in set(store.catalog.aliases()) and report.skipped_scripts == 0


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
@pytest.mark.parametrize("layout", ["pretty", "minified", "jsonl", "array"])
def test_layouts_and_chunk_boundaries_read_the_same(tmp_path, monkeypatch, chunk, layout):
    monkeypatch.setattr(aliases_mod, "_CHUNK", chunk)
    path = tmp_path / "db.json"
    if layout == "pretty":
        write_pretty(path)
    elif layout == "minified":
        path.write_text(json.dumps({**META, "data": ENTRIES}, separators=(",", ":")))
    elif layout == "jsonl":
        path.write_text("\n".join(json.dumps(x) for x in [META, *ENTRIES]) + "\n")
    else:
        path.write_text(json.dumps(ENTRIES))
    pairs, report = parse_aliases(path, {a.anime_id for a in CATALOG})
    assert report.entries == 4 and report.aliases == 7  # catalog titles are not filtered here
    assert ("Attack on Titan", 16498) in pairs


@pytest.mark.parametrize(
    "text, problem",
    [
        (
            '{"data": [{"title": "A", "sources": ["https://myanimelist.net/anime/1535"]}',
            "malformed JSON",
        ),  # truncated
        (
            '{"data": [{"title": "A", "sources": "https://myanimelist.net/anime/1535"}]}',
            "must be a list of strings",
        ),
        ('{"data": [{"sources": []}]}', 'no "title"'),
        ('{"license": {}}', 'no "data" array'),
        ("hello", "not a JSON file"),
        ('{"data": []} trailing', "unexpected text"),
    ],
)
def test_bad_files_change_nothing(store, tmp_path, text, problem):
    good = (
        '{"title": "Death Note", "synonyms": ["DN"], '
        '"sources": ["https://myanimelist.net/anime/1535"]}'
    )
    path = tmp_path / "bad.json"
    path.write_text(
        text.replace('{"data": [', '{"data": [' + good + ", ", 1)
        if text.startswith('{"data": [{')
        else text
    )
    with pytest.raises(ImportFileError) as info:
        import_aliases(store, path)
    assert problem in str(info.value) and "bad.json" in str(info.value)
    assert store.catalog.aliases() == []


def test_error_names_the_line(store, tmp_path):
    entries = [*ENTRIES[:2], {"title": 5, "sources": []}]
    path = write_pretty(tmp_path / "db.json", entries)
    with pytest.raises(ImportFileError) as info:
        import_aliases(store, path)
    line = info.value.line
    assert line is not None and path.read_text().splitlines()[line - 1].strip() == "{"


def test_size_cap_and_empty_catalog(tmp_path):
    path = write_pretty(tmp_path / "db.json")
    with Store(tmp_path / "empty.db") as empty:
        with pytest.raises(ImportFileError, match="catalog is empty"):
            import_aliases(empty, path)
        empty.catalog.upsert(CATALOG)
        with pytest.raises(ImportFileError, match="limit"):
            import_aliases(empty, path, max_bytes=100)
        with pytest.raises(ImportFileError, match="no such file"):
            import_aliases(empty, tmp_path / "missing.json")


def test_cli_import_aliases_and_search(tmp_path):
    db = tmp_path / "cli.db"
    with Store(db) as s:
        s.catalog.upsert(CATALOG)
    write_pretty(tmp_path / "db.json")
    env = {**os.environ, "ANIREC_DATABASE": str(db), "ANIREC_MODEL_DIR": str(tmp_path / "m")}
    env.pop("ANIREC_DEBUG", None)

    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "bot.cli", *args],
            check=False,
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=300,
        )

    done = run("import", "aliases", "db.json", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["written"] == 5
    found = run("search", "attack on titan", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)[0]["anime_id"] == 16498
    bad = run("import", "aliases", "missing.json")
    assert bad.returncode == 1 and bad.stderr.startswith("error: ") and "no such file" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
