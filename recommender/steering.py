""" "Less like this": titles and genres a person asked to see less of, and what that does.

Stored in the person's settings (``less``: ``{"titles": [anime ids], "genres": [names]}``).
A weakened title stops pulling picks (it is left out of the fold-in, though it stays on the
list and is never recommended) and anime close to it in the learned space are pushed down;
a weakened genre pushes down every anime of that genre. Both act on the z-scored rank, so the
strength is the same for every model and list length.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from recommender.filters import FilterError, ItemTable
from recommender.scoring import matvec

#: How far (in rank standard deviations) an anime identical to a weakened title falls.
TITLE_PUSH = 1.5
#: How far an anime of a weakened genre falls.
GENRE_PUSH = 0.75
#: At most this many of each are kept (the oldest go first).
MAX_ITEMS = 50


@dataclass(frozen=True)
class LessLike:
    """What a person asked to see less of."""

    titles: tuple[int, ...] = ()
    genres: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.titles or self.genres)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> LessLike:
        """Read the ``less`` entry of a settings document (anything malformed is ignored)."""
        raw = settings.get("less")
        if not isinstance(raw, Mapping):
            return cls()
        titles = raw.get("titles", [])
        genres = raw.get("genres", [])
        return cls(
            tuple(int(t) for t in titles if isinstance(t, int) and not isinstance(t, bool))
            if isinstance(titles, list)
            else (),
            tuple(str(g) for g in genres if isinstance(g, str)) if isinstance(genres, list) else (),
        )

    def to_json(self) -> dict[str, list[Any]]:
        return {"titles": list(self.titles), "genres": list(self.genres)}

    def with_title(self, anime_id: int) -> LessLike:
        kept = tuple(t for t in self.titles if t != anime_id)
        return LessLike((*kept, int(anime_id))[-MAX_ITEMS:], self.genres)

    def with_genre(self, genre: str) -> LessLike:
        kept = tuple(g for g in self.genres if g.casefold() != genre.casefold())
        return LessLike(self.titles, (*kept, genre)[-MAX_ITEMS:])

    def without_title(self, anime_id: int) -> LessLike:
        return LessLike(tuple(t for t in self.titles if t != anime_id), self.genres)

    def without_genre(self, genre: str) -> LessLike:
        return LessLike(
            self.titles, tuple(g for g in self.genres if g.casefold() != genre.casefold())
        )


#: Nothing weakened.
NO_STEERING = LessLike()


def push_down(
    less: LessLike, vectors: np.ndarray, index_of: Mapping[int, int], items: ItemTable
) -> np.ndarray:
    """float32 [n_items]: how much to take off each anime's (z-scored) rank."""
    out = np.zeros(vectors.shape[0], np.float32)
    rows = [index_of[t] for t in less.titles if t in index_of]
    if rows:
        # one product per title in the calling thread (scoring.matvec: BLAS threads cost more
        # than a [n_items x d] product on a busy machine); clipping commutes with the max
        sim = np.max([matvec(vectors, vectors[r]) for r in rows], axis=0)
        out += TITLE_PUSH * np.clip(sim, 0.0, 1.0).astype(np.float32)
    cols = []
    for g in less.genres:
        try:
            cols.append(items.genre_column(g))
        except FilterError:
            continue  # a genre the catalog no longer has
    if cols:
        out += GENRE_PUSH * items.genres[:, cols].sum(axis=1).astype(np.float32)
    return out
