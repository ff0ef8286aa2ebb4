"""Title search: exact ids, typos, prefixes, generated abbreviations, aliases, NSFW."""

from __future__ import annotations

from pathlib import Path

import pytest

from recommender import Recommender, UnknownTitleError
from recommender.search import TitleIndex, normalise, short_forms
from storage.repository import Store
from storage.rows import Anime


def _a(
    anime_id: int,
    title: str,
    members: int = 1000,
    nsfw: bool = False,
    genres: tuple[str, ...] = ("Action",),
) -> Anime:
    return Anime(anime_id, title, genres, "TV", 12, 8.0, members, nsfw)


CATALOG = [
    _a(16498, "Shingeki no Kyojin", 900_000),
    _a(25777, "Shingeki no Kyojin Season 2", 400_000),
    _a(22961, "Sidonia no Kishi", 200_000),
    _a(5114, "Fullmetal Alchemist: Brotherhood", 800_000),
    _a(121, "Fullmetal Alchemist", 600_000),
    _a(72, "Full Metal Panic? Fumoffu", 100_000),
    _a(9253, "Steins;Gate", 700_000),
    _a(1535, "Death Note", 1_000_000),
    _a(20, "Naruto", 700_000),
    _a(1735, "Naruto: Shippuuden", 500_000),
    _a(6547, "K-On!", 300_000),
    _a(30276, "One Punch Man", 600_000),
    _a(11061, "Hunter x Hunter (2011)", 500_000),
    _a(4000, "Okami no Yuki", 5_000),
    _a(9999, "Secret Night Kingdom", 300_000, nsfw=True, genres=("Hentai",)),
]


@pytest.fixture(scope="module")
def index() -> TitleIndex:
    return TitleIndex(CATALOG, [("Attack on Titan", 16498), ("FMA:B", 5114)])


def top(index: TitleIndex, text: str, **kw) -> str:
    return index.search(text, **kw)[0].anime.title


def test_normalise_strips_case_accents_and_punctuation():
    assert normalise("Steins;Gate") == "steins gate"
    assert normalise("  Ōkami no   YUKI! ") == "okami no yuki"
    assert normalise("Re:Zero") == "re zero"


def test_short_forms_include_initials_and_split_compounds():
    vocab = {"full", "metal", "alchemist", "brotherhood", "panic"}
    forms = short_forms("Fullmetal Alchemist: Brotherhood", vocab)
    assert {"fab", "fmab", "fma"} <= forms  # 'fma' comes from the part before the colon
    assert "snk" in short_forms("Shingeki no Kyojin", set())
    assert "sk" in short_forms("Shingeki no Kyojin", set())  # particles dropped


def test_exact_id_comes_first(index):
    matches = index.search("1535")
    assert matches[0].anime.title == "Death Note" and matches[0].score == 100


@pytest.mark.parametrize(
    "typed, expected",
    [
        ("death note", "Death Note"),
        ("DEATH NOTE!", "Death Note"),
        ("shingeki no kyojn", "Shingeki no Kyojin"),  # typo
        ("steinsgate", "Steins;Gate"),  # words run together
        ("one punhc man", "One Punch Man"),  # swapped letters
        ("narut", "Naruto"),  # unfinished: autocomplete
        ("snk", "Shingeki no Kyojin"),  # initials, the better known of two 'snk' titles
        ("fmab", "Fullmetal Alchemist: Brotherhood"),  # compound split: full + metal
        ("attack on titan", "Shingeki no Kyojin"),  # alias
        ("atack on titan", "Shingeki no Kyojin"),  # alias with a typo
        ("fma b", "Fullmetal Alchemist: Brotherhood"),  # alias FMA:B
        ("okami", "Okami no Yuki"),
    ],
)
def test_search_finds(index, typed, expected):
    assert top(index, typed) == expected


def test_a_short_title_is_not_found_inside_a_longer_query(index):
    assert "K-On!" not in [m.anime.title for m in index.search("attack on titan", limit=3)]


def test_prefix_lists_the_franchise(index):
    titles = [m.anime.title for m in index.search("shingeki", limit=3)]
    assert titles[:2] == ["Shingeki no Kyojin", "Shingeki no Kyojin Season 2"]


def test_nsfw_titles_only_when_asked(index):
    assert all(not m.anime.nsfw for m in index.search("secret night kingdom"))
    assert top(index, "secret night kingdom", nsfw=True) == "Secret Night Kingdom"


def test_empty_and_huge_queries(index):
    assert index.search("   ") == []
    assert isinstance(index.search("x" * 10_000), list)


def test_resolve_is_sure_or_suggests(index):
    assert index.resolve("Death Note").anime_id == 1535
    assert index.resolve("shingeki no kyojn").anime_id == 16498
    with pytest.raises(UnknownTitleError) as info:
        index.resolve("zzqqxx")
    assert info.value.suggestions == ()
    with pytest.raises(UnknownTitleError) as info:
        index.resolve("fullmetal")  # two anime start with it: ask
    names = {m.anime.title for m in info.value.suggestions}
    assert {"Fullmetal Alchemist", "Fullmetal Alchemist: Brotherhood"} <= names
    assert "did you mean" in str(info.value)


def test_recommender_search_needs_no_model_and_learns_aliases(tmp_path: Path):
    with Store(tmp_path / "s.db") as store:
        store.catalog.upsert(CATALOG)
        rec = Recommender(store)
        assert not rec.ready
        assert rec.search("death note")[0].anime.anime_id == 1535
        with pytest.raises(UnknownTitleError):
            rec.resolve_title("the walking titans")
        rec.add_alias("The Walking Titans", 16498)
        assert rec.resolve_title("the walking titans").anime_id == 16498  # live at once
        assert ("The Walking Titans", 16498) in store.catalog.aliases()  # and stored
        assert Recommender(store).resolve_title("walking titans").anime_id == 16498
        with pytest.raises(UnknownTitleError):
            rec.add_alias("nothing", 424242)
        with pytest.raises(ValueError):
            rec.add_alias("   ", 1535)


def test_real_catalog(data_dir: Path):
    from storage.importers import parse_catalog

    index = TitleIndex(parse_catalog(data_dir / "anime" / "catalog.csv"))
    assert len(index) > 12_000
    assert top(index, "fmab") == "Fullmetal Alchemist: Brotherhood"
    assert top(index, "snk") == "Shingeki no Kyojin"
    assert top(index, "shingeki no kyojn") == "Shingeki no Kyojin"
    assert top(index, "kimi no na wa") == "Kimi no Na wa."
    assert index.resolve("5114").title == "Fullmetal Alchemist: Brotherhood"
    assert all(not m.anime.nsfw for m in index.search("hentai", limit=20))
