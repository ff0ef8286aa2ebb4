"""Serving: a frozen model loaded from a checkpoint, fold-in of a user's list, scores and ranks.

Everything anime-side is computed once at load (numpy), so a request does only the user's work:
the fold-in is a few small matrix products over the user's own rows (closed form: no gradient
steps for the default model) and scoring every anime is one [n_items, d] product plus the
item-to-item rows of the user's history. A ``ServingModel`` never changes after it is built, so
threads may share it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recommender.anime_side import AnimeSide
from recommender.blend import BlendSchedule, BlendWeights, blend_scores
from recommender.checkpoint import (
    CheckpointError,
    checkpoint_tensors,
    load_checkpoint,
    module_state,
    read_metadata,
    save_checkpoint,
)
from recommender.content import ContentVocab
from recommender.model import HybridRecommender, ModelConfig, ModelShape
from recommender.state import RatingMix, UserState

__all__ = ["RatingMix", "ServingModel", "UserState", "matvec"]


def matvec(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """``matrix @ vector`` computed in the calling thread (numpy's own loop, not BLAS).

    One person's product over the catalog ([20k x 64]) is too small for BLAS threads to pay:
    OpenBLAS hands it to its worker threads anyway, and on a busy machine waiting for them
    cost 3-4 ms of CPU per product against about 0.2 ms here (see benchmarks/RESULTS.md).
    """
    return np.asarray(np.einsum("ij,j->i", matrix, vector))


class ServingModel:
    """A loaded checkpoint: fold-in of any user, predicted scores, rank scores, explanations."""

    def __init__(
        self,
        module: HybridRecommender,
        anime_ids: np.ndarray,
        genre_vocab: list[str],
        item_genres: np.ndarray,
        popularity: np.ndarray,
        meta: dict[str, Any],
        ease_index: np.ndarray | None = None,
        ease_value: np.ndarray | None = None,
        path: Path | None = None,
        knn_index: np.ndarray | None = None,
        knn_value: np.ndarray | None = None,
    ) -> None:
        self.module = module.eval().cpu()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.config: ModelConfig = module.config
        self.meta = meta
        self.path = Path(path) if path is not None else Path("<memory>")
        self.version: str = str(meta.get("version", "unversioned"))
        self.trained_at: str | None = meta.get("trained_at")
        self.metrics: dict[str, float] = dict(meta.get("metrics", {}))
        self.fingerprint: str | None = meta.get("fingerprint")
        lo, hi = meta.get("score_range", (1.0, 10.0))
        self.score_range = (float(lo), float(hi))
        self.score_scale = (self.score_range[1] - self.score_range[0]) / 2.0
        self.like_score = self.score_range[0] + self.config.like_threshold * (
            self.score_range[1] - self.score_range[0]
        )
        self.anime_ids = np.asarray(anime_ids, dtype=np.int64)
        self.index_of: dict[int, int] = {int(a): i for i, a in enumerate(self.anime_ids)}
        self.genre_vocab = list(genre_vocab)
        self.item_genres = np.asarray(item_genres, dtype=bool)
        self.popularity = np.asarray(popularity, dtype=np.float32)
        vocab = meta.get("content_vocab")
        self.content_vocab = ContentVocab.from_json(vocab) if vocab else None
        self._read_mixes(meta)
        self._seed_lock = threading.Lock()
        self._anime_side(module)
        self.ease_index = ease_index
        self.ease_value = ease_value
        self.knn_index = knn_index
        self.knn_value = knn_value

    def _read_mixes(self, meta: dict[str, Any]) -> None:
        """The tuned rank blend and rating mixes (the config's defaults where absent)."""
        default_blend = BlendWeights(
            self.config.blend_ease,
            self.config.blend_rank,
            self.config.blend_rating,
            self.config.blend_popularity,
        )
        self.blend = BlendSchedule.from_json(meta.get("blend"), default_blend)
        mix = meta.get("rating_mix", {})
        default = RatingMix(ridge=self.config.fold_in_ridge)
        self.few_max = int(mix.get("few_max", 0))
        self.mix_few = RatingMix(**mix["few"]) if "few" in mix else default
        self.mix_many = RatingMix(**mix["many"]) if "many" in mix else default

    def _anime_side(self, module: HybridRecommender) -> None:
        """Everything anime-side (see :class:`recommender.anime_side.AnimeSide`)."""
        side = AnimeSide.of(module, self.popularity)
        self._table_t, self.table, self.item_bias = side.table_t, side.table, side.item_bias
        self.mu, self.is_new_mask, self.borrowed = side.mu, side.is_new, side.borrowed
        self.item_vectors, self.log_popularity = side.item_vectors, side.log_popularity
        self.enc_score, self.enc_list = side.enc_score, side.enc_list
        self.rank_table, self.rank_bias = side.rank_table, side.rank_bias
        self._user_mean = side.user_mean

    def is_new(self, index: int) -> bool:
        """Whether anime ``index`` is served by its content alone (no list rows in training)."""
        return bool(self.is_new_mask[index])

    # -- loading and saving ---------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> ServingModel:
        ckpt = load_checkpoint(path)
        meta, tensors = ckpt.meta, ckpt.tensors
        try:
            config = ModelConfig.from_json(meta["config"])
            shape = ModelShape(**meta["shape"])
            genres = tensors["item_genres"]
            features = tensors.get("item_content", genres).float()
            module = HybridRecommender(config, shape, features, meta.get("global_mean", 0.0))
            state = module_state(tensors)
            state["item_genres"] = features
            module.load_state_dict(state, strict=True)
            ease_i = tensors.get("ease.index")
            ease_v = tensors.get("ease.value")
            knn_i = tensors.get("knn.index")
            knn_v = tensors.get("knn.value")
            return cls(
                module,
                tensors["anime_ids"].numpy(),
                meta["genre_vocab"],
                genres.numpy(),
                tensors["popularity"].numpy(),
                meta,
                None if ease_i is None else ease_i.numpy().astype(np.int64),
                None if ease_v is None else ease_v.numpy(),
                path=Path(path),
                knn_index=None if knn_i is None else knn_i.numpy().astype(np.int64),
                knn_value=None if knn_v is None else knn_v.numpy(),
            )
        except CheckpointError:
            raise
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"{path}: checkpoint does not fit this model ({first})") from None

    def save(self, path: str | Path, **meta_updates: Any) -> Path:
        """Write this model as a checkpoint (atomic); ``meta_updates`` amend the metadata."""
        meta = {**self.meta, **meta_updates}
        meta["blend"] = self.blend.to_json()
        meta["rating_mix"] = self._mix_json()
        tensors = checkpoint_tensors(
            self.module,
            self.anime_ids,
            self.item_genres,
            self.popularity,
            self.ease_index,
            self.ease_value,
            self.knn_index,
            self.knn_value,
        )
        return save_checkpoint(path, tensors, meta)

    @staticmethod
    def read_metadata(path: str | Path) -> dict[str, Any]:
        return read_metadata(path)

    def with_blend(self, blend: BlendSchedule | BlendWeights) -> ServingModel:
        """A copy sharing all arrays but with other rank-blend weights (for tuning)."""
        clone = self._clone()
        clone.blend = blend if isinstance(blend, BlendSchedule) else BlendSchedule.constant(blend)
        clone.meta = {**self.meta, "blend": clone.blend.to_json()}
        return clone

    def with_rating_mix(self, few: RatingMix, many: RatingMix, few_max: int) -> ServingModel:
        """A copy with other rating-mix weights: ``few`` for users with <= few_max scores."""
        clone = self._clone()
        clone.mix_few, clone.mix_many, clone.few_max = few, many, int(few_max)
        clone.meta = {**self.meta, "rating_mix": clone._mix_json()}
        return clone

    def _clone(self) -> ServingModel:
        clone = object.__new__(ServingModel)
        clone.__dict__.update(self.__dict__)
        return clone

    def _mix_json(self) -> dict[str, Any]:
        return {"few_max": self.few_max, "few": asdict(self.mix_few), "many": asdict(self.mix_many)}

    def mix_for(self, n_scored: int) -> RatingMix:
        return self.mix_few if n_scored <= self.few_max else self.mix_many

    @property
    def n_items(self) -> int:
        return len(self.anime_ids)

    # -- fold-in ----------------------------------------------------------------------------------
    def fold_in(self, anime_ids: Sequence[int], scores: Sequence[int | float | None]) -> UserState:
        """A user's state from their list; ids the model does not know are ignored."""
        idx: list[int] = []
        vals: list[float] = []
        seen: set[int] = set()
        for aid, score in zip(anime_ids, scores, strict=True):
            i = self.index_of.get(int(aid))
            if i is None or i in seen:
                continue
            seen.add(i)
            idx.append(i)
            vals.append(np.nan if score is None or score == 0 else float(score))
        return self.fold_in_indices(
            np.asarray(idx, dtype=np.int64), np.asarray(vals, dtype=np.float32)
        )

    def fold_in_indices(self, hist: np.ndarray, hs: np.ndarray) -> UserState:
        """Fold-in from model indices and float scores (NaN = unscored), for evaluation."""
        hist = np.asarray(hist, dtype=np.int64)
        hs = np.asarray(hs, dtype=np.float32)
        if self.config.kind == "seed":
            return self._fold_in_seed(hist, hs)
        return self._fold_in_hybrid(hist, hs)

    def _fold_in_hybrid(self, hist: np.ndarray, hs: np.ndarray) -> UserState:
        d = self.table.shape[1]
        if hist.size == 0:
            return UserState(hist, hs, np.zeros(d, np.float32), 0.0, None)
        scored = np.isfinite(hs)
        s_idx = hist[scored]
        s_val = hs[scored]
        ns, nl = float(scored.sum()), float(hist.size)
        base_i = self.mu + self.item_bias[s_idx]
        bu = float((s_val - base_i).sum() / (ns + self.config.user_bias_reg))
        resid = (s_val - base_i - bu) / self.score_scale
        z = resid @ self.enc_score[s_idx] / np.sqrt(ns + 1.0)
        z = z + self.enc_list[hist].sum(0) / np.sqrt(nl + 1.0)
        z = z.astype(np.float32)
        delta = None
        ridge = self.mix_for(int(ns)).ridge
        if ridge > 0 and ns > 0:
            q = self.table[s_idx]
            res = s_val - (base_i + bu + q @ z)
            a = q.T @ q + ridge * np.eye(d, dtype=np.float32)
            delta = np.linalg.solve(a, q.T @ res).astype(np.float32)
        return UserState(hist, hs, z, bu, delta)

    def _fold_in_seed(self, hist: np.ndarray, hs: np.ndarray, steps: int = 100) -> UserState:
        """The origin model is not linear in the user: a few Adam steps on (vector, bias)."""
        scored = np.isfinite(hs)
        u0 = self._user_mean.copy()
        if not scored.any():
            return UserState(hist, hs, u0, 0.0, None)
        items = torch.from_numpy(hist[scored])
        target = torch.from_numpy(hs[scored])
        u = torch.tensor(u0, requires_grad=True)
        bu = torch.zeros((), requires_grad=True)
        opt = torch.optim.Adam([u, bu], lr=0.05)
        table = self._table_t[items]
        bi = torch.from_numpy(self.item_bias[hist[scored]])
        with self._seed_lock, torch.enable_grad():
            for _ in range(steps):
                opt.zero_grad()
                pred = self.module.score_vectors(u[None, :], bu, table, bi)
                loss = ((pred - target) ** 2).mean() + 1e-3 * (u**2).sum() + 1e-2 * bu**2
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
        return UserState(hist, hs, u.detach().numpy().astype(np.float32), float(bu.detach()), None)

    def state_from_vector(
        self, vector: np.ndarray, bias: float, hist: np.ndarray, hs: np.ndarray
    ) -> UserState:
        """A state from a trained user embedding (seed users seen in training)."""
        return UserState(
            np.asarray(hist, np.int64),
            np.asarray(hs, np.float32),
            np.asarray(vector, np.float32),
            float(bias),
            None,
        )

    # -- scores -----------------------------------------------------------------------------------
    def predict(self, state: UserState) -> np.ndarray:
        """Predicted score for every anime, float32 [n_items], clipped to the score scale."""
        if self.config.kind == "seed":
            with torch.no_grad():
                out = self.module.score_vectors(
                    torch.from_numpy(state.vector)[None, :],
                    torch.tensor(state.bias),
                    self._table_t,
                    torch.from_numpy(self.item_bias),
                ).numpy()
        else:
            mix = self.mix_for(state.n_scored)
            out = self.baseline(state) + mix.dot_weight * self.dot_part(state)
            if mix.knn_weight:
                out = out + mix.knn_weight * self.knn_residual(state, mix.knn_shrink)
        return np.asarray(np.clip(out, *self.score_range).astype(np.float32))

    def baseline(self, state: UserState) -> np.ndarray:
        return self.mu + state.bias + self.item_bias

    def dot_part(self, state: UserState) -> np.ndarray:
        z = state.vector if state.delta is None else state.vector + state.delta
        return matvec(self.table, z)

    def knn_residual(self, state: UserState, shrink: float) -> np.ndarray:
        """Neighbourhood correction: similarity-weighted mean of the user's own residuals over
        the rated anime most similar to each anime (KNN-baseline style, pearson-baseline
        similarities solved at training), shrunk towards 0 when few neighbours were rated."""
        if self.knn_index is None or state.history_index.size == 0:
            return np.zeros(self.n_items, np.float32)
        scored = np.isfinite(state.history_scores)
        h = state.history_index[scored]
        if h.size == 0:
            return np.zeros(self.n_items, np.float32)
        assert self.knn_value is not None  # set together with knn_index
        resid = state.history_scores[scored] - (self.mu + state.bias + self.item_bias[h])
        idx = self.knn_index[h].ravel()
        val = self.knn_value[h]
        num = np.bincount(idx, (val * resid[:, None]).ravel(), minlength=self.n_items)
        den = np.bincount(idx, np.abs(val).ravel(), minlength=self.n_items)
        return (num / (den + shrink)).astype(np.float32)

    def watch_logits(self, state: UserState) -> np.ndarray:
        """log P(the user watches anime i next), from the softmax head (hybrid only)."""
        logits = matvec(self.rank_table, state.vector) + self.rank_bias
        m = logits.max()
        return np.asarray((logits - (m + np.log(np.exp(logits - m).sum()))).astype(np.float32))

    def ease_scores(self, state: UserState) -> np.ndarray:
        """Item-to-item scores: sum over the user's list of each anime's (pruned) EASE row."""
        if self.ease_index is None or state.history_index.size == 0:
            return np.zeros(self.n_items, np.float32)
        assert self.ease_value is not None  # set together with ease_index
        w = self._list_weights(state.history_scores)
        idx = self.ease_index[state.history_index]
        val = self.ease_value[state.history_index] * w[:, None]
        out = np.bincount(idx.ravel(), val.ravel(), minlength=self.n_items).astype(np.float32)
        return self.borrowed.fill(out)

    def rank(self, state: UserState, predicted: np.ndarray | None = None) -> np.ndarray:
        """Rank score for every anime (higher = better pick): the blend of "would watch",
        "would like" and item-to-item that suits the length of the user's list."""
        pred = self.predict(state) if predicted is None else predicted
        if state.history_index.size == 0:
            # cold start: what many people watch, nudged towards what they liked
            return (self.log_popularity + (pred - self.mu) / self.score_scale).astype(np.float32)
        if self.config.kind == "seed":
            return pred
        w = self.blend.at(state.history_index.size)
        new = self.borrowed.new  # content-only titles: ordered by the new-title weights too
        watch = self.watch_logits(state) if w.rank or new.size else None
        ease = self.ease_scores(state) if w.ease or new.size else None
        args = (self.mu, self.score_scale, self.log_popularity, new)
        return blend_scores(w, pred, watch, ease, *args)

    def contributions(self, state: UserState, item_index: int) -> np.ndarray:
        """How much each anime in the user's history pushed ``item_index`` up the ranking."""
        return np.asarray(self.contributions_many(state, np.array([item_index], dtype=np.int64))[0])

    def contributions_many(self, state: UserState, items: np.ndarray) -> np.ndarray:
        """[len(items), len(history)]: :meth:`contributions` for several picks in one set of
        matrix products (explaining a list of ten costs about what explaining one did)."""
        items = np.asarray(items, dtype=np.int64)
        hist, hs = state.history_index, state.history_scores
        n = hist.size
        if n == 0:
            return np.zeros((items.size, 0), np.float32)
        if self.config.kind == "seed":
            sim = self.item_vectors[items] @ self.item_vectors[hist].T
            dev = np.nan_to_num(hs - (self.mu + state.bias), nan=0.0) / self.score_scale
            return np.asarray((sim * dev[None, :]).astype(np.float32))
        scored = np.isfinite(hs)
        ns, nl = float(scored.sum()), float(n)
        base = self.mu + self.item_bias[hist] + state.bias
        resid = np.where(scored, np.nan_to_num(hs) - base, 0.0) / self.score_scale
        score_part = (resid / np.sqrt(ns + 1.0))[None, :]
        list_part = 1.0 / np.sqrt(nl + 1.0)
        enc_score, enc_list = self.enc_score[hist].T, self.enc_list[hist].T  # [d, n]
        w = self.blend.at(n)
        q = self.table[items]
        out = (
            w.rating
            * (score_part * (q @ enc_score) + list_part * (q @ enc_list))
            / self.score_scale
        )
        if w.rank:
            k = self.rank_table[items]
            out = out + w.rank * (score_part * (k @ enc_score) + list_part * (k @ enc_list))
        if self.ease_index is not None and self.ease_value is not None and w.ease:
            out = out + w.ease * self._ease_hits(hist, items) * self._list_weights(hs)[None, :]
        return np.asarray(out.astype(np.float32))

    def _ease_hits(self, hist: np.ndarray, items: np.ndarray) -> np.ndarray:
        """[len(items), len(hist)]: each history anime's pruned item-to-item value at each of
        ``items``, summed over the row's entries (0 where its row does not list the item).
        Only the hits are touched, not a [items x history x row length] comparison."""
        assert self.ease_index is not None and self.ease_value is not None
        uniq, inverse = np.unique(items, return_inverse=True)
        slot = np.full(self.n_items, -1, np.int32)
        slot[uniq] = np.arange(uniq.size, dtype=np.int32)
        found = slot[self.ease_index[hist]]  # [n, row length]: the item's place in uniq, or -1
        h, col = np.nonzero(found >= 0)
        out = np.zeros((uniq.size, hist.size), np.float32)
        np.add.at(out, (found[h, col], h), self.ease_value[hist[h], col])
        return out[inverse.reshape(-1)]

    def _list_weights(self, hs: np.ndarray) -> np.ndarray:
        return np.where(np.nan_to_num(hs, nan=-np.inf) >= self.like_score, 2.0, 1.0).astype(
            np.float32
        )
