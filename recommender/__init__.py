"""The recommender: serving model, personal picks, similar anime, anime night, title search.

``from recommender import Recommender, NoModelError, UnknownTitleError`` works; the names are
loaded lazily so that importing a light submodule (``recommender.types``) does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["NoModelError", "Recommender", "UnknownTitleError"]

if TYPE_CHECKING:
    from recommender.errors import NoModelError, UnknownTitleError
    from recommender.recommender import Recommender


def __getattr__(name: str) -> Any:
    if name == "Recommender":
        from recommender.recommender import Recommender

        return Recommender
    if name in ("NoModelError", "UnknownTitleError"):
        from recommender import errors

        return getattr(errors, name)
    raise AttributeError(f"module 'recommender' has no attribute {name!r}")
