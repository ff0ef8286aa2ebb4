"""The training data pipeline: rating rows (from the Store or a DataFrame) into index arrays.

Users and anime get dense indices (anime in ascending MAL id order), every list row is kept
(score 0 = on the list but unscored: an implicit interaction), the catalog's genres become a
multi-hot matrix, and a fingerprint identifies the exact rows a model was trained on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recommender import franchise_store
from recommender.franchise import FranchiseGraph
from storage.repository import Store
from storage.rows import Anime

#: Rows hashed per slice by the fingerprint (bounds its temporary copies).
HASH_CHUNK_ROWS = 1 << 20


class NoTrainingDataError(ValueError):
    """There is nothing to train on (empty database, or too few rows)."""


@dataclass(frozen=True)
class TrainingData:
    """Rows sorted by user index; ``indptr`` gives each user's slice (CSR layout)."""

    user_ids: np.ndarray  # original user id per user index (int64 or object)
    anime_ids: np.ndarray  # int64 MAL id per item index, ascending
    users: np.ndarray  # int64 user index per row
    items: np.ndarray  # int64 item index per row
    scores: np.ndarray  # float32 per row, 0 = unscored
    indptr: np.ndarray  # int64 [n_users + 1]
    genre_vocab: list[str]
    item_genres: np.ndarray  # bool [n_items, n_genres]
    score_range: tuple[float, float]
    fingerprint: str
    # the catalog rows of the anime (content features come from them; empty: genres only), and
    # anime id -> related anime ids (a content vector may draw on trained relatives)
    catalog: tuple[Anime, ...] = ()
    relatives: Mapping[int, Sequence[int]] | None = None

    @property
    def n_users(self) -> int:
        return int(self.user_ids.size)

    @property
    def n_items(self) -> int:
        return int(self.anime_ids.size)

    @property
    def n_rows(self) -> int:
        return int(self.items.size)

    @property
    def scored(self) -> np.ndarray:
        return self.scores > 0

    def popularity(self) -> np.ndarray:
        return np.bincount(self.items, minlength=self.n_items).astype(np.float32)

    def user_rows(self, u: int) -> slice:
        return slice(int(self.indptr[u]), int(self.indptr[u + 1]))

    def index_of_user(self) -> dict[object, int]:
        return {_key(uid): i for i, uid in enumerate(self.user_ids)}


def _key(uid: object) -> object:
    return int(uid) if isinstance(uid, np.integer | int) else uid


def _indptr(users: np.ndarray, n_users: int) -> np.ndarray:
    return np.asarray(np.r_[0, np.cumsum(np.bincount(users, minlength=n_users))].astype(np.int64))


def fingerprint_rows(users: np.ndarray, anime_ids: np.ndarray, scores: np.ndarray) -> str:
    """SHA-256 over the (user, anime, score) rows in a canonical order: users by their text,
    then anime id (users as fixed-width bytes of their text, then the int64 anime ids, then the
    float32 scores)."""
    uniq, inverse = np.unique(np.asarray(users), return_inverse=True)
    anime_ids = np.asarray(anime_ids, np.int64)
    order = np.lexsort(
        (anime_ids, np.argsort(np.argsort(uniq.astype(str), kind="stable"))[inverse])
    )
    return _hash_in_order(uniq, inverse, anime_ids, np.asarray(scores, np.float32), order)


def _hash_in_order(
    uniq_users: np.ndarray,
    users: np.ndarray,
    anime_ids: np.ndarray,
    scores: np.ndarray,
    order: np.ndarray,
) -> str:
    """The fingerprint's hash of rows ``order`` (users given as indices into ``uniq_users``),
    fed in slices of ``HASH_CHUNK_ROWS`` so that no text copy of every row is made."""
    names = uniq_users.astype(str).astype("S")
    h = hashlib.sha256()
    for column in (names, anime_ids, scores):
        for start in range(0, order.size, HASH_CHUNK_ROWS):
            part = order[start : start + HASH_CHUNK_ROWS]
            h.update((column[users[part]] if column is names else column[part]).tobytes())
    return h.hexdigest()


def genre_matrix(
    anime_ids: np.ndarray, item_genres: Mapping[int, Sequence[str]]
) -> tuple[list[str], np.ndarray]:
    """Sorted genre vocabulary and the bool [n_items, n_genres] multi-hot (missing ids: none)."""
    vocab = sorted({g for aid in anime_ids for g in item_genres.get(int(aid), ())})
    col = {g: j for j, g in enumerate(vocab)}
    mat = np.zeros((len(anime_ids), max(len(vocab), 1)), dtype=bool)
    for i, aid in enumerate(anime_ids):
        for g in item_genres.get(int(aid), ()):
            mat[i, col[g]] = True
    if not vocab:
        vocab = ["(none)"]
    return vocab, mat


def from_arrays(
    user_ids: np.ndarray,
    anime_ids: np.ndarray,
    scores: np.ndarray,
    item_genres: Mapping[int, Sequence[str]],
    score_range: tuple[float, float] = (1.0, 10.0),
    catalog: Sequence[Anime] | None = None,
    relatives: Mapping[int, Sequence[int]] | None = None,
) -> TrainingData:
    """Build from parallel row arrays (duplicates of a (user, anime) pair keep the last row).

    With ``catalog`` every catalog anime gets an index too, rows or not (those without rows
    are served by their content vector alone)."""
    user_ids = np.asarray(user_ids)
    anime_ids = np.asarray(anime_ids, np.int64)
    scores = np.asarray(scores, np.float32)
    if user_ids.size == 0:
        raise NoTrainingDataError(
            "no ratings to train on: import a data set first (`anirec import ratings PATH`)"
        )
    lo, hi = score_range
    bad = (scores != 0) & ((scores < lo) | (scores > hi))
    if bad.any():
        raise ValueError(f"score {scores[bad][0]} is outside the score range {lo}-{hi}")
    uniq_users, users = np.unique(user_ids, return_inverse=True)
    uniq_items, items = np.unique(anime_ids, return_inverse=True)
    if catalog:
        uniq_items = np.union1d(uniq_items, np.fromiter((a.anime_id for a in catalog), np.int64))
        items = np.searchsorted(uniq_items, anime_ids)
    keep = _last_of_each_pair(users.astype(np.int64), items.astype(np.int64), uniq_items.size)
    if keep is not None:
        users, items, scores = users[keep], items[keep], scores[keep]
    users = np.ascontiguousarray(users, np.int64)
    items = np.ascontiguousarray(items, np.int64)
    indptr = _indptr(users, uniq_users.size)
    vocab, mat = genre_matrix(uniq_items, item_genres)
    return TrainingData(
        uniq_users,
        uniq_items.astype(np.int64),
        users,
        items,
        scores,
        indptr,
        vocab,
        mat,
        (float(lo), float(hi)),
        _hash_in_order(
            uniq_users, users, uniq_items[items], scores, _text_order(uniq_users, indptr)
        ),
        tuple(catalog or ()),
        relatives,
    )


def _last_of_each_pair(users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray | None:
    """Rows to keep so that they are in (user, item) order with one row per pair, the last
    given; None when the rows already are (the database's order)."""
    key = users * max(n_items, 1) + items
    if key.size < 2 or bool(np.all(key[1:] > key[:-1])):
        return None
    order = np.argsort(key, kind="stable")
    key = key[order]
    last = np.ones(key.size, dtype=bool)
    last[:-1] = key[1:] != key[:-1]
    return np.asarray(order[last])


def _text_order(uniq_users: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """Row order of the fingerprint: users by their text, each user's rows as stored (by
    item index, which is anime-id order)."""
    perm = np.argsort(uniq_users.astype(str), kind="stable")
    counts = np.diff(indptr)[perm]
    offsets = np.cumsum(counts) - counts
    return np.asarray(np.repeat(indptr[perm] - offsets, counts) + np.arange(int(indptr[-1])))


def from_frame(
    df: pd.DataFrame,
    item_genres: Mapping[int, Sequence[str]],
    score_range: tuple[float, float] = (1.0, 10.0),
) -> TrainingData:
    """From a DataFrame with columns user, anime_id, score (training/splits.py layout)."""
    return from_arrays(
        df["user"].to_numpy(),
        df["anime_id"].to_numpy(),
        df["score"].to_numpy(),
        item_genres,
        score_range,
    )


def from_store(store: Store, platforms: Sequence[str] | None = None) -> TrainingData:
    """Every list row in the database (all platforms unless given), every catalog anime."""
    arrays = store.ratings.arrays(platforms)
    catalog = store.catalog.all()
    genres = {a.anime_id: a.genres for a in catalog}
    return from_arrays(
        arrays.user_ids,
        arrays.anime_ids,
        arrays.scores.astype(np.float32),
        genres,
        (1.0, 10.0),
        catalog,
        store_relatives(store, catalog),
    )


def store_relatives(store: Store, catalog: Sequence[Anime]) -> dict[int, tuple[int, ...]]:
    """anime id -> the other titles of its series (the stored franchises: related-anime links,
    else titles), for the content encoder's link to trained relatives."""
    return graph_relatives(franchise_store.load(store, catalog), catalog)


def graph_relatives(graph: FranchiseGraph, catalog: Sequence[Anime]) -> dict[int, tuple[int, ...]]:
    """anime id -> the other titles of its series in ``graph``, for the titles that have any."""
    found = {a.anime_id: graph.relatives(a.anime_id) for a in catalog}
    return {a: r for a, r in found.items() if r}


def split_users(n_users: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of user indices into (train, validation); validation may be empty."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n_users)
    n_val = round(n_users * val_fraction) if n_users >= 20 else 0
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def user_keys(store: Store) -> dict[int, str]:
    """users.id -> the id a ratings CSV would use: the data-set id, else PLATFORM:ID.

    Checkpoints record their training users under these keys (``train_users``), and the
    quality gate's holdout names its users the same way.
    """
    keys: dict[int, str] = {}
    for row in store.users.identities():
        pid = row.platform_user_id
        keys[row.id] = pid if row.platform == "dataset" else f"{row.platform}:{pid}"
    return keys
