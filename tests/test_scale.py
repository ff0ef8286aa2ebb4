"""Bounded-memory paths give exactly what the straightforward ones gave: the chunked ratings
import, the paged ``Ratings.arrays`` and the pandas-free ``TrainingData``; and the benchmark's
data expansion is seeded and has its documented properties."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks import scale_data
from storage.importers import ImportFileError, import_catalog, import_ratings
from storage.importers import ratings as ratings_importer
from storage.repository import Store
from training import data as tdata

CATALOG_IDS = range(1, 301)


def _catalog(path: Path) -> Path:
    lines = ["anime_id,name,genre,type,episodes,rating,members"]
    lines += [f"{i},Title {i},Drama,TV,12,7.5,{i * 10}" for i in CATALOG_IDS]
    path.write_text("\n".join(lines) + "\n")
    return path


def _random_ratings(rng: np.random.Generator, users: int) -> scale_data.Ratings:
    parts = []
    for user in range(1, users + 1):
        anime = rng.choice(np.arange(1, 301), size=int(rng.integers(1, 40)), replace=False)
        scores = rng.integers(0, 11, size=anime.size)
        parts.append((np.full(anime.size, user), anime, scores))
    u, a, s = (np.concatenate(col).astype(np.int64) for col in zip(*parts, strict=True))
    return scale_data.Ratings(u, a, s)


# -- the expansion ------------------------------------------------------------------------------


def test_expansion_is_seeded_and_resamples_real_lists(tmp_path: Path) -> None:
    real = _random_ratings(np.random.default_rng(0), 60)
    source = tmp_path / "real.csv"
    scale_data.write_ratings(source, [real])
    a, b, c = (tmp_path / f"{n}.csv" for n in "abc")
    rows = scale_data.write_expansion(source, a, 4, seed=7)
    assert scale_data.write_expansion(source, b, 4, seed=7) == rows
    assert a.read_bytes() == b.read_bytes()
    scale_data.write_expansion(source, c, 4, seed=8)
    assert a.read_bytes() != c.read_bytes()

    out = scale_data.read_ratings(a)
    assert out.rows == rows
    assert np.array_equal(out.users[: real.rows], real.users)  # copy 0 is the real file
    assert np.array_equal(out.scores[: real.rows], real.scores)
    real_rows = {(int(u), int(x)): int(s) for u, x, s in zip(*_cols(real), strict=True)}
    for copy in range(1, 4):
        mask = out.users // scale_data.ID_STRIDE == copy
        assert 0.75 * real.rows < mask.sum() < real.rows  # kept with probability 0.88
        moved = 0
        for u, x, s in zip(*(col[mask] for col in _cols(out)), strict=True):
            original = real_rows[(int(u) - copy * scale_data.ID_STRIDE, int(x))]
            assert abs(s - original) <= 1 and 0 <= s <= 10
            assert (s == 0) == (original == 0)  # unscored stays unscored
            moved += s != original
        assert 0 < moved < 0.2 * mask.sum()
    # a copy is the same whatever the factor
    longer = scale_data.read_ratings(_expand(source, tmp_path / "d.csv", 6))
    assert np.array_equal(longer.users[:rows], out.users)


def _cols(r: scale_data.Ratings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return r.users, r.anime_ids, r.scores


def _expand(source: Path, out: Path, factor: int) -> Path:
    scale_data.write_expansion(source, out, factor, seed=7)
    return out


# -- the import: the column-wise path and the careful one agree ------------------------------


def _db_rows(store: Store) -> list[tuple[object, ...]]:
    return [
        tuple(r)
        for r in store.db.query(
            "SELECT u.platform_user_id, r.anime_id, r.score, r.status, r.source "
            "FROM ratings r JOIN users u ON u.id = r.user_id ORDER BY 1, 2"
        )
    ]


def _import(tmp_path: Path, name: str, text: str, **kw: object) -> list[tuple[object, ...]]:
    csv = tmp_path / f"{name}.csv"
    csv.write_text(text)
    with Store(tmp_path / f"{name}.db") as store:
        import_catalog(store, _catalog(tmp_path / "catalog.csv"))
        import_ratings(store, csv, **kw)  # type: ignore[arg-type]
        return _db_rows(store)


def test_chunked_import_matches_row_by_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = _random_ratings(np.random.default_rng(1), 80)
    lines = [f"{u},{a},{s}" for u, a, s in zip(*_cols(real), strict=True)]
    plain = "user_id,anime_id,score\n" + "\n".join(lines) + "\n"
    # The same values in forms only the careful parser reads, and exact duplicate rows.
    odd = lines.copy()
    odd[5] = " " + odd[5].replace(",", ", ", 1)
    first = odd[9].split(",")
    odd[9] = f"{first[0]},+{first[1]},{first[2]}"
    odd.insert(20, odd[20])
    odd_text = "user_id,anime_id,score\n" + "\n".join(odd) + "\n"

    reference = _import(tmp_path, "whole", plain)
    assert len(reference) == real.rows
    monkeypatch.setattr(ratings_importer, "PARSE_CHUNK_ROWS", 7)
    assert _import(tmp_path, "chunks", plain) == reference
    assert _import(tmp_path, "odd", odd_text) == reference
    monkeypatch.setattr(ratings_importer, "PARSE_CHUNK_ROWS", 1)
    assert _import(tmp_path, "ones", odd_text) == reference


def test_chunk_errors_name_the_first_bad_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ratings_importer, "PARSE_CHUNK_ROWS", 4)
    good = [f"{u},{a},7" for u in range(1, 4) for a in range(1, 4)]  # lines 2-10
    # An unknown anime on line 6 comes before a bad score on line 7 of the same chunk.
    rows = good[:4] + ["9,999,7", "9,1,11"] + good[4:]
    with pytest.raises(ImportFileError) as err:
        _import(tmp_path, "unknown", "user_id,anime_id,score\n" + "\n".join(rows) + "\n")
    assert err.value.line == 6 and "999" in str(err.value)
    rows = good[:4] + ["9,1,11", "9,999,7"] + good[4:]
    with pytest.raises(ImportFileError) as err:
        _import(tmp_path, "score", "user_id,anime_id,score\n" + "\n".join(rows) + "\n")
    assert err.value.line == 6 and "out of range" in str(err.value)
    # Skipped unknown anime are counted in either path.
    text = "user_id,anime_id,score\n" + "\n".join(good[:4] + ["9,999,7", "9,998, 7"]) + "\n"
    csv = tmp_path / "skip.csv"
    csv.write_text(text)
    with Store(tmp_path / "skip.db") as store:
        import_catalog(store, _catalog(tmp_path / "catalog.csv"))
        report = import_ratings(store, csv, skip_unknown=True)
    assert (report.rows, report.unknown_anime, report.written) == (6, 2, 4)


def test_status_format_takes_both_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    header = "user_id,anime_id,status,score,num_episodes_watched\n"
    rows = [f"{u},{a},{(u + a) % 4 + 1},{(u * a) % 11},3" for u in range(1, 6) for a in (2, 5, 9)]
    reference = _import(tmp_path, "one", header + "\n".join(rows) + "\n")
    monkeypatch.setattr(ratings_importer, "PARSE_CHUNK_ROWS", 2)
    rows[3] = rows[3].replace(",3", ", 3", 1)
    assert _import(tmp_path, "two", header + "\n".join(rows) + "\n") == reference
    assert {r[3] for r in reference} >= {"watching", "completed"}


# -- the training data: the paged read and the pandas-free build ------------------------------


def _reference_from_arrays(
    user_ids: np.ndarray, anime_ids: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, ...]:
    """The straightforward build (a DataFrame dedupe and sort, a full-text fingerprint)."""
    uniq_users, users = np.unique(user_ids, return_inverse=True)
    uniq_items, items = np.unique(np.asarray(anime_ids, np.int64), return_inverse=True)
    frame = pd.DataFrame({"u": users, "i": items, "s": np.asarray(scores, np.float32)})
    frame = frame.drop_duplicates(["u", "i"], keep="last").sort_values(["u", "i"], kind="mergesort")
    u = frame["u"].to_numpy(np.int64)
    i = frame["i"].to_numpy(np.int64)
    s = frame["s"].to_numpy(np.float32)
    row_users, row_anime = uniq_users[u], uniq_items[i]
    order = np.lexsort((row_anime, np.asarray(row_users).astype(str)))
    h = hashlib.sha256()
    h.update(np.asarray(row_users)[order].astype(str).astype("S").tobytes())
    h.update(np.asarray(row_anime, np.int64)[order].tobytes())
    h.update(np.asarray(s, np.float32)[order].tobytes())
    return uniq_users, uniq_items, u, i, s, np.array([h.hexdigest()])


@pytest.mark.parametrize("kind", ["int", "text", "sorted"])
def test_training_data_matches_the_dataframe_build(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(3)
    n = 5_000
    users = rng.integers(1, 400, n)
    anime = rng.integers(1, 300, n)
    scores = rng.integers(0, 11, n).astype(np.float32)
    if kind == "text":
        users = np.array([f"u{x}" for x in users], dtype=object)
    if kind == "sorted":  # the database's order: unique pairs, by user then anime
        pairs = np.unique(np.stack([users, anime], axis=1), axis=0)
        users, anime = pairs[:, 0], pairs[:, 1]
        scores = scores[: users.size]
    monkeypatch.setattr(tdata, "HASH_CHUNK_ROWS", 333)
    got = tdata.from_arrays(users, anime, scores, {1: ["Drama"]})
    uu, ui, u, i, s, fp = _reference_from_arrays(users, anime, scores)
    assert np.array_equal(got.user_ids, uu) and np.array_equal(got.anime_ids, ui)
    assert np.array_equal(got.users, u) and np.array_equal(got.items, i)
    assert np.array_equal(got.scores, s) and got.scores.dtype == np.float32
    assert got.users.dtype == got.items.dtype == np.int64
    assert np.array_equal(got.indptr, np.r_[0, np.cumsum(np.bincount(u, minlength=uu.size))])
    assert got.fingerprint == fp[0]
    row_users, row_anime = uu[u], ui[i]
    assert tdata.fingerprint_rows(row_users, row_anime, s) == fp[0]
    shuffled = rng.permutation(s.size)
    assert tdata.fingerprint_rows(row_users[shuffled], row_anime[shuffled], s[shuffled]) == fp[0]


def test_paged_arrays_match_one_query(tmp_path: Path) -> None:
    real = _random_ratings(np.random.default_rng(4), 50)
    csv = tmp_path / "r.csv"
    scale_data.write_ratings(csv, [real])
    with Store(tmp_path / "a.db") as store:
        import_catalog(store, _catalog(tmp_path / "catalog.csv"))
        import_ratings(store, csv)
        chat = store.users.ensure("telegram", "5")
        store.ratings.upsert(chat.id, 3, None, "watching")
        whole = store.db.query(
            "SELECT r.user_id, r.anime_id, COALESCE(r.score, 0), r.status, u.platform, "
            "r.updated_at FROM ratings r JOIN users u ON u.id = r.user_id "
            "ORDER BY r.user_id, r.anime_id"
        )
        for chunk in (1, 7, 10_000):
            got = store.ratings.arrays(chunk_rows=chunk)
            cols = (got.user_ids, got.anime_ids, got.scores, got.statuses, got.platforms)
            assert [list(c) for c in cols] == [list(c) for c in list(zip(*whole, strict=True))[:5]]
            assert list(got.updated_at) == [r[5] for r in whole]
            assert got.scores.dtype == np.int8 and got.statuses.dtype == object
        only = store.ratings.arrays(["telegram"], chunk_rows=1)
        assert list(only.user_ids) == [chat.id] and list(only.statuses) == ["watching"]
        assert store.ratings.arrays(["discord"]).user_ids.size == 0
