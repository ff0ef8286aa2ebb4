"""Rating-file loading and the seeded splits, on tiny hand-made data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.splits import (
    RatingsFileError,
    filter_min_counts,
    holdout_users,
    load_ratings_csv,
    reveal_split,
    split_by_user,
)


def _write(tmp_path: Path, text: str, name: str = "r.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _rows(df: pd.DataFrame) -> list[tuple]:
    return [(r.user, r.anime_id, float(r.score)) for r in df.itertuples()]


def test_load_score_format(tmp_path: Path) -> None:
    df = load_ratings_csv(_write(tmp_path, "user_id,anime_id,score\n1,20,8\n1,21,0\n2,20,10\n"))
    assert list(df.columns) == ["user", "anime_id", "score"]
    assert _rows(df) == [(1, 20, 8.0), (1, 21, 0.0), (2, 20, 10.0)]
    assert df["score"].dtype == np.float32


def test_load_rating_format_minus_one_is_unscored(tmp_path: Path) -> None:
    df = load_ratings_csv(_write(tmp_path, "user_id,anime_id,rating\n1,20,-1\n1,21,7\n"))
    assert _rows(df) == [(1, 20, 0.0), (1, 21, 7.0)]


def test_load_status_format(tmp_path: Path) -> None:
    text = "user_id,anime_id,status,score,num_episodes_watched\n5,30,2,9,12\n5,31,6,0,0\n"
    assert _rows(load_ratings_csv(_write(tmp_path, text))) == [(5, 30, 9.0), (5, 31, 0.0)]


def test_load_movielens(tmp_path: Path) -> None:
    text = "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,0.5,964981247\n"
    assert _rows(load_ratings_csv(_write(tmp_path, text))) == [(1, 1, 4.0), (1, 3, 0.5)]


def test_load_duplicates_keep_last(tmp_path: Path) -> None:
    df = load_ratings_csv(_write(tmp_path, "user_id,anime_id,score\n1,20,8\n1,20,9\n"))
    assert _rows(df) == [(1, 20, 9.0)]


@pytest.mark.parametrize(
    "text, match",
    [
        ("user,item,score\n1,2,3\n", "bad header"),
        ("user_id,anime_id,score\n1,20,11\n", "line 2: score 11 is out of range"),
        ("user_id,anime_id,score\n1,20,8\n1,abc,8\n", "line 3: anime_id must be a number"),
        ("user_id,anime_id,rating\n1,20,0\n", "out of range"),
        ("userId,movieId,rating\n1,2,5.5\n", "out of range"),
        ("user_id,anime_id,score\n1,20,\n", "line 2: empty or missing"),
    ],
)
def test_load_errors_are_one_line(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(RatingsFileError, match=match) as info:
        load_ratings_csv(_write(tmp_path, text))
    assert "\n" not in str(info.value)
    with pytest.raises(RatingsFileError, match="no such file"):
        load_ratings_csv(tmp_path / "missing.csv")


def test_filter_min_counts_users_then_items_one_pass() -> None:
    # user 1: 3 rows, user 2: 2 rows, user 3: 1 row; min_user_rows=2 drops user 3.
    # Then item counts: 10 -> 2 (users 1,2), 11 -> 2, 12 -> 1 (its user-3 row is gone).
    df = pd.DataFrame(
        {
            "user": [1, 1, 1, 2, 2, 3],
            "anime_id": [10, 11, 12, 10, 11, 12],
            "score": [1, 2, 3, 4, 5, 6],
        }
    )
    out = filter_min_counts(df, min_user_rows=2, min_item_rows=2)
    assert sorted(zip(out.user, out.anime_id, strict=True)) == [(1, 10), (1, 11), (2, 10), (2, 11)]


def _user_frame(n_per_user: dict[int, int]) -> pd.DataFrame:
    rows = [(u, 100 + i, float(1 + i % 10)) for u, n in n_per_user.items() for i in range(n)]
    return pd.DataFrame(rows, columns=["user", "anime_id", "score"])


def test_split_by_user_sizes_disjoint_deterministic() -> None:
    df = _user_frame({1: 10, 2: 7, 3: 1, 4: 3})
    train, test = split_by_user(df, test_frac=0.2, seed=42)
    # round half up: 10 -> 2, 7 -> 1.4 -> 1, 1 -> 0, 3 -> 0.6 -> 1
    assert test.groupby("user").size().to_dict() == {1: 2, 2: 1, 4: 1}
    assert len(train) + len(test) == len(df)
    both = pd.concat([train, test])
    assert not both.duplicated(["user", "anime_id"]).any()
    again_train, again_test = split_by_user(df.sample(frac=1.0, random_state=3), 0.2, 42)
    pd.testing.assert_frame_equal(test, again_test)  # row order of the input does not matter
    pd.testing.assert_frame_equal(train, again_train)
    _, other = split_by_user(df, 0.2, seed=7)
    big = _user_frame({1: 200})
    assert not split_by_user(big, 0.2, 1)[1].equals(split_by_user(big, 0.2, 2)[1])
    assert len(other) == len(test)


def test_split_by_user_keeps_one_training_row() -> None:
    train, test = split_by_user(_user_frame({1: 2}), test_frac=0.9, seed=0)
    assert (len(train), len(test)) == (1, 1)
    with pytest.raises(ValueError):
        split_by_user(_user_frame({1: 2}), test_frac=1.0)


def test_holdout_users() -> None:
    df = _user_frame({u: 3 for u in range(1, 11)})
    train, held = holdout_users(df, frac=0.2, seed=5)
    assert held["user"].nunique() == 2 and train["user"].nunique() == 8
    assert not set(held.user) & set(train.user)
    assert set(holdout_users(df, n=2, seed=5)[1].user) == set(held.user)
    with pytest.raises(ValueError):
        holdout_users(df, frac=0.2, n=2)
    with pytest.raises(ValueError):
        holdout_users(df, n=10)


def test_reveal_split_reveals_k_scored_rows_only() -> None:
    # user 1: 5 scored + 2 unscored; user 2: 3 scored (below min_scored=4) -> dropped.
    df = pd.DataFrame(
        {
            "user": [1] * 7 + [2] * 3,
            "anime_id": [10, 11, 12, 13, 14, 15, 16, 10, 11, 12],
            "score": [8, 7, 6, 5, 4, 0, 0, 9, 9, 9],
        }
    )
    revealed, hidden = reveal_split(df, k=2, seed=1, min_scored=4)
    assert set(revealed.user) == {1} and set(hidden.user) == {1}
    assert len(revealed) == 2 and (revealed.score > 0).all()
    assert len(hidden) == 5 and sorted(hidden.anime_id[hidden.score == 0]) == [15, 16]
    assert not set(revealed.anime_id) & set(hidden.anime_id)
    again = reveal_split(df.iloc[::-1], k=2, seed=1, min_scored=4)
    pd.testing.assert_frame_equal(revealed, again[0])
    r2, h2 = reveal_split(df, k=2, seed=1, min_scored=4, reveal_unscored=True)
    assert len(r2) == 4 and sorted(r2.anime_id[r2.score == 0]) == [15, 16] and len(h2) == 3
    assert len(reveal_split(df, k=2, seed=1)[0]) == 0  # default min_scored = k + 10 = 12


def test_reveal_split_picks_vary_with_seed() -> None:
    df = _user_frame({1: 40})
    picks = {tuple(reveal_split(df, k=5, seed=s)[0].anime_id) for s in range(5)}
    assert len(picks) > 1
