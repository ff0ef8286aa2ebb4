"""Content features of a catalog title, from its catalog row alone.

The anime side of the model adds a content vector (``HybridRecommender.genre`` over these
features) to each anime's learned embedding, and is trained so that the content vector alone
stands in for a title that has no learned part: one that had no list rows at training time, or
that a catalog refresh imported later. So the features may only be things a brand-new title
already has: genres and tags, type, length, season and year, studios. Never its member count or
mean score (a new title has neither; using them would also leak the ratings being predicted).

:class:`ContentVocab` is fitted on the catalog at training time and stored in the checkpoint, so
serving can featurise any title later with the same columns. Every feature is 0/1 (multi-hot
vocabularies and one-hot buckets, each with an "unknown" column), so the matrix is stored as
bytes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from storage.rows import Anime

#: Bucket edges (lower bounds): 1, 2-6, 7-13, 14-26, 27-52, 53-100, 101+ episodes.
EPISODE_EDGES = (1, 2, 7, 14, 27, 53, 101)
#: Minutes per episode: under 5 (shorts), 5-14, 15-34 (TV), 35-79, 80+ (films).
DURATION_EDGES = (0, 5, 15, 35, 80)
YEAR_EDGES = (1900, 1980, 1990, 2000, 2005, 2010, 2013, 2016, 2019, 2022, 2025)
SEASONS = ("WINTER", "SPRING", "SUMMER", "FALL")
VERSION = 1


def _fold(name: str) -> str:
    return " ".join(name.split()).casefold()


def _frequent(values: Iterable[Iterable[str]], limit: int, min_count: int) -> tuple[str, ...]:
    """The ``limit`` most frequent names seen at least ``min_count`` times (casefolded)."""
    counts = Counter(_fold(v) for vs in values for v in vs if v and v.strip())
    ranked = sorted((n for n, c in counts.items() if c >= min_count), key=lambda n: (-counts[n], n))
    return tuple(sorted(ranked[:limit]))


def _bucket(value: float | None, edges: Sequence[float]) -> int | None:
    """Index of the bucket ``value`` falls in (None when unknown or below the first edge)."""
    if value is None or value < edges[0]:
        return None
    return int(np.searchsorted(np.asarray(edges), value, side="right") - 1)


@dataclass(frozen=True)
class ContentVocab:
    """The feature columns: genres | tags | type | episodes | duration | year+season | studios."""

    genres: tuple[str, ...]
    tags: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    studios: tuple[str, ...] = ()
    use_duration: bool = False
    use_year: bool = False

    @classmethod
    def fit(
        cls,
        catalog: Sequence[Anime],
        max_tags: int = 256,
        max_studios: int = 128,
        min_count: int = 3,
    ) -> ContentVocab:
        """Columns for ``catalog``: every genre and type, the frequent tags and studios;
        duration and year columns only when some title has them."""
        return cls(
            genres=tuple(sorted({_fold(g) for a in catalog for g in a.genres if g.strip()})),
            tags=_frequent((a.tags for a in catalog), max_tags, min_count),
            types=tuple(sorted({_fold(a.type) for a in catalog if a.type and a.type.strip()})),
            studios=_frequent((a.studios for a in catalog), max_studios, min_count),
            use_duration=any(a.duration_s for a in catalog),
            use_year=any(a.year for a in catalog),
        )

    # -- layout ----------------------------------------------------------------------------------
    def _blocks(self) -> list[tuple[str, list[str]]]:
        blocks = [
            ("genre", list(self.genres)),
            ("tag", list(self.tags)),
            ("type", [*self.types, "?"]),
            ("episodes", [str(e) for e in EPISODE_EDGES] + ["?"]),
        ]
        if self.use_duration:
            blocks.append(("minutes", [str(e) for e in DURATION_EDGES] + ["?"]))
        if self.use_year:
            blocks.append(("year", [str(e) for e in YEAR_EDGES] + ["?"]))
            blocks.append(("season", [s.lower() for s in SEASONS]))
        blocks.append(("studio", list(self.studios)))
        return blocks

    def names(self) -> list[str]:
        """Column names, e.g. ``genre:mecha``, ``episodes:14`` (the bucket's lower edge)."""
        return [f"{kind}:{name}" for kind, names in self._blocks() for name in names]

    @property
    def n_features(self) -> int:
        return sum(len(names) for _, names in self._blocks())

    def features(self, catalog: Sequence[Anime | None]) -> np.ndarray:
        """bool [len(catalog), n_features]; a None row (unknown title) is all "unknown"."""
        blocks = self._blocks()
        offsets: dict[str, int] = {}
        col = 0
        for kind, names in blocks:
            offsets[kind] = col
            col += len(names)
        lookup = {kind: {n: j for j, n in enumerate(names)} for kind, names in blocks}
        out = np.zeros((len(catalog), col), dtype=bool)
        for i, anime in enumerate(catalog):
            for kind, j in self._columns(anime, lookup):
                out[i, offsets[kind] + j] = True
        return out

    def _columns(
        self, a: Anime | None, lookup: Mapping[str, Mapping[str, int]]
    ) -> Iterable[tuple[str, int]]:
        """(block, column within it) of every feature ``a`` has."""
        unknown = {kind: len(names) - 1 for kind, names in lookup.items()}
        if a is None:
            yield "type", unknown["type"]
            yield "episodes", unknown["episodes"]
            return
        for kind, values in (("genre", a.genres), ("tag", a.tags), ("studio", a.studios)):
            for v in values:
                j = lookup[kind].get(_fold(v))
                if j is not None:
                    yield kind, j
        t = lookup["type"].get(_fold(a.type or ""))
        yield "type", unknown["type"] if t is None else t
        e = _bucket(a.episodes or None, EPISODE_EDGES)
        yield "episodes", unknown["episodes"] if e is None else e
        if self.use_duration:
            m = _bucket(a.duration_s / 60.0 if a.duration_s else None, DURATION_EDGES)
            yield "minutes", unknown["minutes"] if m is None else m
        if self.use_year:
            y = _bucket(a.year, YEAR_EDGES)
            yield "year", unknown["year"] if y is None else y
            if a.season and a.season.upper() in SEASONS:
                yield "season", SEASONS.index(a.season.upper())

    # -- storage ---------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "genres": list(self.genres),
            "tags": list(self.tags),
            "types": list(self.types),
            "studios": list(self.studios),
            "use_duration": self.use_duration,
            "use_year": self.use_year,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ContentVocab:
        if raw.get("version") != VERSION:
            raise ValueError(f"content vocabulary version {raw.get('version')!r} is not {VERSION}")
        return cls(
            genres=tuple(raw["genres"]),
            tags=tuple(raw["tags"]),
            types=tuple(raw["types"]),
            studios=tuple(raw["studios"]),
            use_duration=bool(raw["use_duration"]),
            use_year=bool(raw["use_year"]),
        )


def relative_index(
    anime_ids: np.ndarray,
    relatives: Mapping[int, Sequence[int]] | None,
    index_of: Mapping[int, int],
    trained: np.ndarray,
    k: int,
) -> np.ndarray:
    """int64 [len(anime_ids), k]: model indices of up to ``k`` trained relatives of each anime
    (-1 pads). ``relatives`` maps an anime id to related anime ids (sequels, prequels, ...)."""
    out = np.full((len(anime_ids), k), -1, dtype=np.int64)
    if not relatives or k == 0:
        return out
    for row, aid in enumerate(anime_ids):
        found = [
            j
            for r in relatives.get(int(aid), ())
            if (j := index_of.get(int(r))) is not None and trained[j] and int(r) != int(aid)
        ]
        found = list(dict.fromkeys(found))[:k]
        out[row, : len(found)] = found
    return out


def _released_before(a: Anime | None, a_id: int, b: Anime | None, b_id: int) -> bool:
    """Whether title ``a`` came out before ``b``: by year and season when both have a year,
    else by MyAnimeList id (ids grow with release)."""
    if a is not None and b is not None and a.year and b.year:
        return (a.year, _season_rank(a), a_id) < (b.year, _season_rank(b), b_id)
    return a_id < b_id


def _season_rank(a: Anime) -> int:
    season = (a.season or "").upper()
    return SEASONS.index(season) if season in SEASONS else len(SEASONS)


def earlier_relatives(
    anime_ids: Iterable[int],
    relatives: Mapping[int, Sequence[int]] | None,
    catalog: Mapping[int, Anime],
) -> dict[int, tuple[int, ...]]:
    """The relatives of each anime that came out before it.

    A title served by its stand-in is new: every trained relative it has is an earlier entry of
    its series (a prequel, the first season), more watched than a new sequel will be. Training
    the stand-in on trained titles with all their relatives (later sequels too) teaches it that
    a title is as watched as its relatives; measured, that put new sequels on top of every new
    title ranking. So the stand-in sees, in training and in serving alike, only earlier ones.
    """
    if not relatives:
        return {}
    out: dict[int, tuple[int, ...]] = {}
    for aid in anime_ids:
        aid = int(aid)
        me = catalog.get(aid)
        found = tuple(
            int(r)
            for r in relatives.get(aid, ())
            if _released_before(catalog.get(int(r)), int(r), me, aid)
        )
        if found:
            out[aid] = found
    return out


def relatives_width(relatives: Mapping[int, Sequence[int]] | None, cap: int = 4) -> int:
    """How many relatives per anime the model keeps: 0 when no title has any."""
    if not relatives:
        return 0
    longest = max((len(v) for v in relatives.values()), default=0)
    return min(longest, cap)


def plain_anime(anime_id: int, genres: Sequence[str]) -> Anime:
    """A catalog row known only by its genres (training from a bare genre mapping)."""
    return Anime(int(anime_id), "", tuple(genres), None, None, None, 0, False)


@dataclass(frozen=True)
class ContentInputs:
    """What the content branch of a model reads for a list of anime."""

    vocab: ContentVocab
    features: np.ndarray  # bool [n, n_features]
    relatives: np.ndarray  # int64 [n, k], model indices of trained relatives, -1 pads


def content_inputs(
    anime_ids: np.ndarray,
    catalog: Sequence[Anime],
    trained: np.ndarray,
    relatives: Mapping[int, Sequence[int]] | None = None,
    vocab: ContentVocab | None = None,
    index_of: Mapping[int, int] | None = None,
    k: int | None = None,
) -> ContentInputs:
    """Features of ``anime_ids`` from their ``catalog`` rows (the vocabulary is fitted on
    ``catalog`` unless given) and their trained relatives that came out before them (see
    :func:`earlier_relatives`; release order from ``catalog``'s rows) among ``index_of``
    (default: these anime, in order; ``trained`` is indexed like ``index_of``)."""
    by_id = {a.anime_id: a for a in catalog}
    rows = [by_id.get(int(a)) for a in anime_ids]
    vocab = vocab or ContentVocab.fit([a for a in rows if a is not None])
    index_of = index_of or {int(a): i for i, a in enumerate(anime_ids)}
    k = relatives_width(relatives) if k is None else k
    earlier = earlier_relatives(anime_ids, relatives, by_id)
    rel = relative_index(anime_ids, earlier, index_of, trained, k)
    return ContentInputs(vocab, vocab.features(rows), rel)
