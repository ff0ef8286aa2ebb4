"""The catalog as the recommender sees it: anime by id, and the forgiving title search."""

from __future__ import annotations

import threading

from recommender.english import Renamer, english_titles
from recommender.errors import UnknownTitleError
from recommender.search import TitleIndex
from recommender.types import TitleMatch
from storage.aliases import MAX_ALIAS_CHARS
from storage.repository import Store
from storage.rows import Anime


class Titles:
    """Anime by id and the title index, both read from storage lazily and rebuilt on demand.

    The index is built on first use (it takes a moment on a big catalog) and replaced as a
    whole, so a search in flight always sees one consistent index.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._index: TitleIndex | None = None
        self._by_id: dict[int, Anime] | None = None
        self._english: tuple[TitleIndex, dict[int, str], Renamer] | None = None
        self._lock = threading.Lock()

    def use_catalog(self, catalog: list[Anime]) -> None:
        """Take a freshly read catalog (the recommender reads it when a model loads)."""
        self._by_id = {a.anime_id: a for a in catalog}

    def index(self) -> TitleIndex:
        """The title index, built on first use from the catalog and the stored aliases."""
        index = self._index
        if index is None:
            with self._lock:
                if self._index is None:
                    self._index = TitleIndex(self.store.catalog.all(), self.store.catalog.aliases())
                index = self._index
        return index

    def built(self) -> TitleIndex | None:
        """The index if it has been built (never builds it)."""
        return self._index

    def reload(self) -> None:
        """Rebuild the index and the id map (after a catalog or alias import)."""
        catalog = self.store.catalog.all()
        self.use_catalog(catalog)
        with self._lock:
            self._index = TitleIndex(catalog, self.store.catalog.aliases())

    def search(self, text: str, limit: int = 10, nsfw: bool = False) -> list[TitleMatch]:
        return self.index().search(text, limit, nsfw)

    def resolve(self, text: str, nsfw: bool = True) -> Anime:
        return self.index().resolve(text, nsfw)

    def add_alias(self, alias: str, anime_id: int, source: str = "chat") -> None:
        """Teach the search another name for an anime (stored, and live at once)."""
        alias = " ".join(alias.split())
        if not alias:
            raise ValueError("an alias cannot be empty")
        if len(alias) > MAX_ALIAS_CHARS:
            raise ValueError(f"an alias can be at most {MAX_ALIAS_CHARS} characters")
        self.anime(anime_id)
        self.store.catalog.add_aliases([(alias, int(anime_id))], source)
        with self._lock:
            if self._index is not None:
                self._index = self._index.with_aliases([(alias, int(anime_id))])

    def by_id(self) -> dict[int, Anime]:
        catalog = self._by_id
        if catalog is None:
            catalog = {a.anime_id: a for a in self.store.catalog.all()}
            self._by_id = catalog
        return catalog

    def anime(self, anime_id: int) -> Anime:
        """The catalog anime ``anime_id``; UnknownTitleError when there is none."""
        anime = self.by_id().get(int(anime_id))
        if anime is None:
            raise UnknownTitleError(str(anime_id))
        return anime

    def english(self) -> tuple[dict[int, str], Renamer]:
        """anime id -> English title (where an alias is one), and a renamer for text; rebuilt
        whenever the index is (an alias import)."""
        index = self.index()
        found = self._english
        if found is None or found[0] is not index:
            names = english_titles(index.anime, index.aliases)
            romaji = {a.anime_id: a.title for a in index.anime}
            renamer = Renamer({romaji[i]: n for i, n in names.items() if i in romaji})
            found = self._english = (index, names, renamer)
        return found[1], found[2]

    def english_ready(self) -> tuple[dict[int, str], Renamer] | None:
        """:meth:`english` when already worked out for the current index, else None."""
        found = self._english
        if found is None or found[0] is not self.built():
            return None
        return found[1], found[2]
