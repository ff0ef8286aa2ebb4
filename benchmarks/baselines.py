"""Classic recommender baselines for the accuracy benchmark, one small class per algorithm.

Every baseline works in the index space of a ``TrainSet`` (users and items of the training
rows) and is a ``Scorer``: ``predict(users, items)`` gives scores for (user, item) pairs and
``rank_scores(users)`` a [users, items] matrix to rank by (higher = better). ``fold_in``
returns a Scorer for users the baseline never saw, from their revealed rows. A baseline that
cannot predict scores, rank, or fold in sets ``predicts`` / ``ranks`` / ``folds_in`` False and
the benchmark shows None for it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from threadpoolctl import threadpool_limits


# -- data -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainSet:
    """Training rows as index arrays. Score 0 = on the list but unscored (implicit only)."""

    user_ids: np.ndarray  # raw user id of each user index
    item_ids: np.ndarray  # raw item id of each item index (the items "known")
    u: np.ndarray  # user index per row
    i: np.ndarray  # item index per row
    score: np.ndarray  # float32 per row
    score_range: tuple[float, float]
    like_min: float  # a score at or above this is "liked" (8 on 1-10, 4.0 on MovieLens)
    zero_is_score: bool = False  # the origin protocol: 0 rows are targets of value 0

    @classmethod
    def from_frame(
        cls, df: pd.DataFrame, score_range: tuple[float, float], like_min: float
    ) -> TrainSet:
        users, u = np.unique(df["user"].to_numpy(), return_inverse=True)
        items, i = np.unique(df["anime_id"].to_numpy(), return_inverse=True)
        return cls(
            users,
            items.astype(np.int64),
            u.astype(np.int64),
            i.astype(np.int64),
            df["score"].to_numpy(dtype=np.float32),
            score_range,
            like_min,
        )

    @property
    def n_users(self) -> int:
        return int(self.user_ids.size)

    @property
    def n_items(self) -> int:
        return int(self.item_ids.size)

    @property
    def scored(self) -> np.ndarray:
        """Rows with an explicit score (every row when zeros are scores)."""
        return np.ones(self.score.size, bool) if self.zero_is_score else self.score > 0

    def weights(self, score: np.ndarray | None = None) -> np.ndarray:
        """Implicit weight of a row: 2 if liked, else 1 (watched, scored or not)."""
        s = self.score if score is None else score
        return np.where(s >= self.like_min, 2.0, 1.0).astype(np.float32)

    def interactions(self) -> sp.csr_matrix:
        """Weighted users x items matrix of every training row."""
        return sp.csr_matrix(
            (self.weights(), (self.u, self.i)), shape=(self.n_users, self.n_items), dtype=np.float32
        )

    def clip(self, pred: np.ndarray) -> np.ndarray:
        lo, hi = self.score_range
        return np.clip(pred, lo, hi)


@dataclass(frozen=True)
class Revealed:
    """Revealed rows of users a baseline never saw (CSR layout, items in TrainSet indices)."""

    user_ids: np.ndarray
    indptr: np.ndarray
    items: np.ndarray
    scores: np.ndarray

    @classmethod
    def from_frame(cls, df: pd.DataFrame, train: TrainSet) -> tuple[Revealed, int]:
        """Build from a frame of revealed rows; rows for unknown items are dropped (counted)."""
        pos = np.searchsorted(train.item_ids, df["anime_id"].to_numpy())
        pos = np.minimum(pos, train.n_items - 1)
        known = train.item_ids[pos] == df["anime_id"].to_numpy()
        d = df[known].assign(_i=pos[known]).sort_values(["user", "_i"], kind="mergesort")
        users, counts = np.unique(d["user"].to_numpy(), return_counts=True)
        return cls(
            users,
            np.r_[0, np.cumsum(counts)].astype(np.int64),
            d["_i"].to_numpy(dtype=np.int64),
            d["score"].to_numpy(dtype=np.float32),
        ), int((~known).sum())

    @property
    def n_users(self) -> int:
        return int(self.user_ids.size)

    def rows(self, pos: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.indptr[pos], self.indptr[pos + 1]
        return self.items[a:b], self.scores[a:b]

    def matrix(self, train: TrainSet) -> sp.csr_matrix:
        return sp.csr_matrix(
            (train.weights(self.scores), self.items, self.indptr),
            shape=(self.n_users, train.n_items),
            dtype=np.float32,
        )


def _by_user(users: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(user, positions of that user's pairs) for a pair list, in user order."""
    order = np.argsort(users, kind="stable")
    su = users[order]
    starts = np.r_[0, np.flatnonzero(np.diff(su)) + 1, su.size]
    for a, b in itertools.pairwise(starts):
        if a < b:
            yield int(su[a]), order[a:b]


# -- the interface ----------------------------------------------------------------------------
class Scorer:
    """Scores for users in some index space (TrainSet users, or Revealed positions)."""

    predicts = False
    ranks = False

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not predict scores")

    def rank_scores(self, users: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not rank")


class Baseline(Scorer):
    name = "baseline"
    folds_in = False

    def fit(self, train: TrainSet) -> None:
        raise NotImplementedError

    def fold_in(self, revealed: Revealed) -> Scorer:
        raise NotImplementedError(f"{self.name} cannot fold in unseen users")


class _Dense(Scorer):
    """A scorer from a dense [users, items] prediction and/or ranking matrix."""

    def __init__(self, pred: np.ndarray | None, rank: np.ndarray | None, train: TrainSet) -> None:
        self._pred, self._rank, self._train = pred, rank, train
        self.predicts, self.ranks = pred is not None, rank is not None

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        if self._pred is None:
            return super().predict(users, items)
        return self._train.clip(self._pred[users, items])

    def rank_scores(self, users: np.ndarray) -> np.ndarray:
        if self._rank is None:
            return super().rank_scores(users)
        return self._rank[users]


# -- global mean and most popular -------------------------------------------------------------
class GlobalMean(Baseline):
    """Every prediction is the mean training score. Cannot rank."""

    name = "global mean"
    predicts = True
    folds_in = True

    def fit(self, train: TrainSet) -> None:
        self.mu = float(train.score[train.scored].mean())

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return np.full(len(items), self.mu, dtype=np.float32)

    def fold_in(self, revealed: Revealed) -> Scorer:
        return self


class MostPopular(Baseline):
    """Ranks by the number of training rows (scored or not). Predicts no scores."""

    name = "most popular"
    ranks = True
    folds_in = True

    def fit(self, train: TrainSet) -> None:
        self.count = np.bincount(train.i, minlength=train.n_items).astype(np.float32)

    def rank_scores(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.count, (len(users), self.count.size))

    def fold_in(self, revealed: Revealed) -> Scorer:
        return self


# -- bias-only --------------------------------------------------------------------------------
class BiasOnly(Baseline):
    """mu + b_user + b_item, fitted by alternating ridge sweeps (Surprise's BaselineOnly ALS).

    Ranks by the same score (so everyone gets the best-liked items they have not seen). The
    fold-in solves b_user for a new user with the item biases fixed.
    """

    name = "bias-only"
    predicts = ranks = folds_in = True

    def __init__(self, reg_user: float = 15.0, reg_item: float = 10.0, sweeps: int = 10) -> None:
        self.reg_user, self.reg_item, self.sweeps = reg_user, reg_item, sweeps

    def fit(self, train: TrainSet) -> None:
        m = train.scored
        u, i, r = train.u[m], train.i[m], train.score[m].astype(np.float64)
        self.train = train
        self.mu = float(r.mean())
        nu = np.bincount(u, minlength=train.n_users)
        ni = np.bincount(i, minlength=train.n_items)
        self.bu = np.zeros(train.n_users)
        self.bi = np.zeros(train.n_items)
        for _ in range(self.sweeps):
            self.bi = np.bincount(i, r - self.mu - self.bu[u], train.n_items) / (self.reg_item + ni)
            self.bu = np.bincount(u, r - self.mu - self.bi[i], train.n_users) / (self.reg_user + nu)

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.train.clip(self.mu + self.bu[users] + self.bi[items])

    def rank_scores(self, users: np.ndarray) -> np.ndarray:
        return self.bu[users, None] + self.bi[None, :]

    def fold_in_bias(self, revealed: Revealed) -> np.ndarray:
        bu = np.zeros(revealed.n_users)
        for p in range(revealed.n_users):
            items, scores = revealed.rows(p)
            s = scores > 0
            bu[p] = np.sum(scores[s] - self.mu - self.bi[items[s]]) / (self.reg_user + s.sum())
        return bu

    def fold_in(self, revealed: Revealed) -> Scorer:
        bu = self.fold_in_bias(revealed)
        return _Dense(
            self.mu + bu[:, None] + self.bi[None, :], bu[:, None] + self.bi[None, :], self.train
        )


# -- Surprise SVD and KNNBaseline -------------------------------------------------------------
def _surprise_trainset(train: TrainSet):
    """A Surprise trainset of the scored rows, raw ids = our indices."""
    from surprise import Dataset, Reader

    m = train.scored
    df = pd.DataFrame({"u": train.u[m], "i": train.i[m], "r": train.score[m].astype(float)})
    data = Dataset.load_from_df(df, Reader(rating_scale=train.score_range))
    return data.build_full_trainset()


def _to_ours(ts, n: int, kind: str) -> np.ndarray:
    """For each of our indices 0..n-1, Surprise's inner id, or -1 (never scored)."""
    out = np.full(n, -1, dtype=np.int64)
    raw_to_inner = ts._raw2inner_id_users if kind == "user" else ts._raw2inner_id_items
    for raw, inner in raw_to_inner.items():
        out[int(raw)] = inner
    return out


class SurpriseSVD(Baseline):
    """Surprise's SVD (biased MF by SGD), scores computed in numpy from its factors.

    Fold-in: ridge regression for (b_user, p_user) on the revealed scores, items fixed.
    """

    name = "SVD (Surprise)"
    predicts = ranks = folds_in = True

    def __init__(
        self, seed: int = 42, n_factors: int = 100, n_epochs: int = 20, fold_in_reg: float = 5.0
    ) -> None:
        self.seed, self.n_factors, self.n_epochs = seed, n_factors, n_epochs
        self.fold_in_reg = fold_in_reg

    def fit(self, train: TrainSet) -> None:
        from surprise import SVD

        ts = _surprise_trainset(train)
        algo = SVD(n_factors=self.n_factors, n_epochs=self.n_epochs, random_state=self.seed)
        algo.fit(ts)
        self.train, self.mu = train, float(ts.global_mean)
        ui, ii = _to_ours(ts, train.n_users, "user"), _to_ours(ts, train.n_items, "item")
        self.bu = np.where(ui >= 0, algo.bu[np.maximum(ui, 0)], 0.0)
        self.bi = np.where(ii >= 0, algo.bi[np.maximum(ii, 0)], 0.0)
        self.pu = np.where((ui >= 0)[:, None], algo.pu[np.maximum(ui, 0)], 0.0)
        self.qi = np.where((ii >= 0)[:, None], algo.qi[np.maximum(ii, 0)], 0.0)

    def _raw(self, bu, pu, users, items) -> np.ndarray:
        return (
            self.mu + bu[users] + self.bi[items] + np.einsum("nf,nf->n", pu[users], self.qi[items])
        )

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.train.clip(self._raw(self.bu, self.pu, users, items))

    def rank_scores(self, users: np.ndarray) -> np.ndarray:
        return self.bu[users, None] + self.bi[None, :] + self.pu[users] @ self.qi.T

    def fold_in(self, revealed: Revealed) -> Scorer:
        f = self.qi.shape[1]
        bu, pu = np.zeros(revealed.n_users), np.zeros((revealed.n_users, f))
        reg = self.fold_in_reg * np.eye(f + 1)
        with threadpool_limits(1, "blas"):  # many tiny solves: threads only add overhead
            for p in range(revealed.n_users):
                items, scores = revealed.rows(p)
                s = scores > 0
                a = np.c_[np.ones(s.sum()), self.qi[items[s]]]
                y = scores[s] - self.mu - self.bi[items[s]]
                w = np.linalg.solve(a.T @ a + reg, a.T @ y)
                bu[p], pu[p] = w[0], w[1:]
        raw = bu[:, None] + self.bi[None, :] + pu @ self.qi.T
        return _Dense(self.mu + raw, raw, self.train)


class SurpriseKNNBaseline(Baseline):
    """Surprise's KNNBaseline, item-based, pearson_baseline similarity, k=40.

    Surprise fits the baselines and the similarity matrix; predictions are Surprise's
    ``estimate`` formula vectorised in numpy (top-k most similar items the user scored, only
    positive similarities contribute), which makes ranking every item feasible. Fold-in: the
    user bias from the revealed scores (Surprise's reg_u), then the same neighbour formula.
    """

    name = "KNNBaseline (Surprise)"
    predicts = ranks = folds_in = True

    def __init__(self, k: int = 40, reg_user: float = 15.0) -> None:
        self.k, self.reg_user = k, reg_user

    def fit(self, train: TrainSet) -> None:
        from surprise import KNNBaseline

        ts = _surprise_trainset(train)
        algo = KNNBaseline(
            k=self.k, sim_options={"name": "pearson_baseline", "user_based": False}, verbose=False
        )
        algo.fit(ts)
        self.train, self.mu = train, float(ts.global_mean)
        ui, ii = _to_ours(ts, train.n_users, "user"), _to_ours(ts, train.n_items, "item")
        self.bu = np.where(ui >= 0, algo.bu[np.maximum(ui, 0)], 0.0)
        self.bi = np.where(ii >= 0, algo.bi[np.maximum(ii, 0)], 0.0)
        sim = np.zeros((train.n_items, train.n_items), dtype=np.float32)
        known = np.flatnonzero(ii >= 0)
        sim[np.ix_(known, known)] = algo.sim[np.ix_(ii[known], ii[known])]
        self.sim = sim
        m = train.scored
        order = np.lexsort((train.i[m], train.u[m]))
        self._ru, self._ri = train.u[m][order], train.i[m][order]
        self._rr = train.score[m][order].astype(np.float64)
        self._ptr = np.searchsorted(self._ru, np.arange(train.n_users + 1))
        del algo

    def _estimate(
        self, targets: np.ndarray, bu: float, items: np.ndarray, scores: np.ndarray
    ) -> np.ndarray:
        """Unclipped estimates for ``targets`` of one user who scored ``items``."""
        base = self.mu + bu + self.bi[targets]
        if items.size == 0:
            return base
        res = scores - (self.mu + bu + self.bi[items])
        s = self.sim[np.ix_(targets, items)]
        if items.size > self.k:
            idx = np.argpartition(-s, self.k - 1, axis=1)[:, : self.k]
            s = np.take_along_axis(s, idx, axis=1)
            r = res[idx]
        else:
            r = np.broadcast_to(res, s.shape)
        w = np.maximum(s, 0.0)
        den = w.sum(axis=1)
        num = (w * r).sum(axis=1)
        return base + np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)

    def _history(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = self._ptr[user], self._ptr[user + 1]
        return self._ri[a:b], self._rr[a:b]

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        out = np.empty(len(items))
        for user, pos in _by_user(np.asarray(users)):
            out[pos] = self._estimate(items[pos], self.bu[user], *self._history(user))
        return self.train.clip(out)

    def rank_scores(self, users: np.ndarray) -> np.ndarray:
        everything = np.arange(self.train.n_items)
        return np.stack(
            [self._estimate(everything, self.bu[u], *self._history(int(u))) for u in users]
        )

    def fold_in(self, revealed: Revealed) -> Scorer:
        everything = np.arange(self.train.n_items)
        rows = []
        for p in range(revealed.n_users):
            items, scores = revealed.rows(p)
            s = scores > 0
            items, scores = items[s], scores[s].astype(np.float64)
            bu = np.sum(scores - self.mu - self.bi[items]) / (self.reg_user + items.size)
            rows.append(self._estimate(everything, bu, items, scores))
        est = np.stack(rows) if rows else np.zeros((0, self.train.n_items))
        return _Dense(est, est, self.train)


# -- implicit ALS -----------------------------------------------------------------------------
class ImplicitALS(Baseline):
    """implicit's CPU ALS on the weighted interaction matrix (rows scored >= like_min count 2).

    Predicts no scores. Fold-in: implicit's ``recalculate_user`` (one least-squares solve per
    user against the fixed item factors).
    """

    name = "ALS (implicit)"
    ranks = folds_in = True

    def __init__(
        self,
        seed: int = 42,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 2.0,
        iterations: int = 15,
        threads: int = 2,
    ) -> None:
        self.seed, self.factors, self.regularization = seed, factors, regularization
        self.alpha, self.iterations, self.threads = alpha, iterations, threads

    def fit(self, train: TrainSet) -> None:
        from implicit.cpu.als import AlternatingLeastSquares

        self.train = train
        with threadpool_limits(1, "blas"):  # implicit runs its own threads; BLAS ones fight it
            self.model = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                random_state=self.seed,
                num_threads=self.threads,
            )
            self.model.fit(train.interactions(), show_progress=False)

    def rank_scores(self, users: np.ndarray) -> np.ndarray:
        return self.model.user_factors[users] @ self.model.item_factors.T

    def fold_in(self, revealed: Revealed) -> Scorer:
        x = revealed.matrix(self.train)
        factors = self.model.recalculate_user(np.arange(revealed.n_users), x)
        return _Dense(None, factors @ self.model.item_factors.T, self.train)


# -- EASE -------------------------------------------------------------------------------------
class EASE(Baseline):
    """Steck 2019's closed-form item-item model: B = I - P / diag(P), P = (X'X + lambda I)^-1.

    X is the weighted interaction matrix (every list row 1, rows scored >= like_min 2). Scores
    are x_u @ B, so fold-in is the same product on the revealed rows. Predicts no scores.
    """

    name = "EASE"
    ranks = folds_in = True

    def __init__(self, lam: float = 500.0) -> None:
        self.lam = lam

    def fit(self, train: TrainSet) -> None:
        self.train = train
        self.x = train.interactions()
        g = (self.x.T @ self.x).toarray().astype(np.float64)
        g[np.diag_indices_from(g)] += self.lam
        p = np.linalg.inv(g)
        b = p / (-np.diag(p))[None, :]
        b[np.diag_indices_from(b)] = 0.0
        self.b = b.astype(np.float32)

    def rank_scores(self, users: np.ndarray) -> np.ndarray:
        return np.asarray(self.x[users] @ self.b)

    def fold_in(self, revealed: Revealed) -> Scorer:
        return _Dense(None, np.asarray(revealed.matrix(self.train) @ self.b), self.train)


def all_baselines(seed: int = 42) -> list[Baseline]:
    """The benchmark's baselines, cheapest first."""
    return [
        GlobalMean(),
        MostPopular(),
        BiasOnly(),
        SurpriseSVD(seed=seed),
        SurpriseKNNBaseline(),
        ImplicitALS(seed=seed),
        EASE(),
    ]
