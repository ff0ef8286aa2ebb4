"""Franchises: which catalog titles are seasons, movies and side stories of one series.

A franchise is a group of two or more titles with an explicit watch order. The groups come from
the catalog's related-anime links when there are any (the anime-offline-database import), else
from titles: a title that extends another one's normalised title with sequel markers ("R2",
"Season 2", "Movie", "OVA") or after a separator ("Fullmetal Alchemist: Brotherhood") belongs to
its franchise. Short titles only merge through markers, so "Air" never swallows "Air Gear".

Pure: no storage, no numpy; the same input always gives the same graph.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

#: Shown first in a franchise whose members have no year (then by MyAnimeList id).
TYPE_ORDER = {"tv": 0, "movie": 1, "ova": 2, "special": 3, "ona": 4, "music": 5}
#: Types that can start a series; the first of them in order is the franchise's entry point.
MAIN_TYPES = frozenset({"tv"})
SEASON_ORDER = {"winter": 0, "spring": 1, "summer": 2, "fall": 3}

#: A separator in a title ("Naruto: Shippuuden", "Kara no Kyoukai 5 - ...", "X ~Y~").
SEP = "|"
#: The normalised base must be this long (characters) before a subtitle extends it...
MIN_SUBTITLE_BASE = 5
#: ...and this long before sequel markers alone do ("Air" + "Movie" merges; "K" never).
MIN_MARKER_BASE = 3
#: A related-links component larger than this is a universe of crossovers, not one series:
#: it is split by titles.
MAX_LINKED = 60

# fmt: off
_MARKER_WORDS = frozenset((
    "season", "seasons", "part", "parts", "cour", "movie", "movies", "film", "gekijouban", "the",
    "ova", "ovas", "oad", "oads", "ona", "special", "specials", "sp", "tv", "recap", "final",
    "finale", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
    "new", "extra", "extras", "picture", "drama", "shorts", "short", "mini", "prologue",
    "epilogue", "zoku", "shin", "kanketsu", "hen", "series",
))
# fmt: on
_ORDINAL = re.compile(r"\d+(st|nd|rd|th)?|r\d+|s\d+|[ivx]{1,5}")
_PARENS = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_SEPARATORS = re.compile(r"\s*[:~]\s*|\s+-+\s+|\s*\|\s*")
_DROP = re.compile(r"['’`´\".!?°◎☆★♪♥]")
_NON_WORD = re.compile(r"[^\w|]+")


class Titled(Protocol):
    """What the graph reads of a catalog row (``storage.rows.Anime`` has it)."""

    @property
    def anime_id(self) -> int: ...
    @property
    def title(self) -> str: ...
    @property
    def type(self) -> str | None: ...
    @property
    def year(self) -> int | None: ...
    @property
    def season(self) -> str | None: ...


def normalise(title: str) -> str:
    """Lower case, ASCII-folded words separated by single spaces; subtitle separators become
    `` | ``; bracketed parts ("(2011)", "(TV)") and decorative punctuation are dropped."""
    text = unicodedata.normalize("NFKD", title)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = _PARENS.sub(" ", text)
    text = _SEPARATORS.sub(f" {SEP} ", text)
    text = _DROP.sub("", text)
    text = _NON_WORD.sub(" ", text).replace("_", " ")
    words = text.split()
    while words and words[-1] == SEP:
        words.pop()
    while words and words[0] == SEP:
        words.pop(0)
    out: list[str] = []
    for w in words:
        if w == SEP and out and out[-1] == SEP:
            continue
        out.append(w)
    return " ".join(out)


def base_key(title: str) -> str:
    """The normalised title without separators: titles with equal keys are one series
    ("Hunter x Hunter" and "Hunter x Hunter (2011)", "Gintama" and "Gintama'")."""
    return " ".join(w for w in normalise(title).split() if w != SEP)


def is_marker(word: str) -> bool:
    return word in _MARKER_WORDS or _ORDINAL.fullmatch(word) is not None


def extends(base: str, title: str) -> bool:
    """Whether ``title`` (normalised) continues the series called ``base`` (a base key):
    the same words, then sequel markers and/or a separator and a subtitle."""
    head = base.split()
    rest = title.split()
    for word in head:  # walk past the base's words (separators between them allowed)
        while rest and rest[0] == SEP:
            rest.pop(0)
        if not rest or rest.pop(0) != word:
            return False
    if not head or not rest:
        return False
    if rest[0] == SEP:
        return len(base) >= MIN_SUBTITLE_BASE and len(rest) > 1
    markers = list(itertools.takewhile(is_marker, rest))
    after = rest[len(markers) :]
    if after and after[0] != SEP:
        return False  # "Air Gear": a different title, not a sequel of "Air"
    return len(base) >= MIN_MARKER_BASE


@dataclass(frozen=True)
class Franchise:
    """A series: ``members`` in watch order; ``entry`` is where a newcomer begins."""

    id: int  # the smallest member id: stable while the group keeps it
    name: str  # the entry's title
    members: tuple[int, ...]
    entry: int
    main: tuple[int, ...] = ()  # members of a type that carries the story (TV)

    def position(self, anime_id: int) -> int:
        return self.members.index(anime_id)


class _Groups:
    """Union-find over anime ids."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, a: int) -> int:
        root = a
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while a != root:
            self.parent[a], a = root, self.parent.get(a, a)
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self, ids: Iterable[int]) -> list[list[int]]:
        found: dict[int, list[int]] = defaultdict(list)
        for i in ids:
            found[self.find(i)].append(i)
        return [g for g in found.values() if len(g) > 1]


def title_groups(animes: Sequence[Titled]) -> list[list[int]]:
    """Franchises by title alone (see :func:`extends`)."""
    by_key: dict[str, list[int]] = defaultdict(list)
    norms: dict[int, str] = {}
    for a in animes:
        norms[a.anime_id] = normalise(a.title)
        by_key[" ".join(w for w in norms[a.anime_id].split() if w != SEP)].append(a.anime_id)
    uf = _Groups()
    for ids in by_key.values():
        for other in ids[1:]:
            uf.union(ids[0], other)
    for anime_id, norm in norms.items():
        words = [w for w in norm.split() if w != SEP]
        for n in range(1, len(words)):
            base = " ".join(words[:n])
            if base in by_key and extends(base, norm):
                uf.union(by_key[base][0], anime_id)
    return uf.groups(norms)


def link_groups(animes: Sequence[Titled], links: Iterable[tuple[int, int]]) -> list[list[int]]:
    """Connected components of the related-anime links among catalog ids; a component larger
    than :data:`MAX_LINKED` is split by titles."""
    known = {a.anime_id: a for a in animes}
    uf = _Groups()
    for a, b in links:
        if a in known and b in known and a != b:
            uf.union(a, b)
    out: list[list[int]] = []
    for group in uf.groups(known):
        if len(group) <= MAX_LINKED:
            out.append(group)
        else:
            out.extend(title_groups([known[i] for i in group]))
    return out


def _order_key(a: Titled, dated: bool) -> tuple[int, int, int, int]:
    type_rank = TYPE_ORDER.get((a.type or "").casefold(), len(TYPE_ORDER))
    if dated:
        season = SEASON_ORDER.get((a.season or "").casefold(), len(SEASON_ORDER))
        return (a.year or 0, season, type_rank, a.anime_id)
    return (0, 0, type_rank, a.anime_id)


def ordered(members: Sequence[Titled]) -> list[Titled]:
    """Watch order: by year and season when every member has a year, else TV before movie,
    OVA, special, ONA and music, then by MyAnimeList id (ids grow with release)."""
    dated = all(a.year for a in members)
    return sorted(members, key=lambda a: _order_key(a, dated))


class FranchiseGraph:
    """Every franchise of a catalog, looked up by any member's id."""

    def __init__(self, franchises: Iterable[Franchise]) -> None:
        self.franchises: tuple[Franchise, ...] = tuple(sorted(franchises, key=lambda f: f.id))
        self._of: dict[int, Franchise] = {m: f for f in self.franchises for m in f.members}

    @classmethod
    def build(
        cls, animes: Sequence[Titled], links: Iterable[tuple[int, int]] = ()
    ) -> FranchiseGraph:
        """Franchises from ``links`` (pairs of related catalog ids) when there are any, else
        from titles."""
        links = list(links)
        groups = link_groups(animes, links) if links else title_groups(animes)
        return cls.from_groups(animes, groups)

    @classmethod
    def from_groups(
        cls, animes: Sequence[Titled], groups: Iterable[Iterable[int]]
    ) -> FranchiseGraph:
        """A graph from known groups of ids (e.g. stored ones), ordered afresh."""
        known = {a.anime_id: a for a in animes}
        out = []
        for group in groups:
            members = ordered([known[i] for i in dict.fromkeys(group) if i in known])
            if len(members) < 2:
                continue
            main = [a for a in members if (a.type or "").casefold() in MAIN_TYPES]
            entry = (main or members)[0]
            out.append(
                Franchise(
                    id=min(a.anime_id for a in members),
                    name=entry.title,
                    members=tuple(a.anime_id for a in members),
                    entry=entry.anime_id,
                    main=tuple(a.anime_id for a in main),
                )
            )
        return cls(out)

    def __len__(self) -> int:
        return len(self.franchises)

    def franchise_of(self, anime_id: int) -> Franchise | None:
        """The franchise ``anime_id`` belongs to (None for a stand-alone title)."""
        return self._of.get(int(anime_id))

    def relatives(self, anime_id: int) -> tuple[int, ...]:
        """The other members of ``anime_id``'s franchise, in watch order (empty if none)."""
        f = self._of.get(int(anime_id))
        return () if f is None else tuple(m for m in f.members if m != anime_id)

    def entry_point(self, anime_id: int) -> int:
        """Where someone new to ``anime_id``'s series should begin (itself if stand-alone)."""
        f = self._of.get(int(anime_id))
        return int(anime_id) if f is None else f.entry

    def next_unseen(self, franchise: Franchise, seen_ids: Iterable[int]) -> int | None:
        """The next entry to watch: the first unseen member after the earliest seen one that
        starts the story (a TV entry or the entry point), or the first unseen member when
        nothing seen starts it. None when everything is seen."""
        seen = {int(i) for i in seen_ids}
        starts = {franchise.entry, *franchise.main}
        begun = [p for p, m in enumerate(franchise.members) if m in seen and m in starts]
        start = begun[0] if begun else -1
        for m in franchise.members[start + 1 :]:
            if m not in seen:
                return m
        return None
