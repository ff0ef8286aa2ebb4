"""How a user's rank score is put together from the model's parts, by how long their list is.

Measured on validation users (see ``training.blend_tuning.tune_blend``): someone with a handful of
anime on their list is best served by leaning on the "would watch" head, whose popularity prior
is the most reliable thing known about them; someone with a long list has seen the popular
titles already and is best served by the item-to-item part with popular titles discounted, which
also spreads picks over more of the catalog. So the blend is a schedule: weights tuned at a few
list lengths (anchors), interpolated linearly in log(list length) between them.

The popularity discount is ``popularity`` x log(1 + how many lists the anime is on), in the units
of the rank score. Those units grow with the list (the item-to-item part sums one row per listed
anime), which is one more reason the weight is tuned per list length. A discount relative to the
user's own spread of scores was tried and measured: on validation users it looked flat over a
wide range of weights that then lost a seventh of NDCG@10 on the benchmark's known users; the
absolute discount's optimum and its cliff showed on both.

Content-only titles (no list rows at training time) are ordered among themselves by other
weights (:data:`NEW_TITLE_WEIGHTS`): the blend's weights were tuned on trained titles, where the
item-to-item part is a learned row of its own; a new title's item-to-item part is borrowed from
its nearest trained anime and its "would watch" logit is the one part its stand-in was trained
for. As a group they keep the blend's per-user mean and spread, so where new titles sit among
trained ones (and every trained title's score) is still the blend's alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, astuple, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class BlendWeights:
    """rank = rating * (predicted - mean) / scale + rank * log P(watch) + ease * item-to-item
    - popularity * log(1 + list count)."""

    ease: float = 1.0
    rank: float = 0.1
    rating: float = 0.1
    popularity: float = 0.0


@dataclass(frozen=True)
class BlendSchedule:
    """Blend weights by list length: ``anchors`` are (list length, weights), sorted by length."""

    anchors: tuple[tuple[float, BlendWeights], ...]

    def __post_init__(self) -> None:
        if not self.anchors:
            raise ValueError("a blend schedule needs at least one anchor")
        lengths = [n for n, _ in self.anchors]
        if any(n <= 0 for n in lengths) or lengths != sorted(set(lengths)):
            raise ValueError(f"anchor lengths must be positive and increasing, got {lengths}")

    @classmethod
    def constant(cls, weights: BlendWeights) -> BlendSchedule:
        return cls(((1.0, weights),))

    def at(self, n_items: int) -> BlendWeights:
        """The weights for a list of ``n_items`` anime (clamped to the outermost anchors)."""
        x = math.log(max(n_items, 1))
        (n0, w0), rest = self.anchors[0], self.anchors[1:]
        if x <= math.log(n0):
            return w0
        for n1, w1 in rest:
            if x <= math.log(n1):
                t = (x - math.log(n0)) / (math.log(n1) - math.log(n0))
                return BlendWeights(
                    *(a + t * (b - a) for a, b in zip(astuple(w0), astuple(w1), strict=True))
                )
            n0, w0 = n1, w1
        return w0

    def to_json(self) -> dict[str, Any]:
        return {"anchors": [{"list_length": n, **asdict(w)} for n, w in self.anchors]}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | None, default: BlendWeights) -> BlendSchedule:
        """Read the checkpoint's blend; a single flat {ease, rank, rating} (format 1) is one
        anchor."""
        if not raw:
            return cls.constant(default)
        if "anchors" not in raw:
            return cls.constant(
                BlendWeights(
                    float(raw.get("ease", default.ease)),
                    float(raw.get("rank", default.rank)),
                    float(raw.get("rating", default.rating)),
                    float(raw.get("popularity", default.popularity)),
                )
            )
        anchors = []
        for a in raw["anchors"]:
            anchors.append(
                (
                    float(a["list_length"]),
                    BlendWeights(
                        float(a["ease"]),
                        float(a["rank"]),
                        float(a["rating"]),
                        float(a.get("popularity", 0.0)),
                    ),
                )
            )
        return cls(tuple(anchors))


# "would watch" : item-to-item : rating for content-only titles, in the units of the blend's
# terms. Measured on trained titles served as if new (stand-in vector and biases, item-to-item
# borrowed from their 10 nearest other trained anime; unseen users, 10 ratings revealed; two
# models): NDCG@10 flat over ease 2-5 x rating 1-3, 0.26 against the warm blend's 0.20-0.25.
NEW_TITLE_WEIGHTS = BlendWeights(ease=3.0, rank=1.0, rating=1.0, popularity=0.0)


def blend_scores(
    w: BlendWeights,
    rating: np.ndarray,
    watch: np.ndarray | None,
    ease: np.ndarray | None,
    mu: float,
    scale: float,
    log_popularity: np.ndarray,
    new: np.ndarray | None = None,
) -> np.ndarray:
    """Rank scores for one user ([n_items]) or a batch of users sharing ``w`` ([users,
    n_items]); ``watch`` / ``ease`` may be None when the model has no such part. ``new`` (int
    indices of content-only titles) are reordered by :func:`new_title_order`."""
    out = w.rating * (rating - mu) / scale
    if w.rank and watch is not None:
        out = out + w.rank * watch
    if w.ease and ease is not None:
        out = out + w.ease * ease
    if w.popularity:
        out = out - w.popularity * log_popularity
    out = np.asarray(out, dtype=np.float32)
    if new is not None and new.size > 1 and watch is not None and ease is not None:
        order = NEW_TITLE_WEIGHTS.rating * (rating[..., new] - mu) / scale
        order = order + NEW_TITLE_WEIGHTS.rank * watch[..., new]
        order = order + NEW_TITLE_WEIGHTS.ease * ease[..., new]
        out[..., new] = new_title_order(out[..., new], order)
    return out


def new_title_order(group: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``order``'s ranking with ``group``'s per-user mean and standard deviation (last axis):
    new titles sit among trained ones as the blend puts them, ranked among themselves by
    ``order``. A user whose ``order`` is flat keeps ``group``."""
    g_mean, g_std = group.mean(-1, keepdims=True), group.std(-1, keepdims=True)
    o_mean, o_std = order.mean(-1, keepdims=True), order.std(-1, keepdims=True)
    flat = o_std <= 1e-12
    moved = g_mean + g_std * (order - o_mean) / np.where(flat, 1.0, o_std)
    return np.asarray(np.where(flat, group, moved), dtype=np.float32)
