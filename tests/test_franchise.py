"""The franchise graph: title heuristic (true and false merges), related links, watch order,
entry points, next unseen, and the stored table rebuilt on catalog import."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from recommender import franchise_store
from recommender.franchise import FranchiseGraph, base_key, extends, normalise
from storage.repository import Store
from storage.rows import Anime
from tests.offline_db import entry, write_minified


def anime(anime_id: int, title: str, type_: str = "TV", year: int | None = None) -> Anime:
    return Anime(anime_id, title, ("Action",), type_, 12, 7.5, 1000, False, year=year)


CATALOG = [
    anime(1575, "Code Geass: Hangyaku no Lelouch"),
    anime(2904, "Code Geass: Hangyaku no Lelouch R2"),
    anime(16498, "Shingeki no Kyojin"),
    anime(25777, "Shingeki no Kyojin Season 2"),
    anime(23775, "Shingeki no Kyojin Movie 1: Guren no Yumiya", "Movie"),
    anime(121, "Fullmetal Alchemist"),
    anime(5114, "Fullmetal Alchemist: Brotherhood"),
    anime(9253, "Steins;Gate"),
    anime(10863, "Steins;Gate: Oukoubakuko no Poriomania", "Special"),
    anime(11577, "Steins;Gate Movie: Fuka Ryouiki no Déjà vu", "Movie"),
    anime(6, "Love"),
    anime(7, "Love Live! School Idol Project"),
    anime(8, "K"),
    anime(9, "K-On!"),
    anime(10, "Air"),
    anime(11, "Air Gear"),
    anime(12, "Air Movie", "Movie"),
    anime(13, "Monster"),
    anime(14, "Monster Rancher"),
    anime(136, "Hunter x Hunter"),
    anime(11061, "Hunter x Hunter (2011)"),
]


def graph() -> FranchiseGraph:
    return FranchiseGraph.build(CATALOG, [])


def members(g: FranchiseGraph, anime_id: int) -> tuple[int, ...]:
    f = g.franchise_of(anime_id)
    return () if f is None else f.members


def test_title_heuristic_merges_sequels_movies_specials_and_remakes() -> None:
    g = graph()
    assert members(g, 2904) == (1575, 2904)  # R2 after the first season
    assert members(g, 23775) == (16498, 25777, 23775)  # TV in id order, then the movie
    assert members(g, 5114) == (121, 5114)  # a remake: one franchise
    assert members(g, 10863) == (9253, 11577, 10863)  # movie before special
    assert members(g, 11061) == (136, 11061)  # "(2011)" is not part of the name
    assert members(g, 12) == (10, 12)  # a short title merges through markers only
    f = g.franchise_of(25777)
    assert f is not None and f.entry == 16498 and f.name == "Shingeki no Kyojin"


def test_title_heuristic_does_not_merge_different_titles() -> None:
    g = graph()
    for a, b in [(6, 7), (8, 9), (10, 11), (13, 14)]:  # Love/Love Live, K/K-On!, Air/Air Gear
        assert b not in members(g, a) and a not in members(g, b), (a, b)
    assert g.franchise_of(8) is None and g.franchise_of(14) is None
    assert g.relatives(11) == () and g.entry_point(11) == 11


def test_extends_both_directions_and_word_boundaries() -> None:
    assert extends("air", normalise("Air Movie"))
    assert not extends("air", normalise("Air Gear"))
    assert not extends("air gear", normalise("Air"))
    assert not extends("love", normalise("Lovely Complex"))
    assert not extends("k", normalise("K: Return of Kings"))  # too short for a subtitle
    assert extends("naruto", normalise("Naruto: Shippuuden"))
    assert not extends("naruto shippuuden", normalise("Naruto"))
    geass = "Code Geass: Hangyaku no Lelouch"
    assert extends(base_key(geass), normalise(geass + " R2"))


def test_related_links_win_over_titles_and_order_by_year() -> None:
    rows = [
        anime(1, "Alpha", year=2012),
        anime(2, "Totally Different Name", "Movie", year=2010),
        anime(3, "Alpha Season 2", year=2014),
        anime(4, "Beta"),
    ]
    g = FranchiseGraph.build(rows, [(1, 2), (3, 1), (4, 999)])  # 999: not in the catalog
    f = g.franchise_of(3)
    assert f is not None and f.members == (2, 1, 3)  # by year: the 2010 movie first
    assert f.entry == 1  # the first TV entry is where to begin
    assert g.franchise_of(4) is None
    assert g.relatives(1) == (2, 3)


def test_next_unseen_follows_the_order_after_what_started_the_story() -> None:
    g = graph()
    f = g.franchise_of(16498)
    assert f is not None
    assert g.next_unseen(f, [16498]) == 25777
    assert g.next_unseen(f, [16498, 25777]) == 23775
    assert g.next_unseen(f, [23775]) == 16498  # only the movie: begin at the beginning
    assert g.next_unseen(f, f.members) is None
    fma = g.franchise_of(5114)
    assert fma is not None and g.next_unseen(fma, [5114]) is None  # the remake seen: done


def test_ambiguous_base_titles_and_empty_inputs() -> None:
    assert len(FranchiseGraph.build([], [])) == 0
    assert FranchiseGraph.build([anime(1, "X")], []).franchise_of(1) is None


@given(st.text(max_size=60))
def test_normalise_is_stable_and_plain(title: str) -> None:
    once = normalise(title)
    assert normalise(once) == once
    assert once == once.strip() and "  " not in once
    assert once.casefold() == once
    assert not once.startswith("|") and not once.endswith("|")
    assert "|" not in base_key(title)


@given(st.sampled_from([a.title for a in CATALOG]), st.sampled_from(["", " R2", ": X Y"]))
def test_a_title_never_extends_itself(title: str, suffix: str) -> None:
    key = base_key(title)
    assert not extends(key, normalise(title))
    if suffix.strip() and key:
        assert extends(key, normalise(title + suffix)) == (
            len(key) >= (5 if suffix.startswith(":") else 3)
        )


def test_stored_table_is_rebuilt_on_catalog_import(tmp_path: Path, store: Store) -> None:
    path = write_minified(
        tmp_path / "db.json",
        [
            entry("Alpha", 101, relatedAnime=["https://myanimelist.net/anime/102"]),
            entry("Alpha: Side Story", 102, type="OVA"),
            entry("Gamma", 103),
        ],
    )
    from storage.importers import import_offline_catalog

    import_offline_catalog(store, path)
    assert store.franchises.count() == 0
    graph = franchise_store.rebuild(store)
    assert store.franchises.groups() == [((101, 102), 101)]
    assert franchise_store.load(store).franchise_of(102) == graph.franchise_of(102)


def test_cli_import_rebuilds_and_franchise_command_prints_the_order(
    tmp_path: Path, monkeypatch: object
) -> None:
    from bot.cli.common import app

    csv = tmp_path / "anime.csv"
    lines = ["anime_id,name,genre,type,episodes,rating,members"]
    lines += [f'{a.anime_id},"{a.title}",Action,{a.type},12,7.5,1000' for a in CATALOG]
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {"ANIREC_DATABASE": str(tmp_path / "a.db")}
    runner = CliRunner()
    result = runner.invoke(app, ["import", "catalog", str(csv)], env=env)
    assert result.exit_code == 0, result.output
    with Store(tmp_path / "a.db") as s:
        assert ((16498, 25777, 23775), 16498) in s.franchises.groups()
    result = runner.invoke(app, ["franchise", "Shingeki no Kyojin Season 2"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "Shingeki no Kyojin" in lines[0] and "3 titles" in lines[0]
    assert "Shingeki no Kyojin [TV]" in lines[1] and "start here" in lines[1]
    assert "Season 2" in lines[2] and "Movie 1" in lines[3]
    result = runner.invoke(app, ["franchise", "Air Gear"], env=env)
    assert result.exit_code == 0 and "stands alone" in result.output


async def test_scheduled_catalog_refresh_rebuilds_the_table_and_the_live_graph(
    tmp_path: Path, store: Store
) -> None:
    from bot.catalog_refresh import CatalogRefresh
    from recommender.recommender import Recommender
    from tests.test_catalog_refresh import FileServer

    folder = tmp_path / "www"
    folder.mkdir()
    write_minified(
        folder / "anime-offline-database-minified.json",
        [
            entry("Omega", 201, relatedAnime=["https://myanimelist.net/anime/202"]),
            entry("Sequel With Another Name", 202),
        ],
    )
    server = FileServer(folder)
    await server.start()
    try:
        rec = Recommender(store)
        assert rec.franchises().franchise_of(202) is None  # empty catalog, empty graph
        url = f"{server.base}/anime-offline-database-minified.json"
        report = await CatalogRefresh(store, rec, url, cron="0 6 * * 1").refresh()
    finally:
        await server.stop()
    assert report is not None and report.written == 2
    assert store.franchises.groups() == [((201, 202), 201)]
    f = rec.franchises().franchise_of(202)  # the live graph was reread
    assert f is not None and f.members == (201, 202)
