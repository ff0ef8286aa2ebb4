"""What the stand-in of a title without rows draws on: trained relatives released before it
(real training on a small synthetic world, nothing mocked)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from recommender.content import content_inputs, earlier_relatives
from recommender.growth import extend_model
from recommender.neighbours import Borrowed
from recommender.scoring import ServingModel
from storage.rows import Anime
from tests.test_cold_start import SMALL, catalog, synthetic
from training import data as tdata
from training.train import train_model

RARE = 5000  # trained (five lists), the largest trained id
CONTENT_ONLY = range(7001, 7041)  # catalog titles on no list


def _anime(aid: int, title: str, year: int | None = None, season: str | None = None) -> Anime:
    return Anime(aid, title, ("Mecha",), "TV", 12, None, 0, False, season=season, year=year)


def test_earlier_relatives_by_year_and_season_else_by_id() -> None:
    rows = {
        10: _anime(10, "Kaiju"),
        20: _anime(20, "Kaiju 2nd Season"),
        30: _anime(30, "Kaiju Movie"),
        5: _anime(5, "Ghost", 2015, "fall"),  # a smaller id, yet the later one
        40: _anime(40, "Ghost Zero", 2015, "SPRING"),
    }
    series = {10: (20, 30), 20: (10, 30), 30: (10, 20), 5: (40,), 40: (5,)}
    got = earlier_relatives(list(rows), series, rows)
    assert got == {20: (10,), 30: (10, 20), 5: (40,)}
    assert earlier_relatives(list(rows), None, rows) == {}
    # the stand-in's relative rows: earlier and trained only
    ids = np.array([5, 10, 20, 30, 40])
    trained = np.array([True, True, False, True, True])
    rel = content_inputs(ids, list(rows.values()), trained, series, k=2).relatives
    assert rel.tolist() == [[4, -1], [-1, -1], [1, -1], [1, -1], [-1, -1]]


@pytest.fixture(scope="module")
def model() -> ServingModel:
    """Trained on the synthetic world; 40 Mecha titles of the catalog are on no list."""
    anime = [*catalog(), *(_anime(a, f"Steel {a}") for a in CONTENT_ONLY)]
    anime = [replace(a, year=2010) if a.anime_id == RARE else a for a in anime]
    df = synthetic(seed=2)
    relatives = {RARE: (1,), 1: (RARE,)}  # any pair: the model needs a relatives width
    data = tdata.from_arrays(
        df["user"].to_numpy(),
        df["anime_id"].to_numpy(),
        df["score"].to_numpy(),
        {a.anime_id: a.genres for a in anime},
        (1.0, 10.0),
        catalog=anime,
        relatives=relatives,
    )
    return train_model(data, SMALL.with_(epochs=3), seed=0, device="cpu").serving


def test_a_title_imported_later_links_to_its_earlier_trained_relative(model: ServingModel):
    """RARE has the larger id but the earlier year: the new title sees it (release order is
    read from every row given, not only the new ones)."""
    new = _anime(4000, "Rare Return", 2024, "SPRING")
    rare = replace(next(a for a in catalog() if a.anime_id == RARE), year=2010)
    grown = extend_model(model, [new, rare], {4000: (RARE,)})
    row = grown.module.relatives[grown.index_of[4000]].tolist()
    assert row[0] == model.index_of[RARE]
    lone = extend_model(model, [new], {4000: (RARE,)})  # RARE's row unknown: ids decide
    assert (lone.module.relatives[lone.index_of[4000]] < 0).all()


def test_borrowed_gives_earlier_trained_relatives_a_share() -> None:
    table = np.eye(4, dtype=np.float32)[[0, 1, 2, 0, 1]]  # rows 3, 4: content-only
    is_new = np.array([False, False, False, True, True])
    relatives = np.array([[-1], [-1], [-1], [2], [3]])  # 4's relative is content-only itself
    got = Borrowed.of(table, is_new, k=1, relatives=relatives, share=0.5)
    assert got.new.tolist() == [3, 4]
    values = np.array([1.0, 2.0, 10.0, 0.0, 0.0], np.float32)
    assert got.fill(values)[3:].tolist() == pytest.approx([0.5 * 1.0 + 0.5 * 10.0, 2.0])
    plain = Borrowed.of(table, is_new, k=1)
    assert plain.fill(values)[3:].tolist() == pytest.approx([1.0, 2.0])


def test_a_content_only_sequel_ranks_higher_for_who_listed_its_prequel(model: ServingModel):
    """A Horror film of the Mecha show 10: a Mecha fan who listed show 10 gets the film higher
    when it borrows from show 10: among the ten first picks, not only a step up."""
    prequel = replace(next(a for a in catalog() if a.anime_id == 10), year=2010)
    film = Anime(4001, "Show 10 the Movie", ("Horror",), "Movie", 1, None, 0, False, year=2024)
    linked = extend_model(model, [film, prequel], {4001: (10,)})
    alone = extend_model(model, [film, prequel])
    mecha = list(range(5, 100, 5))  # genre_of: Mecha; show 10 among them
    scores = [9.0] * len(mecha)

    def place(grown: ServingModel) -> int:
        """The film's place among the anime off the Mecha fan's list (0 = first)."""
        rank = grown.rank(grown.fold_in(mecha, scores))
        off = np.setdiff1d(np.arange(grown.n_items), [grown.index_of[a] for a in mecha])
        order = off[np.argsort(-rank[off], kind="stable")]
        return int(np.flatnonzero(order == grown.index_of[4001])[0])

    assert linked.module.relatives[linked.index_of[4001], 0] == model.index_of[10]
    assert place(linked) < 10 <= place(alone)
