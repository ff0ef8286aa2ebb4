"""How the bot (and every CLI command that answers from the model) gets the serving model.

The model registry (:mod:`training.registry`) is the one resolver: the version named by
``model_dir/SERVING``, earlier promotions when it fails to load, else the legacy
``model_dir/serving.safetensors`` that ``anirec train`` / ``anirec demo`` write before any
retrain has run. Serving only reads the model folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

from bot.settings import Settings
from recommender import Recommender
from storage.repository import Store
from training.registry import Registry, Served, load_serving, record_serving

log = logging.getLogger(__name__)


def serving_checkpoint_path(settings: Settings) -> Path:
    """The first checkpoint the registry would try (it may not exist yet: then the legacy path)."""
    registry = Registry(settings.model_dir)
    return registry.serving_path() or registry.legacy_path


def load_into(recommender: Recommender, store: Store, registry: Registry) -> Served[object] | None:
    """Load the serving model into ``recommender`` (hot swap), falling back past broken
    versions; the model_versions rows are brought in line. None when nothing loads (the
    recommender keeps what it had)."""
    served: Served[object] | None = load_serving(registry, recommender.swap)
    failed = served.failed if served else tuple(registry.serving_chain())
    try:
        record_serving(store, served, [path for _v, path in failed])
    except Exception as exc:  # a read-only or busy database must not stop serving
        log.warning("could not record the serving model in the database: %s", exc)
    return served


def build_recommender(store: Store, settings: Settings) -> Recommender:
    """A Recommender on the serving checkpoint; not ready (no model) when there is none yet.

    A serving checkpoint that fails to load is logged loudly and the previous promoted version
    serves instead; with none left the bot starts without a model rather than not at all:
    /rate, /profile and the rest keep working, and the retraining service keeps retrying.
    """
    recommender = Recommender(store, None)
    registry = Registry(settings.model_dir, keep=settings.retrain_keep)
    if load_into(recommender, store, registry) is None and registry.serving_chain():
        log.error(
            "no serving checkpoint under %s could be loaded; starting without a model",
            settings.model_dir,
        )
    return recommender
