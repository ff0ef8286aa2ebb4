"""Typo-tolerant, abbreviation-aware title search over the catalog and its aliases.

Everything that can be computed once is computed when the index is built (normalised strings,
generated short forms such as "snk" or "fmab", a word vocabulary with an inverted index), so a
query costs a few rapidfuzz passes over short lists: well under 5 ms over the 12k-title catalog.

A query is matched five ways and the best match per anime wins:
1. a whole number that is an anime id (always first);
2. the exact normalised title or alias;
3. an exact short form (initials of the words, "Fullmetal" split as "Full Metal", particles
   dropped or kept, the part before a colon);
4. whole-string similarity (rapidfuzz QRatio) against every title;
5. word candidates (exact, one edit away or, for the last word, prefix matches, for
   autocomplete) from the inverted index, rescored by similarity, typed prefix or contained words.
Ties go to the better known anime (MyAnimeList members).
"""

from __future__ import annotations

import bisect
import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence

import numpy as np
from rapidfuzz import fuzz, process

from recommender.errors import UnknownTitleError
from recommender.types import TitleMatch
from storage.rows import Anime

#: Japanese particles and English function words: short forms are made with and without them.
PARTICLES = frozenset(
    {"no", "wa", "ga", "wo", "ni", "to", "de", "na", "e", "the", "of", "a", "an", "and", "in", "on"}
)
MAX_QUERY_CHARS = 200
MAX_QUERY_WORDS = 6
_KIND_TITLE, _KIND_ALIAS = 0, 1
Offer = Callable[..., None]  # offer(position, score, matched text, fame weight=3.0)
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def normalise(text: str) -> str:
    """Lower case, accents stripped, punctuation turned into single spaces."""
    folded = unicodedata.normalize("NFKD", text.lower())
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    return " ".join(_NON_ALNUM.sub(" ", folded).split())


def _initial(word: str) -> str:
    if word.isdigit() or (len(word) <= 3 and any(c.isdigit() for c in word)):
        return word
    return word[0]


def _split_compound(word: str, vocab: set[str]) -> tuple[str, str] | None:
    """'fullmetal' -> ('full', 'metal') when both halves are words of the catalog."""
    if len(word) < 7 or not word.isalpha():
        return None
    best = None
    for cut in range(3, len(word) - 2):
        left, right = word[:cut], word[cut:]
        if (
            left in vocab
            and right in vocab
            and (best is None or min(len(left), len(right)) > min(map(len, best)))
        ):
            best = (left, right)
    return best


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


class _NearWords:
    """Words within one edit (insert, delete, substitute, swap) of a query, by deletion lookups.

    The symmetric-deletion trick (as in SymSpell): index every word and its one-letter
    deletions; a query and its deletions then meet every word one edit away, in O(len) lookups
    instead of a fuzzy pass over the whole vocabulary.
    """

    def __init__(self, words: Iterable[str], min_len: int = 3) -> None:
        table: dict[str, set[str]] = defaultdict(set)
        for w in words:
            if len(w) >= min_len:
                table[w].add(w)
                for d in _deletions(w):
                    table[d].add(w)
        self._table = {k: tuple(v) for k, v in table.items()}

    def near(self, word: str) -> set[str]:
        found: set[str] = set(self._table.get(word, ()))
        for d in _deletions(word):
            found.update(self._table.get(d, ()))
        return found


def _candidate_score(query: str, text: str) -> float:
    """Whole-string similarity, or (discounted) the typed start of the title, or every typed
    word appearing in it. Never a short title found inside a longer query ('k on' in 'attack
    on titan')."""
    score = fuzz.ratio(query, text)
    if len(text) > len(query):
        score = max(
            score,
            0.95 * fuzz.ratio(query, text[: len(query)]),
            0.9 * fuzz.token_set_ratio(query, text, processor=None),
        )
    return score


def short_forms(title: str, vocab: set[str]) -> set[str]:
    """Abbreviations people type for a title: 'snk', 'fmab', 'cg' (the part before a colon)."""
    forms: set[str] = set()
    parts = [title]
    if ":" in title:
        parts.append(title.split(":", 1)[0])
    for part in parts:
        words = normalise(part).split()
        if not words:
            continue
        split_words: list[str] = []
        for w in words:
            pair = _split_compound(w, vocab)
            split_words.extend(pair if pair else (w,))
        for seq in (words, split_words):
            for keep_particles in (True, False):
                ws = seq if keep_particles else [w for w in seq if w not in PARTICLES]
                if len(ws) >= 2:
                    form = "".join(_initial(w) for w in ws)
                    if 2 <= len(form) <= 12:
                        forms.add(form)
    return forms


class TitleIndex:
    """An immutable search index; build a new one to add aliases (cheap: ~0.1-0.3 s)."""

    def __init__(self, anime: Sequence[Anime], aliases: Iterable[tuple[str, int]] = ()) -> None:
        self.anime: list[Anime] = list(anime)
        self.position: dict[int, int] = {a.anime_id: i for i, a in enumerate(self.anime)}
        self.aliases: list[tuple[str, int]] = [
            (alias, aid) for alias, aid in aliases if aid in self.position and alias.strip()
        ]
        members = np.array([max(a.members, 0) for a in self.anime], dtype=np.float64)
        # 0..1, by orders of magnitude of MyAnimeList members (1M members -> 1).
        self._fame = np.clip(np.log10(1.0 + members) / 6.0, 0.0, 1.0)
        self._nsfw = np.array([a.nsfw for a in self.anime], dtype=bool)
        texts, kind = self._index_entries()
        self._index_words(texts)
        self._index_short_forms()
        self._near_short = _NearWords(self._short, min_len=4)
        self._near_words = _NearWords(self._vocab, min_len=4)
        self._index_whole_titles(texts, kind)

    def _index_entries(self) -> tuple[list[str], list[int]]:
        """One entry per distinct normalised title or alias of an anime: its text, how it is
        shown, whose it is and whether it is a title or an alias."""
        texts: list[str] = []
        display: list[str] = []
        owner: list[int] = []
        kind: list[int] = []
        seen: set[tuple[str, int]] = set()

        def add(raw: str, pos: int, k: int) -> None:
            text = normalise(raw) or raw.strip().lower()
            if not text or (text, pos) in seen:
                return
            seen.add((text, pos))
            texts.append(text)
            display.append(raw.strip())
            owner.append(pos)
            kind.append(k)

        for pos, a in enumerate(self.anime):
            add(a.title, pos, _KIND_TITLE)
        for alias, aid in self.aliases:
            add(alias, self.position[aid], _KIND_ALIAS)
        self._texts, self._display = texts, display
        self._owner = np.asarray(owner, dtype=np.int64)
        self._kind = np.asarray(kind, dtype=np.int8)
        return texts, kind

    def _index_words(self, texts: list[str]) -> None:
        """Exact texts, and the entries and rarity (idf) of every word."""
        self._exact: dict[str, list[int]] = defaultdict(list)
        postings: dict[str, list[int]] = defaultdict(list)
        for e, text in enumerate(texts):
            self._exact[text].append(e)
            for word in set(text.split()):
                postings[word].append(e)
        self._postings = {w: np.asarray(p, dtype=np.int64) for w, p in postings.items()}
        n = max(len(texts), 1)
        self._idf = {w: math.log(1.0 + n / len(p)) for w, p in postings.items()}
        self._vocab = sorted(postings)

    def _index_short_forms(self) -> None:
        """Abbreviations of every title and alias, each form's anime best known first."""
        vocab_set = set(self._vocab)
        short: dict[str, set[int]] = defaultdict(set)
        for pos, a in enumerate(self.anime):
            for form in short_forms(a.title, vocab_set):
                short[form].add(pos)
        for alias, aid in self.aliases:
            for form in short_forms(alias, vocab_set):
                short[form].add(self.position[aid])
        # each form's anime, best known first, so a common form ('san') offers only the top few
        self._short = {
            f: np.asarray(sorted(p, key=lambda i: -self._fame[i]), dtype=np.int64)
            for f, p in short.items()
        }

    def _index_whole_titles(self, texts: list[str], kind: list[int]) -> None:
        """The titles the whole-string pass runs over, with and without hidden ones."""
        owner = self._owner
        # The whole-string pass runs over titles only, so that thousands of imported aliases
        # do not slow it down (aliases are reached exactly and through their words). Separate
        # lists keep hidden (NSFW) titles from crowding out the visible ones.
        # Sorted by length: a query only meets titles whose length allows the cutoff score.
        titles = sorted(
            (e for e in range(len(texts)) if kind[e] == _KIND_TITLE), key=lambda e: len(texts[e])
        )
        safe = [e for e in titles if not self._nsfw[owner[e]]]
        self._whole: dict[bool, tuple[np.ndarray, list[str], list[int]]] = {
            nsfw: (
                np.asarray(entries, dtype=np.int64),
                [texts[e] for e in entries],
                [len(texts[e]) for e in entries],
            )
            for nsfw, entries in ((True, titles), (False, safe))
        }

    def __len__(self) -> int:
        return len(self.anime)

    def get(self, anime_id: int) -> Anime | None:
        pos = self.position.get(anime_id)
        return None if pos is None else self.anime[pos]

    def with_aliases(self, pairs: Iterable[tuple[str, int]]) -> TitleIndex:
        return TitleIndex(self.anime, [*self.aliases, *pairs])

    # -- querying ----------------------------------------------------------------------------
    def search(self, text: str, limit: int = 10, nsfw: bool = False) -> list[TitleMatch]:
        """The best matches, best first; NSFW titles only when ``nsfw``."""
        ranked = self._ranked(text, max(limit, 1), nsfw)
        return [m for m, _ in ranked[:limit]]

    def resolve(self, text: str, nsfw: bool = True) -> Anime:
        """The one anime ``text`` clearly names, or UnknownTitleError with suggestions."""
        ranked = self._ranked(text, 5, nsfw)
        if not ranked:
            raise UnknownTitleError(text.strip())
        (top, top_key) = ranked[0]
        if top.score >= 100 or (
            top.score >= 88 and (len(ranked) == 1 or top_key - ranked[1][1] >= 1.5)
        ):
            return top.anime
        raise UnknownTitleError(text.strip(), tuple(m for m, _ in ranked))

    def _ranked(self, text: str, limit: int, nsfw: bool) -> list[tuple[TitleMatch, float]]:
        raw = text.strip()[:MAX_QUERY_CHARS]
        query = normalise(raw) or raw.lower()
        if not query:
            return []
        best: dict[int, tuple[float, float, str]] = {}  # pos -> (key, score, matched)

        def offer(pos: int, score: float, matched: str, fame_weight: float = 3.0) -> None:
            if not nsfw and self._nsfw[pos]:
                return
            key = score + fame_weight * float(self._fame[pos])
            if pos not in best or key > best[pos][0]:
                best[pos] = (key, score, matched)

        self._offer_exact(raw, query, limit, offer)
        self._offer_fuzzy(query, limit, nsfw, offer)
        ordered = sorted(best.items(), key=lambda kv: -kv[1][0])[:limit]
        return [
            (TitleMatch(self.anime[pos], round(min(score, 100.0), 1), matched), key)
            for pos, (key, score, matched) in ordered
        ]

    def _offer_exact(self, raw: str, query: str, limit: int, offer: Offer) -> None:
        """An id, an exact title or alias, a short form (abbreviation) and its near misses."""
        if raw.isdigit() and int(raw) in self.position:
            pos = self.position[int(raw)]
            offer(pos, 100.0, raw, fame_weight=1000.0)  # an exact id always comes first
        for e in self._exact.get(query, ()):
            offer(int(self._owner[e]), 100.0, self._display[e], fame_weight=6.0)

        compact = query.replace(" ", "")
        if 2 <= len(compact) <= 12 and " " not in query:
            for pos in self._short.get(compact, ())[: limit * 3]:
                offer(int(pos), 92.0, compact, fame_weight=6.0)
            if len(compact) >= 4:
                for form in self._near_short.near(compact) - {compact}:
                    score = 0.9 * fuzz.ratio(compact, form)
                    for pos in self._short[form][:limit]:
                        offer(int(pos), score, form, fame_weight=6.0)

    def _offer_fuzzy(self, query: str, limit: int, nsfw: bool, offer: Offer) -> None:
        """Whole-title fuzzy matches, then titles sharing the query's words."""
        entries, choices, lengths = self._whole[nsfw]
        # QRatio >= 60 needs the title's length within [3/7, 7/3] of the query's
        lo = bisect.bisect_left(lengths, math.floor(len(query) * 3 / 7))
        hi = bisect.bisect_right(lengths, math.ceil(len(query) * 7 / 3))
        for _, score, i in process.extract(
            query,
            choices[lo:hi],
            scorer=fuzz.QRatio,
            limit=limit * 3,
            score_cutoff=60,
        ):
            e = int(entries[lo + i])
            offer(int(self._owner[e]), score, self._display[e])

        for e in self._word_candidates(query):
            score = _candidate_score(query, self._texts[e])
            if score >= 50:
                offer(int(self._owner[e]), score, self._display[e])

    def _word_candidates(self, query: str, top: int = 150) -> np.ndarray:
        """Entries sharing (possibly misspelt or, for the last word, unfinished) words."""
        words = query.split()[:MAX_QUERY_WORDS]
        if not words or not self._texts:
            return np.empty(0, dtype=np.int64)
        acc = np.zeros(len(self._texts), dtype=np.float32)
        for i, word in enumerate(words):
            matched: dict[str, float] = {}
            if word in self._postings:
                matched[word] = 1.0
            if i == len(words) - 1 and len(word) >= 2:
                start = bisect.bisect_left(self._vocab, word)
                for w in self._vocab[start : start + 30]:
                    if not w.startswith(word):
                        break
                    matched.setdefault(w, 0.9)
            if word not in self._postings and len(word) >= 4:
                for w in self._near_words.near(word):
                    matched.setdefault(w, fuzz.ratio(word, w) / 100.0)
            if not matched:
                continue
            token = np.zeros_like(acc)
            for w, sim in matched.items():
                idx = self._postings[w]
                token[idx] = np.maximum(token[idx], sim * self._idf[w])  # no repeats in idx
            acc += token
        hits = np.flatnonzero(acc)
        if len(hits) > top:
            hits = hits[np.argpartition(-acc[hits], top)[:top]]
        return hits
