"""The rankers of the cold-start evaluation (``training.cold``), and the run that sets them side
by side on one split.

- random: seeded uniform scores;
- genre profile: cosine between the user's liked-genre profile (genres of the revealed titles
  scored at or above the "liked" line; all revealed titles when none is) and each title's genres;
- LightFM (optional: ``pip install lightfm``, see benchmarks/cold_start.py): WARP on every list
  row of the training users plus the unseen users' revealed rows (LightFM has no fold-in, so the
  unseen users are trained with their revealed rows only), item features = identity + genres +
  type + length bucket (nothing a brand-new title would lack: no member count, no mean score);
- anirec: the model trained on the training rows with the whole catalog indexed and the
  franchise relatives the product trains with (related-anime links, else titles: what
  ``training.data.store_relatives`` gives; a withheld title's relatives are only ever used
  through their learned parts, so withheld relatives count for nothing), unseen users folded
  in from their revealed rows and ranked with the serving blend (the chat's path).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommender.franchise import FranchiseGraph
from recommender.model import ModelConfig
from recommender.scoring import ServingModel
from storage.rows import Anime
from training import data as tdata
from training.cold import ColdConfig, ColdReport, ColdSplit, ScoreFn, cold_split, score_ranker
from training.evaluate import UserRows, components, evaluate_rows, rank_rows, user_rows
from training.train import train_model

Log = Callable[[str], None]
Relatives = Mapping[int, Sequence[int]]
LENGTHS = ((1, "1"), (7, "2-7"), (16, "8-16"), (32, "17-32"), (64, "33-64"))


class RankerUnavailable(RuntimeError):
    """A ranker's optional package is missing; the message says how to install it."""


def random_ranker(split: ColdSplit, seed: int) -> ScoreFn:
    """Uniform scores, seeded (the same candidates always get the same draw)."""

    def score(cands: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng([seed, cands.size])
        return rng.random((split.users.size, cands.size)).astype(np.float32)

    return score


def _l2_rows(mat: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(mat, axis=1, keepdims=True)
    return np.asarray(mat / np.where(norm > 0, norm, 1.0), np.float32)


def genre_profile_ranker(split: ColdSplit, genres: Mapping[int, Sequence[str]]) -> ScoreFn:
    """Cosine of genre multi-hots: the user's profile sums their liked revealed titles'
    (normalised) genre vectors. Ties (same genres) fall to the smaller anime id."""
    ids = np.union1d(split.universe, split.revealed["anime_id"].to_numpy(np.int64))
    vecs = _l2_rows(tdata.genre_matrix(ids, genres)[1].astype(np.float32))
    profiles = np.zeros((split.users.size, vecs.shape[1]), np.float32)
    row_of = {u: r for r, u in enumerate(split.users)}
    for user, g in split.revealed.groupby("user", sort=False):
        liked = g[g["score"] >= split.like]
        use = liked if len(liked) else g
        profiles[row_of[user]] = vecs[np.searchsorted(ids, use["anime_id"].to_numpy())].sum(0)
    profiles = _l2_rows(profiles)

    def score(cands: np.ndarray) -> np.ndarray:
        return np.asarray(profiles @ vecs[np.searchsorted(ids, cands)].T, np.float32)

    return score


def length_bucket(episodes: int | None) -> str:
    """Episode count in buckets a new title's announcement gives (single, short, cour...)."""
    if not episodes or episodes < 1:
        return "unknown"
    for top, name in LENGTHS:
        if episodes <= top:
            return name
    return "65+"


def content_features(anime: Anime | None) -> list[str]:
    """What a brand-new title has: genres, type, length bucket (never members or mean score)."""
    if anime is None:
        return ["len:unknown", "type:unknown"]
    return [
        *(f"genre:{g}" for g in anime.genres),
        f"type:{anime.type or 'unknown'}",
        f"len:{length_bucket(anime.episodes)}",
    ]


def _item_features(ids: np.ndarray, by_id: Mapping[int, Anime]) -> sp.csr_matrix:
    """Identity + content features, each row summing to 1 (as lightfm.data.Dataset builds)."""
    names: dict[str, int] = {}
    rows, cols = list(range(ids.size)), list(range(ids.size))
    for i, a in enumerate(ids):
        for f in content_features(by_id.get(int(a))):
            rows.append(i)
            cols.append(ids.size + names.setdefault(f, len(names)))
    mat = sp.csr_matrix(
        (np.ones(len(rows), np.float32), (rows, cols)), shape=(ids.size, ids.size + len(names))
    )
    sums = np.asarray(mat.sum(axis=1)).ravel()
    return sp.csr_matrix(sp.diags(1.0 / sums) @ mat, dtype=np.float32)


def lightfm_ranker(
    split: ColdSplit, catalog: Sequence[Anime], seed: int, epochs: int = 20, dim: int = 64
) -> ScoreFn:
    """Fit LightFM on the training rows plus the unseen users' revealed rows (see module doc);
    scores are the learned user x item-feature dot products plus biases."""
    try:
        from lightfm import (  # type: ignore[import-not-found,import-untyped,unused-ignore]
            LightFM,
        )
    except ImportError as exc:
        raise RankerUnavailable(
            "lightfm is not installed (pip install lightfm; see benchmarks/cold_start.py)"
        ) from exc
    ids = np.union1d(split.universe, split.revealed["anime_id"].to_numpy(np.int64))
    by_id = {a.anime_id: a for a in catalog}
    rows = pd.concat([split.train, split.revealed])
    users, u = np.unique(rows["user"].to_numpy(), return_inverse=True)
    i = np.searchsorted(ids, rows["anime_id"].to_numpy(np.int64))
    inter = sp.coo_matrix((np.ones(len(rows), np.float32), (u, i)), shape=(users.size, ids.size))
    feats = _item_features(ids, by_id)
    model = LightFM(no_components=dim, loss="warp", random_state=seed)
    model.fit(inter, item_features=feats, epochs=epochs, num_threads=2)
    item_bias, item_emb = model.get_item_representations(feats)
    user_bias, user_emb = model.get_user_representations()
    pick = np.searchsorted(users, split.users)

    def score(cands: np.ndarray) -> np.ndarray:
        at = np.searchsorted(ids, cands)
        s = user_emb[pick] @ item_emb[at].T + item_bias[at] + user_bias[pick, None]
        return np.asarray(s, np.float32)

    return score


def catalog_relatives(
    catalog: Sequence[Anime], links: Iterable[tuple[int, int]] = ()
) -> dict[int, tuple[int, ...]]:
    """anime id -> the other titles of its series, from the catalog alone (related-anime
    links when given, else titles), as the product's franchise graph builds them."""
    return tdata.graph_relatives(FranchiseGraph.build(catalog, links), catalog)


def anirec_ranker(
    split: ColdSplit,
    catalog: Sequence[Anime],
    config: str | ModelConfig,
    epochs: int | None,
    seed: int,
    device: str,
    score_range: tuple[float, float],
    log: Log | None = None,
    relatives: Relatives | None = None,
) -> tuple[ScoreFn, dict[str, float]]:
    """Train on the split's training rows (every catalog anime indexed, ``relatives`` for the
    content encoder); the rank scores of the unseen users (serving blend for their list
    length) and the warm metrics."""
    genres = {a.anime_id: a.genres for a in catalog}
    t = split.train
    data = tdata.from_arrays(
        t["user"].to_numpy(),
        t["anime_id"].to_numpy(),
        t["score"].to_numpy(),
        genres,
        score_range,
        catalog=catalog,
        relatives=relatives,
    )
    model = train_model(data, config, epochs, seed, device, log=log).serving
    if log is not None:
        linked = withheld_with_relatives(model, split.withheld)
        log(f"withheld titles with a trained relative: {linked} of {split.withheld.size}")
    rows = user_rows(model, split.revealed, split.hidden)
    if not np.array_equal(np.asarray(rows.users, dtype=object), split.users.astype(object)):
        raise ValueError("some unseen users lost every row: is the catalog missing their anime?")
    rank = np.empty((len(rows), model.n_items), np.float32)
    for a in range(0, len(rows), 256):
        part = UserRows(*(getattr(rows, f)[a : a + 256] for f in _ROW_FIELDS))
        rank[a : a + len(part)] = rank_rows(model, components(model, part), part)
    warm = evaluate_rows(model, user_rows(model, split.revealed, split.hidden_warm))

    def score(cands: np.ndarray) -> np.ndarray:
        at = np.array([model.index_of.get(int(c), -1) for c in cands], np.int64)
        out = rank[:, np.maximum(at, 0)]
        out[:, at < 0] = np.nan
        return out

    return score, warm


def withheld_with_relatives(model: ServingModel, withheld: np.ndarray) -> int:
    """How many ``withheld`` titles the model's stand-in links to a trained relative."""
    module = model.module
    if not module.content or not module.shape.relatives:
        return 0
    rel = module.relatives.numpy()
    trained = module.trained.numpy() > 0.5
    at = [model.index_of[int(a)] for a in withheld if int(a) in model.index_of]
    linked = (rel[at] >= 0) & trained[np.maximum(rel[at], 0)]
    return int(linked.any(axis=1).sum())


_ROW_FIELDS = ("users", "revealed_idx", "revealed_scores", "hidden_idx", "hidden_scores")


def evaluate_cold(
    ratings: pd.DataFrame,
    catalog: Sequence[Anime],
    cfg: ColdConfig,
    config: str | ModelConfig = "default",
    epochs: int | None = None,
    device: str = "cpu",
    lightfm_epochs: int = 20,
    score_range: tuple[float, float] = (1.0, 10.0),
    log: Log | None = None,
    relatives: Relatives | None = None,
) -> ColdReport:
    """Split once, then score every ranker on the same users (LightFM skipped when missing).
    ``relatives`` (default: :func:`catalog_relatives` of ``catalog``) feed the model's content
    encoder as in production."""
    say = log or (lambda _m: None)
    split = cold_split(ratings, cfg, score_range)
    report = ColdReport(cfg, split.sizes())
    say(f"split: {report.sizes}")
    genres = {a.anime_id: a.genres for a in catalog}
    makers: list[tuple[str, Callable[[], ScoreFn]]] = [
        ("random", lambda: random_ranker(split, cfg.seed)),
        ("genre profile", lambda: genre_profile_ranker(split, genres)),
        ("LightFM", lambda: lightfm_ranker(split, catalog, cfg.seed, lightfm_epochs)),
    ]
    for name, make in makers:
        started = time.perf_counter()
        try:
            fn = make()
        except RankerUnavailable as exc:
            report.skipped[name] = str(exc)
            say(f"skipped {name}: {exc}")
            continue
        report.rankers[name] = score_ranker(split, fn)
        report.seconds[name] = round(time.perf_counter() - started, 1)
        say(f"{name}: {report.rankers[name]} ({report.seconds[name]} s)")
    started = time.perf_counter()
    if relatives is None:
        relatives = catalog_relatives(catalog)
    fn, report.warm = anirec_ranker(
        split, catalog, config, epochs, cfg.seed, device, score_range, log, relatives
    )
    name = f"anirec ({config if isinstance(config, str) else config.name})"
    report.rankers[name] = score_ranker(split, fn)
    report.seconds[name] = round(time.perf_counter() - started, 1)
    return report
