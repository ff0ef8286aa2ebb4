"""A small, real world for tests that need a trained model: ``build_small_world(tmp_path)``.

It writes a synthetic catalog and data-set ratings with planted genre tastes into a real SQLite
file and trains the real model on them (CPU, a few seconds), then returns the store, the
checkpoint path and the planted facts (about 10 s on 2 cores). Nothing is mocked.

The world:
- genres Mecha, Romance, Comedy, Horror, Sports (``TASTE_GENRES``), 16 anime each (TV, Movie,
  OVA types mixed, member counts spread so that popularity floors bite), plus 6 NSFW anime
  (genre Hentai) that everyone who loves Romance also watches and rates well, so an unfiltered
  model would happily recommend them;
- 300 data-set users, each loving one genre: they list many anime of it and score them 8-10,
  list a few others and score them 2-5, and leave some unscored (score 0 in the data set).

Use it from any test module::

    from tests.fixtures_model import build_small_world

    @pytest.fixture(scope="module")
    def world(tmp_path_factory):
        return build_small_world(tmp_path_factory.mktemp("world"))

``world.store`` stays open for the module; call ``world.close()`` when done if you care.
``world.anime_by_genre[genre]`` lists the anime ids of a taste genre; ``world.nsfw_ids`` the
adult titles; ``world.new_user(name, ratings)`` creates a console user with ratings and returns
their ``users.id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from storage.repository import Store
from storage.rows import Anime

TASTE_GENRES = ("Mecha", "Romance", "Comedy", "Horror", "Sports")
PER_GENRE = 16
N_NSFW = 6
N_USERS = 300
TYPES = ("TV", "TV", "Movie", "OVA")


@dataclass
class SmallWorld:
    store: Store
    checkpoint: Path
    db_path: Path
    anime: list[Anime]
    anime_by_genre: dict[str, list[int]]
    nsfw_ids: list[int]
    favourite_of: dict[int, str] = field(default_factory=dict)  # data-set users.id -> genre

    def new_user(
        self,
        name: str,
        ratings: dict[int, int | None] | None = None,
        statuses: dict[int, str] | None = None,
    ) -> int:
        """A console user with the given scores (None = on the list, unscored) and statuses."""
        user = self.store.users.ensure("console", name, name)
        for anime_id, score in (ratings or {}).items():
            self.store.ratings.upsert(user.id, anime_id, score)
        for anime_id, status in (statuses or {}).items():
            self.store.ratings.upsert(user.id, anime_id, None, status)
        return user.id

    def genre_of(self, anime_id: int) -> str:
        for genre, ids in self.anime_by_genre.items():
            if anime_id in ids:
                return genre
        return "Hentai"

    def close(self) -> None:
        self.store.close()


def small_catalog() -> tuple[list[Anime], dict[str, list[int]], list[int]]:
    anime: list[Anime] = []
    by_genre: dict[str, list[int]] = {}
    next_id = 1
    for g, genre in enumerate(TASTE_GENRES):
        ids = []
        for j in range(PER_GENRE):
            second = TASTE_GENRES[(g + 1 + j % 3) % len(TASTE_GENRES)] if j % 4 == 3 else None
            genres = (genre,) if second is None else (genre, second)
            anime.append(
                Anime(
                    anime_id=next_id,
                    title=f"{genre} Story {chr(65 + j)}",
                    genres=genres,
                    type=TYPES[j % len(TYPES)],
                    episodes=12,
                    mal_score=7.0 + (j % 5) * 0.3,
                    members=1000 * (PER_GENRE - j) ** 2,
                    nsfw=False,
                )
            )
            ids.append(next_id)
            next_id += 1
        by_genre[genre] = ids
    nsfw = []
    for j in range(N_NSFW):
        anime.append(
            Anime(next_id, f"Night Romance {j}", ("Hentai", "Romance"), "OVA", 2, 7.5, 50_000, True)
        )
        nsfw.append(next_id)
        next_id += 1
    return anime, by_genre, nsfw


def small_ratings(
    by_genre: dict[str, list[int]], nsfw: list[int], seed: int = 7
) -> list[tuple[str, int, int | None, str]]:
    """(data-set user id, anime id, score or None, favourite genre) rows."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(N_USERS):
        fav = TASTE_GENRES[u % len(TASTE_GENRES)]
        loved = by_genre[fav]
        # popular ones (low index) are listed more often
        p = np.linspace(2.0, 0.5, len(loved))
        chosen = rng.choice(loved, size=rng.integers(8, 13), replace=False, p=p / p.sum())
        for aid in chosen:
            score = int(rng.integers(8, 11)) if rng.random() > 0.15 else None
            rows.append((str(u), int(aid), score, fav))
        others = [a for g, ids in by_genre.items() if g != fav for a in ids]
        for aid in rng.choice(others, size=rng.integers(2, 5), replace=False):
            rows.append((str(u), int(aid), int(rng.integers(2, 6)), fav))
        if fav == "Romance":
            for aid in rng.choice(nsfw, size=3, replace=False):
                rows.append((str(u), int(aid), int(rng.integers(8, 11)), fav))
    return rows


def build_small_world(tmp_path: Path, epochs: int = 30, seed: int = 0) -> SmallWorld:
    """Write the small world into ``tmp_path/world.db``, train, return it (~10 s)."""
    from training.train import train_from_store

    tmp_path = Path(tmp_path)
    db_path = tmp_path / "world.db"
    store = Store(db_path)
    anime, by_genre, nsfw = small_catalog()
    store.catalog.upsert(anime)
    rows = small_ratings(by_genre, nsfw)

    def write(conn) -> dict[str, int]:
        mapping = store.users.ensure_dataset({r[0] for r in rows}, conn)
        store.ratings.upsert_rows(
            conn, [(mapping[u], a, s, None) for u, a, s, _ in rows], "dataset"
        )
        return mapping

    mapping = store.write_batch(write)
    favourite_of = {mapping[u]: fav for u, _, _, fav in rows}
    summary = train_from_store(
        store, epochs=epochs, seed=seed, device="cpu", out=tmp_path / "model.safetensors"
    )
    return SmallWorld(store, Path(summary.checkpoint), db_path, anime, by_genre, nsfw, favourite_of)
