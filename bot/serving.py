"""Where the serving checkpoint lives and how the bot loads it.

The model registry (:mod:`training.registry`) decides: the version named by
``model_dir/SERVING``, else the legacy ``model_dir/serving.safetensors`` that ``anirec train`` /
``anirec demo`` write before any retrain has run. Everything else (``anirec demo``,
``anirec chat``, ``anirec run``) asks this module.
"""

from __future__ import annotations

import logging
from pathlib import Path

from bot.settings import Settings
from storage.repository import Store
from training.registry import LEGACY, Registry, load_serving

log = logging.getLogger(__name__)

SERVING_NAME = LEGACY


def serving_checkpoint_path(settings: Settings) -> Path:
    """The checkpoint the bot serves (it may not exist yet: then the legacy path)."""
    return Registry(settings.model_dir).serving_path() or settings.model_dir / SERVING_NAME


def build_recommender(store: Store, settings: Settings):
    """A Recommender on the serving checkpoint; not ready (no model) when there is none yet.

    A serving checkpoint that fails to load is logged loudly and the previous promoted version
    serves instead; with none left the bot starts without a model rather than not at all:
    /rate, /profile and the rest keep working.
    """
    from recommender import Recommender

    registry = Registry(settings.model_dir, keep=settings.retrain_keep)
    loaded = load_serving(registry, lambda path: Recommender(store, path), store)
    if loaded is not None:
        return loaded[2]
    if registry.serving_chain():
        log.error(
            "no serving checkpoint under %s could be loaded; starting without a model",
            settings.model_dir,
        )
    return Recommender(store, None)
