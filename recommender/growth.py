"""Titles imported after training join a serving model without a retrain.

:func:`extend_model` appends anime to a :class:`ServingModel` as content-only titles: their
vector is the trained content path over their catalog row (and, where they have trained
relatives, the relatives' mean embedding), their biases come from the content bias head, and
what only list rows teach is borrowed from their nearest trained anime (see
:mod:`recommender.neighbours`). The result is a complete model (it saves and loads like a
trained one); the original is not changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace

import numpy as np
import torch

from recommender.content import content_inputs
from recommender.model import HybridRecommender, ModelShape
from recommender.scoring import ServingModel
from recommender.user_entry import Serving, build_serving
from storage.rows import Anime

#: state-dict entries with one row per anime, and what a new anime's row starts as
_PER_ANIME = ("item_emb.weight", "item_bias.weight", "enc_score.weight", "enc_list.weight")
_PER_ANIME_ZERO = (*_PER_ANIME, "rank_bias.weight", "trained")


#: anime id -> the other titles of its series (``FranchiseGraph.relatives``)
RelatedOf = Callable[[int], Iterable[int]]


def grow(model: ServingModel, catalog: Sequence[Anime], related: RelatedOf) -> ServingModel:
    """``model`` plus the catalog titles it has no vector for (content vectors)."""
    fresh = [a.anime_id for a in catalog if a.anime_id not in model.index_of]
    relatives = {a: tuple(related(a)) for a in fresh}
    return extend_model(model, catalog, {a: r for a, r in relatives.items() if r} or None)


def grown_serving(old: Serving, catalog: Sequence[Anime], related: RelatedOf) -> Serving:
    """``old`` with the titles of ``catalog`` it does not know joined (a catalog refresh)."""
    model = grow(old.model, catalog, related)
    return build_serving(model, catalog, replace(old.info, n_anime=model.n_items))


def can_extend(model: ServingModel) -> bool:
    """Whether ``model`` has a content encoder (older checkpoints and seed models do not)."""
    return model.content_vocab is not None and model.module.content


def extend_model(
    model: ServingModel,
    anime: Sequence[Anime],
    relatives: Mapping[int, Sequence[int]] | None = None,
) -> ServingModel:
    """``model`` plus every anime of ``anime`` it does not know, as content-only titles.

    Returns ``model`` itself when nothing is new or the model has no content encoder.
    """
    fresh = list({a.anime_id: a for a in anime if a.anime_id not in model.index_of}.values())
    if not fresh or not can_extend(model):
        return model
    assert model.content_vocab is not None
    module, n, m = model.module, model.n_items, len(fresh)
    new_ids = np.array([a.anime_id for a in fresh], dtype=np.int64)
    ids = np.r_[model.anime_ids, new_ids]
    trained = np.r_[module.trained.numpy(), np.zeros(m, np.float32)]
    index_of = {int(a): i for i, a in enumerate(ids)}
    inputs = content_inputs(  # every row given: relatives' release order comes from them
        new_ids, anime, trained, relatives, model.content_vocab, index_of, module.shape.relatives
    )
    state = {k: v.clone() for k, v in module.state_dict().items()}
    for key in _PER_ANIME_ZERO:
        state[key] = torch.cat([state[key], state[key].new_zeros((m, *state[key].shape[1:]))])
    state["item_genres"] = torch.cat(
        [state["item_genres"], torch.from_numpy(inputs.features.astype(np.float32))]
    )
    state["relatives"] = torch.cat([state["relatives"], torch.from_numpy(inputs.relatives)])
    shape = ModelShape(n + m, module.shape.n_genres, 0, dict(module.shape.extra))
    grown = HybridRecommender(
        model.config,
        shape,
        state["item_genres"],
        float(module.global_mean),
        state["trained"],
        state["relatives"],
    )
    grown.load_state_dict(state, strict=True)
    meta = {**model.meta, "shape": {**model.meta["shape"], "n_items": n + m}}
    meta["blend"] = model.blend.to_json()
    meta["rating_mix"] = model._mix_json()
    out = ServingModel(
        grown,
        ids,
        model.genre_vocab,
        np.r_[model.item_genres, _genre_rows(model.genre_vocab, fresh)],
        np.r_[model.popularity, np.zeros(m, np.float32)],
        meta,
        _pad_rows(model.ease_index, n, m),
        _pad_rows(model.ease_value, n, m),
        path=model.path,
        knn_index=_pad_rows(model.knn_index, n, m),
        knn_value=_pad_rows(model.knn_value, n, m),
    )
    out.metrics = dict(model.metrics)
    return out


def _genre_rows(vocab: Sequence[str], anime: Sequence[Anime]) -> np.ndarray:
    col = {g: j for j, g in enumerate(vocab)}
    out = np.zeros((len(anime), len(vocab)), dtype=bool)
    for i, a in enumerate(anime):
        for g in a.genres:
            if g in col:
                out[i, col[g]] = True
    return out


def _pad_rows(table: np.ndarray | None, n: int, m: int) -> np.ndarray | None:
    """Item-to-item rows for new anime: pointing at themselves with weight 0 (no neighbours
    learned from lists; :mod:`recommender.neighbours` fills their scores in)."""
    if table is None:
        return None
    if np.issubdtype(table.dtype, np.integer):
        pad = np.repeat(np.arange(n, n + m, dtype=table.dtype)[:, None], table.shape[1], axis=1)
    else:
        pad = np.zeros((m, table.shape[1]), table.dtype)
    return np.concatenate([table, pad])
