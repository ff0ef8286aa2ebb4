"""Rating files into DataFrames, and the deterministic seeded splits every evaluation uses.

Frames have columns ``user``, ``anime_id`` (the item id; a movieId for MovieLens) and
``score`` (float32; 0 = on the list but not scored). Every split sorts its input by
(user, anime_id) before drawing random numbers, so the same rows and seed give the same split
whatever order the rows came in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ["user", "anime_id", "score"]

# header columns -> (user column, item column, score column, value meaning "unscored")
_FORMATS: tuple[tuple[tuple[str, ...], str, str, str, float | None], ...] = (
    (
        ("user_id", "anime_id", "status", "score", "num_episodes_watched"),
        "user_id",
        "anime_id",
        "score",
        0,
    ),
    (("user_id", "anime_id", "score"), "user_id", "anime_id", "score", 0),
    (("user_id", "anime_id", "rating"), "user_id", "anime_id", "rating", -1),
    (("userId", "movieId", "rating"), "userId", "movieId", "rating", None),
)


class RatingsFileError(ValueError):
    """A ratings file that cannot be read; the message names the file and the problem."""


def load_ratings_csv(path: str | Path) -> pd.DataFrame:
    """Read a ratings CSV in any format the storage importer accepts, or MovieLens ratings.

    Formats: ``user_id,anime_id,score`` (0 unscored), ``user_id,anime_id,rating`` (-1
    unscored), ``user_id,anime_id,status,score,num_episodes_watched`` (0 unscored) and
    MovieLens ``userId,movieId,rating`` (0.5-5, never unscored). Exact repeats of a
    (user, item) pair keep the last row.
    """
    path = Path(path)
    if not path.is_file():
        raise RatingsFileError(f"{path}: no such file")
    try:
        header = [h.strip() for h in pd.read_csv(path, nrows=0).columns]
    except (pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise RatingsFileError(f"{path}: cannot read a CSV header ({exc})") from None
    found = next((f for f in _FORMATS if set(f[0]) <= set(header)), None)
    if found is None:
        expected = " | ".join(",".join(f[0]) for f in _FORMATS)
        raise RatingsFileError(
            f"{path}: bad header {','.join(header)!r}; expected one of: {expected}"
        )
    _cols, ucol, icol, scol, unscored = found
    try:
        raw = pd.read_csv(path, usecols=[ucol, icol, scol], skipinitialspace=True)
    except (ValueError, pd.errors.ParserError) as exc:
        raise RatingsFileError(f"{path}: malformed CSV ({exc})") from None
    if raw.isna().any().any():
        bad = int(raw.isna().any(axis=1).to_numpy().argmax()) + 2
        raise RatingsFileError(f"{path}, line {bad}: empty or missing field")
    items = pd.to_numeric(raw[icol], errors="coerce")
    scores = pd.to_numeric(raw[scol], errors="coerce")
    for name, col in ((icol, items), (scol, scores)):
        if col.isna().any():
            bad = int(col.isna().to_numpy().argmax())
            raise RatingsFileError(
                f"{path}, line {bad + 2}: {name} must be a number, got {raw[name].iloc[bad]!r}"
            )
    s = scores.to_numpy(dtype=np.float64)
    if unscored is None:
        ok = (s > 0) & (s <= 5)
        rule = "0.5-5"
    else:
        ok = (s == unscored) | ((s >= 1) & (s <= 10) & (s == np.round(s)))
        rule = f"1-10, or {int(unscored)} for unscored"
        s = np.where(s == unscored, 0.0, s)
    if not ok.all():
        bad = int(np.argmin(ok))
        raise RatingsFileError(
            f"{path}, line {bad + 2}: {scol} {raw[scol].iloc[bad]} is out of range ({rule})"
        )
    users = raw[ucol]
    if pd.api.types.is_float_dtype(users) or pd.api.types.is_integer_dtype(users):
        users = users.astype(np.int64)
    df = pd.DataFrame(
        {
            "user": users.to_numpy(),
            "anime_id": items.to_numpy(dtype=np.int64),
            "score": s.astype(np.float32),
        }
    )
    return df.drop_duplicates(["user", "anime_id"], keep="last").reset_index(drop=True)


def filter_min_counts(
    df: pd.DataFrame, min_user_rows: int = 40, min_item_rows: int = 10
) -> pd.DataFrame:
    """Keep users with >= min_user_rows rows, then items with >= min_item_rows rows.

    One pass in that order (as the origin notebook does), counting every row, scored or not;
    a user may end with fewer than min_user_rows rows after the item filter.
    """
    uc = df["user"].map(df["user"].value_counts())
    out = df[uc >= min_user_rows]
    ic = out["anime_id"].map(out["anime_id"].value_counts())
    return out[ic >= min_item_rows].reset_index(drop=True)


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["user", "anime_id"], kind="mergesort").reset_index(drop=True)


def _rank_within_user(user_codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random 0-based position of each row among its user's rows (rows sorted by user)."""
    key = rng.random(user_codes.size)
    order = np.lexsort((key, user_codes))
    starts = np.r_[0, np.flatnonzero(np.diff(user_codes[order])) + 1]
    counts = np.diff(np.r_[starts, user_codes.size])
    pos_sorted = np.arange(user_codes.size) - np.repeat(starts, counts)
    pos = np.empty_like(pos_sorted)
    pos[order] = pos_sorted
    return np.asarray(pos)


def split_by_user(
    df: pd.DataFrame, test_frac: float = 0.2, seed: int = 42
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-user stratified split: each user's rows shuffled (seeded), round(n * test_frac) out.

    Rounding is half up; a user always keeps at least one training row. Both frames come back
    sorted by (user, anime_id).
    """
    if not 0.0 < test_frac < 1.0:
        raise ValueError(f"test_frac must be between 0 and 1, got {test_frac}")
    d = _sorted(df)
    codes = pd.factorize(d["user"])[0]
    pos = _rank_within_user(codes, np.random.default_rng(seed))
    n = np.bincount(codes)
    n_test = np.minimum(np.floor(n * test_frac + 0.5).astype(np.int64), n - 1)
    test = pos < n_test[codes]
    return d[~test].reset_index(drop=True), d[test].reset_index(drop=True)


def holdout_users(
    df: pd.DataFrame, frac: float | None = None, n: int | None = None, seed: int = 42
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out whole users (give ``frac`` or ``n``): returns (train_df, heldout_df)."""
    if (frac is None) == (n is None):
        raise ValueError("give exactly one of frac or n")
    users = np.sort(df["user"].unique())
    count = int(np.floor(users.size * frac + 0.5)) if frac is not None else int(n or 0)
    if not 0 < count < users.size:
        raise ValueError(f"cannot hold out {count} of {users.size} users")
    chosen = np.random.default_rng(seed).permutation(users)[:count]
    mask = df["user"].isin(chosen).to_numpy()
    return _sorted(df[~mask]), _sorted(df[mask])


def reveal_split(
    heldout_df: pd.DataFrame,
    k: int,
    seed: int = 42,
    min_scored: int | None = None,
    reveal_unscored: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per held-out user: reveal k random scored rows (seeded), hide the rest.

    Only users with at least ``min_scored`` (default k + 10) scored rows take part; the others
    are dropped from both frames. A user's unscored (score 0) rows are, by default, NOT
    revealed: the protocol reveals K scored rows, and the unscored rows stay in ``hidden``,
    where they are never regression targets or relevant items but stay ranking candidates
    (candidates are everything except the revealed rows). With ``reveal_unscored=True`` they
    join ``revealed`` as watched-but-unscored history, as the bot would know them.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    min_scored = k + 10 if min_scored is None else min_scored
    d = _sorted(heldout_df)
    is_scored = d["score"].to_numpy() > 0
    n_scored = d.loc[is_scored, "user"].value_counts()
    eligible = d["user"].map(n_scored).fillna(0).to_numpy() >= min_scored
    d, is_scored = d[eligible].reset_index(drop=True), is_scored[eligible]
    scored = d[is_scored]
    codes = pd.factorize(scored["user"])[0]
    pos = _rank_within_user(codes, np.random.default_rng(seed))
    revealed_mask = np.zeros(len(d), dtype=bool)
    revealed_mask[np.flatnonzero(is_scored)[pos < k]] = True
    if reveal_unscored:
        revealed_mask |= ~is_scored
    return (d[revealed_mask].reset_index(drop=True), d[~revealed_mask].reset_index(drop=True))
