"""Training, composed: the network's loop, the item-to-item solves, blend tuning, validation.

Entry points:
- :func:`fit` trains on a DataFrame (the benchmark's entry) and returns a :class:`FitResult`
  with an in-memory :class:`ServingModel`;
- :func:`train_model` does the same on :class:`training.data.TrainingData`;
- :func:`train_from_store` trains on the database, writes the checkpoint and the loss-curve
  PNG beside it and returns a :class:`TrainSummary` (the CLI uses it).

The parts live in their own modules: batches (:mod:`training.batches`), losses
(:mod:`training.losses`), loops (:mod:`training.loops`), the item-to-item solvers
(:mod:`training.item_item`) and blend tuning (:mod:`training.blend_tuning`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from recommender.content import ContentInputs, content_inputs, plain_anime
from recommender.model import HybridRecommender, ModelConfig, ModelShape, get_config
from recommender.scoring import ServingModel, UserState
from storage.repository import Store
from storage.rows import Anime
from storage.schema import DATASET_PLATFORM
from training import data as tdata
from training import devices, distributed
from training import gate as qgate
from training.blend_tuning import REPORTED_PROTOCOLS, Protocols, tune_blend, validation_protocols
from training.evaluate import evaluate_rows, like_min
from training.item_item import ItemItemSettings, Table, solve_ease_for, solve_knn_for
from training.loops import Log, LoopInput, Progress, train_hybrid, train_seed


@dataclass
class FitResult:
    serving: ServingModel
    train_seconds: float
    history: dict[str, list[float]]
    data: tdata.TrainingData
    user_vectors: np.ndarray | None = None  # seed: trained user embeddings
    user_biases: np.ndarray | None = None
    val_metrics: dict[str, float] = field(default_factory=dict)
    samples_per_second: float = 0.0
    epochs_run: int = 0
    device: str = "cpu"

    def state_for(self, user: object) -> UserState:
        """The state of a user seen in training (their trained vector, or their whole list)."""
        index = self.data.index_of_user().get(tdata._key(user))
        if index is None:
            raise KeyError(f"user {user!r} was not in the training data")
        rows = self.data.user_rows(index)
        hist = self.data.items[rows]
        s = self.data.scores[rows]
        hs = np.where(s > 0, s, np.nan).astype(np.float32)
        if self.user_vectors is not None and self.user_biases is not None:
            return self.serving.state_from_vector(
                self.user_vectors[index], float(self.user_biases[index]), hist, hs
            )
        return self.serving.fold_in_indices(hist, hs)


@dataclass
class TrainSummary:
    checkpoint: Path
    plot: Path | None
    config: str
    device: str
    epochs: int
    train_seconds: float
    samples_per_second: float
    rows: int
    users: int
    anime: int
    fingerprint: str
    metrics: dict[str, float]
    holdout_users: int = 0  # data-set users kept out for the quality gate

    def to_json(self) -> dict[str, Any]:
        return {
            "checkpoint": str(self.checkpoint),
            "plot": str(self.plot) if self.plot else None,
            "config": self.config,
            "device": self.device,
            "epochs": self.epochs,
            "train_seconds": round(self.train_seconds, 2),
            "samples_per_second": round(self.samples_per_second),
            "rows": self.rows,
            "users": self.users,
            "anime": self.anime,
            "fingerprint": self.fingerprint,
            "metrics": self.metrics,
            "holdout_users": self.holdout_users,
        }


def _quiet(_msg: str) -> None:
    return None


def _check_indices(data: tdata.TrainingData) -> None:
    """XLA clamps out-of-range embedding ids silently: validate on the host first."""
    if data.n_rows and (
        data.items.min() < 0
        or data.items.max() >= data.n_items
        or data.users.min() < 0
        or data.users.max() >= data.n_users
    ):
        raise ValueError("training data has out-of-range user or anime indices")


def _content(data: tdata.TrainingData) -> ContentInputs:
    """Content features of every anime of ``data`` (its catalog rows; else its genres)."""
    catalog = data.catalog or [
        plain_anime(aid, [data.genre_vocab[j] for j in np.flatnonzero(row)])
        for aid, row in zip(data.anime_ids, data.item_genres, strict=True)
    ]
    return content_inputs(data.anime_ids, catalog, data.popularity() > 0, data.relatives)


def _network(
    data: tdata.TrainingData, cfg: ModelConfig, dev: devices.DeviceInfo
) -> tuple[HybridRecommender, ModelShape, float, ContentInputs | None]:
    """The untrained network on ``dev``, its shape, the training mean score and (content
    models) the content inputs."""
    scored = data.scores[data.scored]
    mu = float(scored.mean()) if scored.size else float(np.mean(data.score_range))
    _check_indices(data)
    n_users = data.n_users if cfg.kind == "seed" else 0
    if cfg.kind != "hybrid" or not cfg.content:
        shape = ModelShape(data.n_items, data.item_genres.shape[1], n_users)
        genres = torch.from_numpy(data.item_genres.astype(np.float32))
        return HybridRecommender(cfg, shape, genres, mu).to(dev.device), shape, mu, None
    content = _content(data)
    shape = ModelShape(
        data.n_items,
        content.features.shape[1],
        n_users,
        {
            "content": True,
            "relatives": int(content.relatives.shape[1]),
            "genre_columns": len(content.vocab.genres),
        },
    )
    model = HybridRecommender(
        cfg,
        shape,
        torch.from_numpy(content.features.astype(np.float32)),
        mu,
        torch.from_numpy((data.popularity() > 0).astype(np.float32)),
        torch.from_numpy(content.relatives),
    )
    return model.to(dev.device), shape, mu, content


def _solve_device(dev: devices.DeviceInfo) -> torch.device | None:
    """The closed-form solves run on a GPU when there is one, else on the CPU (not on XLA)."""
    return dev.device if dev.kind == "cuda" else None


def _item_item(
    model: HybridRecommender,
    mu: float,
    data: tdata.TrainingData,
    users: np.ndarray,
    settings: ItemItemSettings,
    dev: devices.DeviceInfo,
    log: Log,
) -> tuple[Table | None, Table | None]:
    """The item-to-item (EASE) and neighbourhood (KNN) tables the configuration asks for."""
    ease = knn = None
    if settings.ease_on:
        t_e = time.perf_counter()
        like = like_min(data.score_range)
        ease = solve_ease_for(data, users, settings, like, _solve_device(dev))
        log(f"item-to-item solve {time.perf_counter() - t_e:.1f}s")
    if settings.knn_on:
        t_k = time.perf_counter()
        bias = model.item_bias.weight.detach().squeeze(-1).numpy()
        knn = solve_knn_for(data, users, settings, mu, bias, _solve_device(dev))
        log(f"neighbourhood solve {time.perf_counter() - t_k:.1f}s")
    return ease, knn


def _metadata(
    data: tdata.TrainingData,
    cfg: ModelConfig,
    shape: ModelShape,
    mu: float,
    dev: devices.DeviceInfo,
    epochs: int,
    content: ContentInputs | None = None,
) -> dict[str, Any]:
    """The checkpoint's JSON metadata (metrics and the tuned blend are added later)."""
    meta: dict[str, Any] = {
        "config": cfg.to_json(),
        "shape": {
            "n_items": shape.n_items,
            "n_genres": shape.n_genres,
            "n_users": shape.n_users,
            "extra": dict(shape.extra),
        },
        "genre_vocab": data.genre_vocab,
        "score_range": list(data.score_range),
        "global_mean": mu,
        "fingerprint": data.fingerprint,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": dev.kind,
        "epochs": epochs,
        # everyone whose rows were read (validation users feed the item-to-item refit)
        "train_users": [str(u) for u in data.user_ids],
    }
    meta["version"] = f"{meta['trained_at'][:19].replace(':', '')}-{data.fingerprint[:8]}"
    if content is not None:
        meta["content_vocab"] = content.vocab.to_json()
    return meta


def _validation_metrics(serving: ServingModel, val: Protocols) -> dict[str, float]:
    """The reported protocols' metrics on the validation users, as ``val_<protocol>_<metric>``."""
    metrics: dict[str, float] = {}
    for name, rows in val:
        if name not in REPORTED_PROTOCOLS:
            continue
        for key, value in evaluate_rows(serving, rows).items():
            if key not in ("users", "dropped_rows"):
                metrics[f"val_{name}_{key}"] = round(float(value), 5)
    return metrics


def _refit_ease_on_everyone(
    serving: ServingModel,
    data: tdata.TrainingData,
    settings: ItemItemSettings,
    dev: devices.DeviceInfo,
    log: Log,
) -> None:
    """The validation users were only held back to tune and measure: the item-to-item matrix
    the checkpoint serves learns from every user's list."""
    t_e = time.perf_counter()
    like = like_min(data.score_range)
    everyone = np.arange(data.n_users)
    serving.ease_index, serving.ease_value = solve_ease_for(
        data, everyone, settings, like, _solve_device(dev)
    )
    log(f"item-to-item refit on all users {time.perf_counter() - t_e:.1f}s")


def _config(config: str | ModelConfig, epochs: int | None) -> tuple[ModelConfig, int]:
    cfg = get_config(config) if isinstance(config, str) else config
    epochs = cfg.epochs if epochs is None else int(epochs)
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    return cfg, epochs


def train_model(
    data: tdata.TrainingData,
    config: str | ModelConfig = "default",
    epochs: int | None = None,
    seed: int = 0,
    device: str = "auto",
    val_fraction: float = 0.1,
    progress: Progress | None = None,
    log: Log | None = None,
    tune: bool = True,
    threads: int | None = None,
) -> FitResult:
    """Train the network, solve the item-to-item parts, tune the serving blend, validate."""
    log = log or _quiet
    cfg, epochs = _config(config, epochs)
    torch.set_num_threads(devices.training_threads(threads))
    torch.manual_seed(seed)
    dev = devices.select_device(device)
    t0 = time.perf_counter()
    # seed users must all be trained (they carry their own embedding); hybrid keeps some back
    frac = 0.0 if cfg.kind == "seed" else val_fraction
    train_users, val_users = tdata.split_users(data.n_users, frac, seed)
    model, shape, mu, content = _network(data, cfg, dev)
    run = LoopInput(model, data, train_users, val_users, cfg, dev, epochs, seed, progress, log)
    ran, sps = (train_seed if cfg.kind == "seed" else train_hybrid)(run)
    model = model.cpu()
    settings = ItemItemSettings.of(cfg)
    ease, knn = _item_item(model, mu, data, train_users, settings, dev, log)
    serving = ServingModel(
        model,
        data.anime_ids,
        data.genre_vocab,
        data.item_genres,
        data.popularity(),
        _metadata(data, cfg, shape, mu, dev, ran, content),
        ease[0] if ease else None,
        ease[1] if ease else None,
        knn_index=knn[0] if knn else None,
        knn_value=knn[1] if knn else None,
    )
    val = validation_protocols(data, val_users, seed) if val_users.size else []
    if tune:
        serving = tune_blend(serving, val, log)
    metrics = _validation_metrics(serving, val)
    if ease is not None and val_users.size and cfg.refit_all:
        _refit_ease_on_everyone(serving, data, settings, dev, log)
    seconds = time.perf_counter() - t0
    metrics["train_seconds"] = round(seconds, 2)
    metrics["samples_per_second"] = round(sps)
    serving.meta["metrics"] = metrics
    serving.metrics = metrics
    vectors = biases = None
    if cfg.kind == "seed":
        vectors = model.user_emb.weight.detach().numpy().astype(np.float32)
        biases = model.user_bias.weight.detach().squeeze(-1).numpy().astype(np.float32)
    return FitResult(
        serving, seconds, run.history, data, vectors, biases, metrics, sps, ran, dev.kind
    )


def fit(
    train: pd.DataFrame,
    item_genres: Mapping[int, Sequence[str]],
    config: str = "default",
    epochs: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    score_range: tuple[float, float] = (1.0, 10.0),
    catalog: Sequence[Anime] | None = None,
    relatives: Mapping[int, Sequence[int]] | None = None,
) -> FitResult:
    """The benchmark's entry: train on a (user, anime_id, score) frame, 0 = unscored; with
    ``catalog`` every catalog anime is served (those without rows by content alone)."""
    data = tdata.from_arrays(
        train["user"].to_numpy(),
        train["anime_id"].to_numpy(),
        train["score"].to_numpy(),
        item_genres,
        score_range,
        catalog,
        relatives,
    )
    return train_model(data, config, epochs, seed, device)


def train_from_store(
    store: Store,
    config: str = "default",
    epochs: int | None = None,
    seed: int = 0,
    device: str = "auto",
    out: Path | None = None,
    progress: Progress | None = None,
    log: Log | None = None,
    holdout: qgate.GateConfig | None = None,
) -> TrainSummary:
    """Train on every list row in the database except the quality gate's fixed holdout of
    data-set users (so that a later retrain can be judged against this model); write the
    checkpoint and the loss-curve PNG beside it."""
    from training.plots import plot_history

    holdout = holdout or qgate.GateConfig()
    data, keys, held = _store_data(store, holdout)
    result = train_model(data, config, epochs, seed, device, progress=progress, log=log)
    result.serving.meta["train_users"] = [
        keys.get(int(u), str(u)) for u in result.serving.meta["train_users"]
    ]
    if out is None:
        out = Path("models") / f"anirec-{result.serving.version}.safetensors"
    out = Path(out)
    main = distributed.is_main()  # under DDP only rank 0 writes the checkpoint and the plot
    path = result.serving.save(out, holdout=holdout.to_json()) if main else out
    plot = None
    try:
        if main:
            plot = plot_history(
                result.history,
                out.with_suffix(".png"),
                title=f"anirec {result.serving.config.name} ({result.device})",
            )
    except Exception as exc:
        if log:
            log(f"loss plot not written: {exc}")
    return TrainSummary(
        path,
        plot,
        result.serving.config.name,
        result.device,
        result.epochs_run,
        result.train_seconds,
        result.samples_per_second,
        data.n_rows,
        data.n_users,
        data.n_items,
        data.fingerprint,
        result.val_metrics,
        len(held),
    )


def _store_data(
    store: Store, holdout: qgate.GateConfig
) -> tuple[tdata.TrainingData, dict[int, str], list[str]]:
    """Every list row in the database minus the fixed holdout's data-set users; the users'
    keys (users.id -> data-set id or PLATFORM:ID); the held-out users."""
    arrays = store.ratings.arrays()
    key_of = tdata.user_keys(store)
    keys = qgate.row_keys(arrays, key_of).astype(str)
    dataset = arrays.platforms == DATASET_PLATFORM
    held = qgate.dataset_holdout_users(keys, arrays.scores, dataset, holdout)
    keep = ~(dataset & np.isin(keys, held))
    catalog = store.catalog.all()
    genres = {a.anime_id: a.genres for a in catalog}
    data = tdata.from_arrays(
        arrays.user_ids[keep],
        arrays.anime_ids[keep],
        arrays.scores[keep].astype(np.float32),
        genres,
        (1.0, 10.0),
        catalog,
        tdata.store_relatives(store, catalog),
    )
    return data, key_of, held
