"""The genre-aware hybrid recommender: one ``nn.Module``, two named architectures.

``seed`` is the origin notebook's model: user and anime embeddings, biases, a genre branch merged
into the anime side and an MLP with LayerNorm and dropout over ``[user, anime]``, trained on
(user, anime) -> score pairs with MSE.

``default`` keeps the same anime side (embedding + genre branch, computed once per anime per
step) but builds the user from what the user has on their list (an item-to-user encoder, so a
person who is not in the checkpoint gets a vector by one matrix product), and has two heads:
a rating head (global mean + anime bias + user bias + dot product, MSE) and a ranking head (full
softmax over every anime: "would watch"). Beside the network sits an item-to-item matrix solved
in closed form (EDLAE: EASE, Steck 2019, with Steck 2020's dropout-style regulariser) on the
same list rows. Ranking blends the three, with weights that follow the length of the user's list
and a popularity discount for long lists (``recommender.blend``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import torch
from torch import nn

from recommender.packed import positions, segment_sum, select_rows, weight_or_ones, weighted

RETIRED_KEYS = frozenset({"l2"})  # fields older checkpoints still carry; ignored
#: (anime vectors [n, d], rating biases [n], rank biases [n], or None for the seed model)
Side = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and training hyper-parameters; stored in every checkpoint."""

    name: str = "default"
    kind: str = "hybrid"  # "hybrid" (list encoder + two heads) or "seed" (origin MLP)
    dim: int = 64
    genre_hidden: int = 64  # hidden width of the genre/content branch (0: one linear layer)
    # hybrid: the content encoder (recommender.content features instead of genres alone, and a
    # stand-in path for titles with no list rows), and the weight of the stand-in loss: the
    # stand-in path scores every trained anime for the batch's (frozen) users, so it learns to
    # stand in for a learned anime without changing any learned part
    content: bool = True
    content_weight: float = 1.0
    mlp_hidden: tuple[int, ...] = ()  # seed: MLP widths over [user, anime]
    dropout: float = 0.0
    # training
    epochs: int = 20
    batch_size: int = 512  # users per step (hybrid) or pairs per step (seed)
    lr: float = 3e-3
    weight_decay: float = 0.0
    patience: int = 4  # early stopping on the validation loss (epochs)
    keep_min: float = 0.2  # hybrid: fraction of a user's rows shown to the encoder, drawn
    keep_max: float = 0.9  # uniformly per user and epoch; the rest are the targets
    rank_weight: float = 1.0  # weight of the softmax loss beside the MSE
    negatives: int = 0  # sampled-softmax negatives per step (0: dense batches, full softmax)
    like_threshold: float = 0.7  # a score >= lo + t*(hi-lo) counts twice in the list objectives
    user_bias_reg: float = 3.0  # shrinkage of the closed-form user bias (in ratings)
    # item-to-item component (ease_lambda 0 disables it): EDLAE, EASE with each anime's
    # regulariser grown with its popularity. Chosen on validation users over (lambda, dropout)
    # in (500, 0), (400, .1), (300, .25), (200, .33), (100, .5): best split80 NDCG@10 on two
    # seeds, second-best reveal10 (benchmarks/RESULTS.md)
    ease_lambda: float = 200.0
    ease_dropout: float = 0.33  # 0 = plain EASE (see training.item_item.solve_ease)
    ease_min_count: int = 5  # anime with fewer list rows get no item-to-item row/column
    ease_topk: int = 256  # kept entries per anime row in the checkpoint
    ease_exact_max: int = 12000  # past this many anime, local regressions (training.item_item)
    ease_candidates: int = 256  # anime each local regression sees
    refit_all: bool = True  # re-solve it on every user (validation users too) once tuned
    # neighbourhood rating correction (KNNBaseline's pearson-baseline similarities), 0 disables
    knn_topk: int = 128
    knn_shrink: float = 100.0
    # serving blend (overwritten by the values tuned on validation users)
    blend_ease: float = 1.0
    blend_rank: float = 0.1
    blend_rating: float = 0.1
    blend_popularity: float = 0.0
    fold_in_ridge: float = 0.0  # 0 disables the ridge correction of the rating vector

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["mlp_hidden"] = list(self.mlp_hidden)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k not in RETIRED_KEYS}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        values = dict(data)
        if "mlp_hidden" in values:
            values["mlp_hidden"] = tuple(values["mlp_hidden"])
        return cls(**values)

    def with_(self, **changes: Any) -> ModelConfig:
        return replace(self, **changes)


CONFIGS: dict[str, ModelConfig] = {
    # The origin notebook: 64-d embeddings, MLP 128-64 with LayerNorm + dropout, MSE on scores,
    # Adam 1e-3, 10 epochs of batch 8192.
    "seed": ModelConfig(
        name="seed",
        kind="seed",
        dim=64,
        genre_hidden=0,
        mlp_hidden=(128, 64),
        dropout=0.2,
        epochs=10,
        batch_size=8192,
        lr=1e-3,
        weight_decay=0.0,
        patience=10**6,
        content=False,
        content_weight=0.0,
        rank_weight=0.0,
        ease_lambda=0.0,
        knn_topk=0,
        blend_ease=0.0,
        blend_rank=0.0,
        blend_rating=1.0,
    ),
    "default": ModelConfig(),
}


def get_config(name: str, **overrides: Any) -> ModelConfig:
    try:
        base = CONFIGS[name]
    except KeyError:
        raise ValueError(
            f"unknown model config {name!r}; choose one of {sorted(CONFIGS)}"
        ) from None
    return base.with_(**overrides) if overrides else base


@dataclass
class ModelShape:
    """Sizes the module is built with (checked again when a checkpoint loads).

    ``n_genres`` is the width of the branch input: genres for the seed model and older
    checkpoints, the content features (``extra["content"]``) otherwise; ``extra["relatives"]``
    is how many trained relatives per anime the content vector may draw on.
    """

    n_items: int
    n_genres: int
    n_users: int = 0  # seed only: trained user embeddings
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def content(self) -> bool:
        return bool(self.extra.get("content", False))

    @property
    def relatives(self) -> int:
        return int(self.extra.get("relatives", 0))

    @property
    def genre_columns(self) -> int:
        """Width of the learned side's genre branch: the leading genre columns of the branch
        input (content models keep the other features for the stand-in path)."""
        return int(self.extra.get("genre_columns", self.n_genres))


class HybridRecommender(nn.Module):
    """See the module docstring. ``item_genres`` is a float [n_items, n_genres] 0/1 buffer: the
    genres, or (content models) the :mod:`recommender.content` features.

    A content model also carries ``trained`` (float [n_items], 1 where the anime had list rows
    at training time) and ``relatives`` (int64 [n_items, k], -1 pads). A trained anime's vector
    is its learned embedding plus the genre branch over its genre columns, with learned biases,
    exactly as without content; an untrained one's comes from the stand-in path (``standin``
    and ``content_bias`` over all its features, plus its trained relatives' learned parts).
    """

    global_mean: torch.Tensor
    item_genres: torch.Tensor
    trained: torch.Tensor
    relatives: torch.Tensor
    genre: nn.Module

    def __init__(
        self,
        config: ModelConfig,
        shape: ModelShape,
        item_genres: torch.Tensor,
        global_mean: float = 0.0,
        trained: torch.Tensor | None = None,
        relatives: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.shape = shape
        d, n = config.dim, shape.n_items
        self.register_buffer("item_genres", item_genres.float().clone(), persistent=True)
        self.register_buffer("global_mean", torch.tensor(float(global_mean)), persistent=True)
        self.item_emb = nn.Embedding(n, d)
        self.item_bias = nn.Embedding(n, 1)
        if config.genre_hidden:
            self.genre = nn.Sequential(
                nn.Linear(shape.genre_columns, config.genre_hidden),
                nn.GELU(),
                nn.Linear(config.genre_hidden, d),
            )
        else:
            self.genre = nn.Linear(shape.genre_columns, d)
        nn.init.normal_(self.item_emb.weight, std=0.05)
        nn.init.zeros_(self.item_bias.weight)
        self.content = shape.content and config.kind == "hybrid"
        if config.kind == "seed":
            self._seed_parts(config, shape)
        elif config.kind == "hybrid":
            # input-side anime vectors: one for "scored this much above expectation", one for
            # "has it on the list"
            self.enc_score = nn.Embedding(n, d)
            self.enc_list = nn.Embedding(n, d)
            nn.init.normal_(self.enc_score.weight, std=0.05)
            nn.init.normal_(self.enc_list.weight, std=0.05)
            self.rank_proj = nn.Linear(d, d, bias=False)
            self.rank_bias = nn.Embedding(n, 1)
            nn.init.zeros_(self.rank_bias.weight)
        else:
            raise ValueError(f"unknown model kind {config.kind!r}")
        if self.content:
            self._content_parts(shape, trained, relatives)

    def _content_parts(
        self, shape: ModelShape, trained: torch.Tensor | None, relatives: torch.Tensor | None
    ) -> None:
        n, d, k = shape.n_items, self.config.dim, shape.relatives
        trained = torch.ones(n) if trained is None else trained.float().clone()
        relatives = torch.full((n, k), -1) if relatives is None else relatives.long().clone()
        if trained.shape != (n,) or relatives.shape != (n, k):
            raise ValueError("trained / relatives do not match the number of anime")
        self.register_buffer("trained", trained, persistent=True)
        self.register_buffer("relatives", relatives, persistent=True)
        hidden = self.config.genre_hidden
        self.standin: nn.Module = (
            nn.Sequential(nn.Linear(shape.n_genres, hidden), nn.GELU(), nn.Linear(hidden, d))
            if hidden
            else nn.Linear(shape.n_genres, d)
        )
        self.content_bias = nn.Linear(shape.n_genres, 2)  # (rating bias, rank bias)
        nn.init.zeros_(self.content_bias.weight)
        nn.init.zeros_(self.content_bias.bias)
        if k:
            # relatives' mean (vector, rating bias, rank bias, has-any) -> stand-in parts
            self.rel_proj = nn.Linear(d, d, bias=False)
            self.rel_bias = nn.Linear(3, 2, bias=False)
            nn.init.zeros_(self.rel_proj.weight)
            nn.init.zeros_(self.rel_bias.weight)

    def _seed_parts(self, config: ModelConfig, shape: ModelShape) -> None:
        d = config.dim
        self.user_emb = nn.Embedding(shape.n_users, d)
        self.user_bias = nn.Embedding(shape.n_users, 1)
        nn.init.normal_(self.user_emb.weight, std=0.05)
        nn.init.zeros_(self.user_bias.weight)
        layers: list[nn.Module] = []
        width = 2 * d
        for hidden in config.mlp_hidden:
            layers += [
                nn.Linear(width, hidden),
                nn.LayerNorm(hidden),
                nn.ReLU(),
                nn.Dropout(config.dropout),
            ]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    # -- shared anime side ---------------------------------------------------------------------
    def item_table(self) -> torch.Tensor:
        """Every anime's vector: its embedding plus its genre/content vector (once per step)."""
        return self.anime_side()[0]

    def learned_side(self) -> Side:
        """The learned anime side: embedding + genre/content branch, learned biases."""
        table = self.item_emb.weight + self.genre(self.item_genres[:, : self.shape.genre_columns])
        rank = self.rank_bias.weight.squeeze(-1) if self.config.kind == "hybrid" else None
        return table, self.item_bias.weight.squeeze(-1), rank

    def standin_side(self, learned: Side) -> Side:
        """The stand-in path for every anime, from its features alone (and the mean learned
        parts of its trained relatives, taken as given): what serves a title with no rows."""
        return self._standin(self.item_genres, learned, self.relatives, self.trained)

    def _standin(
        self,
        features: torch.Tensor,
        learned: Side,
        relatives: torch.Tensor,
        trained: torch.Tensor,
    ) -> Side:
        """The stand-in of the anime whose ``features`` are given; ``relatives`` [rows, k]
        index ``learned``'s rows (-1: none), ``trained`` [len(learned)] says which count."""
        table: torch.Tensor = self.standin(features)
        bias = self.content_bias(features)
        if self.shape.relatives:
            l_table, l_bias, l_rank = learned
            assert l_rank is not None  # content models are hybrid
            parts = torch.cat([l_table, l_bias[:, None], l_rank[:, None]], 1).detach()
            mean, count = _relatives_mean(parts, relatives, trained)
            d = l_table.shape[1]
            table = table + self.rel_proj(mean[:, :d])
            stats = torch.cat([mean[:, d:], (count > 0).float()[:, None]], 1)
            bias = bias + self.rel_bias(stats)
        return table, bias[:, 0], bias[:, 1]

    def trained_sides(
        self, columns: torch.Tensor, standin: bool = True
    ) -> tuple[Side, Side | None]:
        """(learned side, stand-in side or None) of the anime ``columns`` only: the trained
        anime, which are all a training step scores (:meth:`anime_sides` row for row on
        them, since a trained anime is served by its learned side). A catalog of 12.3k titles
        of which 7.2k have rows pays for 7.2k; the content-only titles of a living catalog
        cost a training step nothing. Every relative a stand-in counts is trained, so its
        learned parts are among these rows."""
        assert self.content and self.config.kind == "hybrid"  # the stand-in's own columns
        features = self.item_genres[columns]
        table = self.item_emb.weight[columns] + self.genre(features[:, : self.shape.genre_columns])
        bias = self.item_bias.weight.squeeze(-1)[columns]
        learned = (table, bias, self.rank_bias.weight.squeeze(-1)[columns])
        if not standin:
            return learned, None
        position = positions(columns, self.shape.n_items)
        relatives = self.relatives[columns]
        relatives = torch.where(relatives >= 0, position[relatives.clamp(min=0)], -1)
        trained = torch.ones(columns.numel(), device=columns.device)
        return learned, self._standin(features, learned, relatives, trained)

    def anime_sides(self) -> tuple[Side, Side | None]:
        """(the served anime side, the stand-in side or None without a content encoder).

        The served side is the learned one for trained anime and the stand-in for anime
        without list rows (which no training loss touches: they are nobody's target).
        """
        learned = self.learned_side()
        if not self.content:
            return learned, None
        cold = self.standin_side(learned)
        keep = self.trained
        table = keep[:, None] * learned[0] + (1.0 - keep[:, None]) * cold[0]
        bias = keep * learned[1] + (1.0 - keep) * cold[1]
        assert learned[2] is not None and cold[2] is not None  # content models are hybrid
        rank = keep * learned[2] + (1.0 - keep) * cold[2]
        return (table, bias, rank), cold

    def anime_side(self) -> Side:
        """(anime vectors [n, d], rating biases [n], rank biases [n] or None for seed)."""
        return self.anime_sides()[0]

    def untrained_mask(self) -> torch.Tensor | None:
        """float [n]: 1 for anime without list rows (kept out of the training softmax)."""
        return (1.0 - self.trained) if self.content else None

    # -- seed: (user, anime) pairs ---------------------------------------------------------------
    def forward_pairs(
        self, users: torch.Tensor, items: torch.Tensor, table: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Predicted scores for (user index, anime index) pairs (seed architecture)."""
        table = self.item_table() if table is None else table
        return self.score_vectors(
            self.user_emb(users),
            self.user_bias(users).squeeze(-1),
            table[items],
            self.item_bias(items).squeeze(-1),
        )

    def score_vectors(
        self, u: torch.Tensor, bu: torch.Tensor, a: torch.Tensor, ba: torch.Tensor
    ) -> torch.Tensor:
        """Seed head on gathered vectors; broadcasting lets serving score one user vs all."""
        u, a = torch.broadcast_tensors(u, a)  # type: ignore[no-untyped-call]
        mlp: torch.Tensor = self.mlp(torch.cat([u, a], dim=-1)).squeeze(-1)
        return self.global_mean + bu + ba + (u * a).sum(-1) + mlp

    # -- hybrid: batches of users, given as packed rows ----------------------------------------
    def forward_rows(
        self,
        slot: torch.Tensor,
        item: torch.Tensor,
        score: torch.Tensor,
        visible: torch.Tensor,
        n_users: int,
        score_scale: float,
        candidates: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode users from their visible rows and score every row and every anime.

        Rows are packed: ``slot`` [T] says which of the ``n_users`` users of the batch a row
        belongs to, ``item`` its anime index, ``score`` its raw score (0 = unscored) and
        ``visible`` (float 0/1) whether the encoder sees it. Padding rows have visible 0 and are
        ignored by the caller's loss. Returns (predicted score per row [T], watch logit per
        row [T], watch logits [n_users, C] for the ``candidates`` anime (all anime when None),
        user vectors [n_users, d]).
        """
        side = self.anime_side()  # content branch: once per step
        z, bu = self.encode_rows(slot, item, score, visible, n_users, score_scale, side[1])
        rating, row_logit, logits = self.score_rows(z, bu, side, slot, item, candidates)
        return rating, row_logit, logits, z

    def encode_rows(
        self,
        slot: torch.Tensor,
        item: torch.Tensor,
        score: torch.Tensor,
        visible: torch.Tensor,
        n_users: int,
        score_scale: float,
        bias_i: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """User vectors [n_users, d] and closed-form user biases [n_users] from packed rows
        (only the shown rows count; see :func:`select_rows`)."""
        w_s, (s_slot, s_item, s_score) = select_rows(
            visible * (score > 0).float(), slot, item, score
        )
        w_l, (l_slot, l_item) = select_rows(visible, slot, item)
        ns = segment_sum(weight_or_ones(w_s, s_score), s_slot, n_users)
        nl = segment_sum(weight_or_ones(w_l, l_item), l_slot, n_users)
        base = self.global_mean + bias_i[s_item]
        bu = segment_sum(weighted(s_score - base, w_s), s_slot, n_users)
        bu = bu / (ns + self.config.user_bias_reg)
        resid = weighted(s_score - base - bu[s_slot], w_s) / score_scale
        z = segment_sum(resid[:, None] * self.enc_score(s_item), s_slot, n_users)
        z = z / torch.sqrt(ns + 1.0)[:, None]
        listed = self.enc_list(l_item)
        zl = segment_sum(listed if w_l is None else w_l[:, None] * listed, l_slot, n_users)
        return z + zl / torch.sqrt(nl + 1.0)[:, None], bu

    def score_rows(
        self,
        z: torch.Tensor,
        bu: torch.Tensor,
        side: Side,
        slot: torch.Tensor,
        item: torch.Tensor,
        candidates: torch.Tensor | None = None,
        zk: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(predicted score per row, watch logit per row, watch logits vs the candidates) of
        encoded users against an anime side (the served one, or the stand-in in training);
        ``zk`` is the users' ranking vectors when already computed."""
        zk = self.rank_proj(z) if zk is None else zk
        rating = self.rate_rows(z, bu, side, slot, item)
        row_logit = self.row_logits(zk, side, slot, item)
        return rating, row_logit, self.rank_logits(zk, side, candidates)

    def rate_rows(
        self, z: torch.Tensor, bu: torch.Tensor, side: Side, slot: torch.Tensor, item: torch.Tensor
    ) -> torch.Tensor:
        """Predicted score of packed rows (user slot, anime index) against an anime side."""
        table, bias_i, _ = side
        return self.global_mean + bias_i[item] + bu[slot] + (z[slot] * table[item]).sum(-1)

    def row_logits(
        self, zk: torch.Tensor, side: Side, slot: torch.Tensor, item: torch.Tensor
    ) -> torch.Tensor:
        """Watch logit of packed rows from the users' ranking vectors ``zk``."""
        table, _, rank_bias = side
        assert rank_bias is not None  # hybrid only
        return (zk[slot] * table[item]).sum(-1) + rank_bias[item]

    def rank_logits(
        self,
        zk: torch.Tensor,
        side: Side,
        candidates: torch.Tensor | None = None,
        exclude: torch.Tensor | None = None,
        pad: int = 0,
    ) -> torch.Tensor:
        """Watch logits [users, C] of the ranking vectors ``zk`` against the ``candidates``
        anime (all anime when None): the softmax's logits. ``exclude`` (float [n_items], 1 for
        anime no one may pick) lowers their logits by 1e4, through the bias (one pass less).
        ``pad`` more columns follow at -1e4 (exp gives exactly 0 in a softmax): a width that is
        a multiple of 16 lets the CPU's matrix products run on aligned rows, ~1.6x faster."""
        table, _, rank_bias = side
        assert rank_bias is not None  # hybrid only
        if candidates is not None:
            table, rank_bias = table[candidates], rank_bias[candidates]
            exclude = None if exclude is None else exclude[candidates]
        if exclude is not None:
            rank_bias = rank_bias - 1e4 * exclude
        if pad:
            table = torch.cat([table, table.new_zeros(pad, table.shape[1])])
            rank_bias = torch.cat([rank_bias, rank_bias.new_full((pad,), -1e4)])
        return torch.addmm(rank_bias, zk, table.T)

    # -- hybrid: batches of users, given as dense [users, anime] matrices ----------------------
    def encode_dense(
        self, score: torch.Tensor, scored: torch.Tensor, visible: torch.Tensor, score_scale: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder of :meth:`forward_rows` on dense batches (matrix products instead of
        gathers and scatter-adds; one fixed shape for XLA); same math, so fold-in matches.

        ``score`` [B, n_items] holds the raw scores of the shown rows (0 = unscored or not
        shown), ``scored`` and ``visible`` (float 0/1) mark the shown scored rows and the shown
        rows. Returns (user vectors [B, d], closed-form user biases [B]).
        """
        base = self.global_mean + self.item_bias.weight.squeeze(-1)  # [n_items]
        ns = scored.sum(1)
        nl = visible.sum(1)
        bu = (score.sum(1) - scored @ base) / (ns + self.config.user_bias_reg)
        resid = score - scored * (base[None, :] + bu[:, None])
        z = (resid @ self.enc_score.weight) / (score_scale * torch.sqrt(ns + 1.0))[:, None]
        z = z + (visible @ self.enc_list.weight) / torch.sqrt(nl + 1.0)[:, None]
        return z, bu


def _relatives_mean(
    parts: torch.Tensor, relatives: torch.Tensor, trained: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean of ``parts`` [n, m] over each row's trained ``relatives`` [rows, k] (indices into
    ``parts``, -1 for none), their count [rows]); 0 where there are none. On the CPU only the
    relatives that exist are gathered (at the shared data's 12.3k titles: 5.8k of 49k slots,
    1.0 ms against 4.4 ms); elsewhere the fixed [rows, k] layout keeps one shape for XLA."""
    idx = relatives.clamp(min=0)
    valid = (relatives >= 0).float() * trained[idx]  # [rows, k]
    count = valid.sum(1)
    w = valid / count.clamp(min=1.0)[:, None]
    if parts.device.type != "cpu":
        return (parts[idx] * w[..., None]).sum(1), count
    rows, slots = torch.nonzero(valid, as_tuple=True)
    pairs = parts[idx[rows, slots]] * w[rows, slots][:, None]
    out = parts.new_zeros((relatives.shape[0], parts.shape[1]))
    return out.index_add_(0, rows, pairs), count
