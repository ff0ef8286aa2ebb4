"""English titles: chosen from the catalog's aliases, and swapped into text shown to a person
who prefers them.

The catalog names anime in romaji; imported aliases (English titles, synonyms, abbreviations,
other languages) carry no language tag, so the English one is picked by its words: plain
ASCII, not an abbreviation, and the most common English words win ("Attack on Titan" over
"SnK" and "L'Attaque des Titans"). Anime without such an alias keep their romaji title.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from storage.rows import Anime

_WORD = re.compile(r"[A-Za-z']+")
#: Common English words (not also romaji particles such as "no", "to", "wa").
_COMMON = """
the of and in on my is with from for at your you we are be it this that our their his her
world story love girl girls boy boys life war night man king queen princess prince school
adventure adventures day days dragon dream dreams hero heroes legend land sky sea
last new little big black white red blue dark light magic one two three
"""
ENGLISH_WORDS = frozenset(_COMMON.split())


def _english_score(alias: str) -> tuple[int, int, int]:
    words = [w.lower() for w in _WORD.findall(alias)]
    return (sum(w in ENGLISH_WORDS for w in words), int(len(words) > 1), len(alias))


def pick_english(title: str, aliases: Iterable[str]) -> str | None:
    """The alias most likely to be the English title of ``title``, or None."""
    found = [
        a
        for a in aliases
        if a.isascii()
        and a.casefold() != title.casefold()
        and len(a) > 4
        and not a.replace(" ", "").isupper()
    ]
    best = max(found, key=_english_score, default=None)
    if best is None or _english_score(best)[0] == 0:
        return None
    return best


def english_titles(anime: Sequence[Anime], aliases: Iterable[tuple[str, int]]) -> dict[int, str]:
    """anime id -> English title, for the anime that have one among their aliases."""
    by_anime: dict[int, list[str]] = {}
    for alias, aid in aliases:
        by_anime.setdefault(int(aid), []).append(alias.strip())
    out: dict[int, str] = {}
    for a in anime:
        english = pick_english(a.title, by_anime.get(a.anime_id, ()))
        if english:
            out[a.anime_id] = english
    return out


class Renamer:
    """Replaces romaji titles with English ones in text, in one pass over the text.

    Titles are indexed by their first word, so the cost is that of the text, not of the
    catalog; the longest title starting at a word wins ("Naruto: Shippuuden" over "Naruto").
    """

    def __init__(self, romaji_to_english: Mapping[str, str]) -> None:
        self.names = dict(romaji_to_english)
        self._first: dict[str, list[str]] = {}
        for romaji in sorted(self.names, key=len, reverse=True):
            head = romaji.split(" ", 1)[0]
            if head:
                self._first.setdefault(head, []).append(romaji)

    def __call__(self, text: str) -> str:
        if not self.names or not text:
            return text
        out: list[str] = []
        i, n = 0, len(text)
        while i < n:
            if i == 0 or not text[i - 1].isalnum():
                end = text.find(" ", i)
                word = text[i : end if end >= 0 else n]
                hit = self._match(text, i, word)
                if hit is not None:
                    out.append(self.names[hit])
                    i += len(hit)
                    continue
            out.append(text[i])
            i += 1
        return "".join(out)

    def _match(self, text: str, i: int, word: str) -> str | None:
        for key in (word, word.rstrip(".,;:!?)\u201d\"'")):
            for romaji in self._first.get(key, ()):
                end = i + len(romaji)
                if text.startswith(romaji, i) and (end >= len(text) or not text[end].isalnum()):
                    return romaji
        return None
