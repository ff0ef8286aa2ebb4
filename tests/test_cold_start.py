"""Evaluation of new titles: training/cold.py, training/cold_rankers.py, `evaluate --cold`."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommender.model import get_config
from storage.importers import import_catalog, import_ratings
from storage.repository import Store
from storage.rows import Anime
from training.cold import (
    ColdConfig,
    ColdSplit,
    choose_withheld,
    cold_split,
    format_table,
    mixed_metrics,
    new_title_metrics,
)
from training.cold_rankers import (
    catalog_relatives,
    content_features,
    evaluate_cold,
    genre_profile_ranker,
    length_bucket,
    random_ranker,
)
from training.evaluate import EvaluationError

GENRES = ("Mecha", "Romance", "Comedy", "Horror", "Sports")
N_ANIME = 100
RARE = 5000  # the largest id of all, but on too few lists to be withheld


def genre_of(aid: int) -> str:
    """Genres interleave by id, so the newest titles span every genre."""
    return GENRES[aid % len(GENRES)]


def catalog() -> list[Anime]:
    ids = [*range(1, N_ANIME + 1), RARE, 6000]  # 6000: in the catalog, on no list
    return [Anime(a, f"Show {a}", (genre_of(a),), "TV", 12, 7.0, 100, False) for a in sorted(ids)]


def synthetic(n_users: int = 200, seed: int = 0) -> pd.DataFrame:
    """Every user loves one genre (scores 8-10), tries others (2-5), leaves two unscored."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[int, int, float]] = []
    ids = np.arange(1, N_ANIME + 1)
    for u in range(n_users):
        fav = GENRES[u % len(GENRES)]
        mine = np.array([a for a in ids if genre_of(a) == fav])
        others = np.array([a for a in ids if genre_of(a) != fav])
        for a in rng.choice(mine, int(rng.integers(14, 19)), replace=False):
            rows.append((u, int(a), float(rng.integers(8, 11))))
        tried = rng.choice(others, 10, replace=False)
        for a in tried[:8]:
            rows.append((u, int(a), float(rng.integers(2, 6))))
        for a in tried[8:]:
            rows.append((u, int(a), 0.0))
        if u < 5:
            rows.append((u, RARE, 9.0))
    df = pd.DataFrame(rows, columns=["user", "anime_id", "score"])
    return df.astype({"score": np.float32})


CFG = ColdConfig(n=10, reveal=5, holdout_frac=0.25, seed=3)


def test_withheld_titles_are_the_newest_with_enough_rows():
    df = synthetic()
    assert list(choose_withheld(df, 10)) == list(range(91, 101))  # RARE has 5 rows
    assert list(choose_withheld(df, 3, min_rows=5)) == [99, 100, RARE]
    picked = choose_withheld(df, 10, choose="random", seed=1)
    assert picked.size == 10 and set(picked) <= set(range(1, 101))
    assert list(picked) == list(choose_withheld(df, 10, choose="random", seed=1))
    assert list(picked) != list(range(91, 101))
    with pytest.raises(EvaluationError, match="cannot withhold"):
        choose_withheld(df, 100)
    with pytest.raises(EvaluationError, match="choose"):
        choose_withheld(df, 5, choose="oldest")


def test_split_never_leaks_withheld_rows():
    df = synthetic()
    split = cold_split(df, CFG)
    new = set(split.withheld)
    assert new == set(range(91, 101))
    # training: no withheld title at all, no unseen user
    assert not split.train["anime_id"].isin(new).any()
    assert not split.train["user"].isin(split.users).any()
    assert split.train["user"].nunique() + 50 == 200  # 25% of users held out whole
    # revealed: exactly `reveal` scored rows per user, never a withheld title
    assert not split.revealed["anime_id"].isin(new).any()
    assert (split.revealed["score"] > 0).all()
    assert (split.revealed.groupby("user").size() == CFG.reveal).all()
    # revealed + hidden = every row of those users, each exactly once
    theirs = df[df["user"].isin(split.users)]
    both = pd.concat([split.revealed, split.hidden])
    assert len(both) == len(theirs)
    key = ["user", "anime_id"]
    assert not both.duplicated(key).any()
    merged = theirs.merge(both, on=key, suffixes=("", "_split"))
    assert len(merged) == len(theirs) and (merged["score"] == merged["score_split"]).all()
    # every withheld row of an unseen user is hidden (and relevant when liked)
    assert len(split.hidden_new) == int(theirs["anime_id"].isin(new).sum())
    sizes = split.sizes()
    assert sizes["liked_new_rows"] == int((split.hidden_new["score"] >= 8).sum()) > 0
    assert sizes["unseen_users"] == 50 and sizes["universe_titles"] == N_ANIME + 1
    limited = cold_split(df, ColdConfig(n=10, reveal=5, holdout_frac=0.25, seed=3, max_users=7))
    assert limited.users.size == 7 and set(limited.users) <= set(split.users)
    assert set(limited.hidden["user"]) == set(limited.users)


def _hand_split() -> ColdSplit:
    """Two users; withheld 10, 20, 30; the universe also holds 5 and 40."""
    revealed = pd.DataFrame({"user": ["a", "b"], "anime_id": [5, 40], "score": [9.0, 9.0]})
    hidden = pd.DataFrame(
        {
            "user": ["a", "a", "a", "b", "b", "b"],
            "anime_id": [20, 30, 40, 5, 10, 30],
            "score": [9.0, 5.0, 8.0, 3.0, 10.0, 8.0],
        }
    )
    return ColdSplit(
        np.array([10, 20, 30]),
        pd.DataFrame(columns=["user", "anime_id", "score"]),
        revealed,
        hidden,
        np.array([5, 10, 20, 30, 40]),
        8.0,
    )


def by_id(cands: np.ndarray) -> np.ndarray:
    """Everyone ranks the larger id first."""
    return np.tile(cands.astype(np.float32), (2, 1))


def test_metrics_match_hand_computed_values():
    split = _hand_split()
    # withheld only, top 2 = [30, 20] for both users.
    # a liked {20}: hit at position 1 -> NDCG 1/log2(3) = 0.6309, recall 1/1.
    # b liked {10, 30}: hit at position 0 -> NDCG 1 / (1 + 1/log2(3)) = 0.6131, recall 1/2.
    m = new_title_metrics(split, by_id, k=2)
    assert m["new_ndcg"] == pytest.approx((0.63093 + 0.61315) / 2, abs=1e-4)
    assert m["new_recall"] == pytest.approx(0.75)
    assert m["new_coverage"] == pytest.approx(2 / 3)  # 10 is in no one's top 2
    assert m["new_users"] == 2
    # mixed, revealed excluded: a's top 2 = [40, 30] (no liked new title; 40 is a liked warm
    # title at position 0), b's = [30, 20] (finds 30 of {10, 30}; no liked warm title).
    x = mixed_metrics(split, by_id, k=2)
    assert x["mixed_hit_rate"] == pytest.approx(0.5)
    assert x["mixed_recall_new"] == pytest.approx(0.25)
    assert x["mixed_new_share"] == pytest.approx(3 / 4)
    assert x["mixed_warm_ndcg"] == pytest.approx(1.0)
    # the opposite order, top 3 = [10, 20, 30]: a's 20 at position 1 (0.6309); b's 10 and 30
    # at positions 0 and 2: (1 + 1/2) / (1 + 1/log2(3)) = 0.9197. In the mixed top 2, a gets
    # [10, 20] (finds 20), b gets [5, 10] (finds 10 of {10, 30}).
    rev = new_title_metrics(split, lambda c: -by_id(c), k=3)
    assert rev["new_ndcg"] == pytest.approx((0.63093 + 0.91972) / 2, abs=1e-4)
    assert rev["new_recall"] == 1.0 and rev["new_coverage"] == 1.0
    y = mixed_metrics(split, lambda c: -by_id(c), k=2)
    assert y["mixed_hit_rate"] == 1.0 and y["mixed_recall_new"] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="shape"):
        new_title_metrics(split, lambda c: np.zeros((1, c.size)))


def test_genre_profile_beats_random_when_content_predicts_taste():
    df = synthetic(seed=1)
    split = cold_split(df, CFG)
    genres = {a.anime_id: a.genres for a in catalog()}
    genre = new_title_metrics(split, genre_profile_ranker(split, genres))
    rand = new_title_metrics(split, random_ranker(split, seed=0))
    again = new_title_metrics(split, random_ranker(split, seed=0))
    assert rand == again  # seeded
    assert genre["new_ndcg"] > 0.9 > 0.6 > rand["new_ndcg"]
    assert genre["new_users"] == rand["new_users"] > 30


def test_content_features_are_only_what_a_new_title_has():
    a = Anime(7, "X", ("Mecha", "Drama"), "Movie", 1, 9.9, 10**6, False)
    feats = content_features(a)
    assert feats == ["genre:Mecha", "genre:Drama", "type:Movie", "len:1"]
    assert content_features(None) == ["len:unknown", "type:unknown"]
    assert [length_bucket(e) for e in (None, 0, 1, 7, 12, 26, 50, 500)] == [
        "unknown",
        "unknown",
        "1",
        "2-7",
        "8-16",
        "17-32",
        "33-64",
        "65+",
    ]


SMALL = get_config(
    "default", epochs=2, batch_size=64, dim=16, genre_hidden=16, ease_min_count=2, knn_topk=16
)


def test_the_whole_run_on_one_split_and_lightfm_missing_is_skipped(monkeypatch):
    monkeypatch.setitem(sys.modules, "lightfm", None)  # import lightfm -> ImportError
    report = evaluate_cold(synthetic(seed=2), catalog(), CFG, config=SMALL)
    assert set(report.rankers) == {"random", "genre profile", "anirec (default)"}
    assert "pip install lightfm" in report.skipped["LightFM"]
    for m in report.rankers.values():
        assert 0.0 <= m["new_ndcg"] <= 1.0 and 0.0 <= m["mixed_new_share"] <= 1.0
        assert m["new_users"] == report.sizes["users_with_liked_new"]
    assert report.warm["users"] == report.sizes["unseen_users"] == 50
    assert 0.0 < report.warm["rmse"] < 5.0 and report.warm["ndcg_at_10"] > 0.3
    table = format_table(report)
    assert "| genre profile |" in table and "skipped LightFM" in table
    assert json.loads(json.dumps(report.to_json()))["sizes"] == report.sizes


def _write_store(root: Path) -> Path:
    cat = root / "catalog.csv"
    with cat.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["anime_id", "name", "genre", "type", "episodes", "rating", "members"])
        for a in catalog():
            w.writerow([a.anime_id, a.title, ", ".join(a.genres), a.type, a.episodes, 7.0, 100])
    rat = root / "ratings.csv"
    synthetic(seed=4).rename(columns={"user": "user_id"}).astype({"score": int}).to_csv(
        rat, index=False
    )
    db = root / "anirec.db"
    with Store(db) as store:
        import_catalog(store, cat)
        import_ratings(store, rat)
    return db


def _cli(args: list[str], db: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ANIREC_DATABASE": str(db),
        "ANIREC_MODEL_DIR": str(tmp / "models"),
        "ANIREC_DEVICE": "cpu",
    }
    repo = Path(__file__).resolve().parents[1]
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        capture_output=True,
        check=False,
        text=True,
        env=env,
        cwd=repo,
        timeout=600,
    )


def test_cli_evaluate_cold_end_to_end(tmp_path):
    db = _write_store(tmp_path)
    args = ["evaluate", "--cold", "10", "--reveal", "5", "--epochs", "1", "--seed", "2"]
    done = _cli([*args, "--json"], db, tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["sizes"]["withheld_titles"] == 10
    assert report["sizes"]["unseen_users"] == 20  # 10% of 200 users, all eligible
    assert {"random", "genre profile", "anirec (default)"} <= set(report["rankers"])
    assert report["warm"]["users"] == 20
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())
    table = _cli([*args, "--max-users", "8"], db, tmp_path)
    assert table.returncode == 0, table.stderr
    assert "10 titles withheld (newest), 8 unseen users" in table.stdout
    assert "| anirec (default) |" in table.stdout
    bad = _cli(["evaluate", "--cold", "500"], db, tmp_path)
    assert bad.returncode == 1 and bad.stderr.startswith("error: cannot withhold 500")
    bad = _cli(["evaluate"], db, tmp_path)
    assert bad.returncode == 2 and "--cold" in bad.stderr
    bad = _cli(["evaluate", "--cold", "10", "--ratings", "x.csv"], db, tmp_path)
    assert bad.returncode == 2 and "drop --checkpoint and --ratings" in bad.stderr


@pytest.mark.skipif(not os.environ.get("ANIREC_DATA_DIR"), reason="ANIREC_DATA_DIR is not set")
def test_split_sizes_on_the_shared_data():
    from training.splits import load_ratings_csv

    path = Path(os.environ["ANIREC_DATA_DIR"]) / "anime" / "animelist.csv"
    if not path.is_file():
        pytest.skip(f"no {path}")
    df = load_ratings_csv(path)
    split = cold_split(df, ColdConfig())
    counts = df["anime_id"].value_counts()
    eligible = np.sort(counts.index[counts >= 20].to_numpy())
    assert list(split.withheld) == list(eligible[-300:])
    sizes = split.sizes()
    # 450 users held out; a training user whose every row was a withheld title drops out
    assert 4000 < sizes["train_users"] <= 4050 and 200 < sizes["unseen_users"] <= 450
    assert sizes["revealed_rows"] == 10 * sizes["unseen_users"]
    assert not split.train["anime_id"].isin(split.withheld).any()
    assert sizes["train_rows"] < len(df) - sizes["hidden_new_rows"]
    assert sizes["users_with_liked_new"] > 50


def _series_catalog() -> list[Anime]:
    """catalog() retitled: 51-98 are second seasons of 1-48; 99 and 100 (both withheld) are
    a series of their own."""

    def title(a: int) -> str:
        if a in (99, 100):
            return "Lonely Planet" + (" 2nd Season" if a == 100 else "")
        return f"Kaiju{a - 50 if a > 50 else a:03d}" + (" 2nd Season" if a > 50 else "")

    return [replace(a, title=title(a.anime_id)) for a in catalog()]


def test_catalog_relatives_are_the_franchise_graphs():
    rel = catalog_relatives(_series_catalog())
    assert rel[41] == (91,) and rel[91] == (41,) and rel[100] == (99,)
    assert 49 not in rel and RARE not in rel
    assert catalog_relatives(catalog()) == {}
    assert catalog_relatives(catalog(), [(1, 2)]) == {1: (2,), 2: (1,)}  # links win over titles


def test_the_model_links_withheld_sequels_to_trained_relatives_only():
    """The benchmark's model gets the product's franchise relatives: withheld 91-98 reach
    their trained first seasons; 99/100 are each other's only relatives, both untrained."""
    split = cold_split(synthetic(seed=2), CFG)
    assert list(split.withheld) == list(range(91, 101))
    lines: list[str] = []
    evaluate_cold(synthetic(seed=2), _series_catalog(), CFG, config=SMALL, log=lines.append)
    assert "withheld titles with a trained relative: 8 of 10" in lines
    lines.clear()
    evaluate_cold(synthetic(seed=2), catalog(), CFG, config=SMALL, log=lines.append)
    assert "withheld titles with a trained relative: 0 of 10" in lines
