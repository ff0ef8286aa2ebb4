"""Import title aliases from the public anime-offline-database JSON (manami-project).

The catalog's names are mostly romaji ("Shingeki no Kyojin"); that database adds English and
other titles as ``synonyms`` and links each entry to MyAnimeList through ``sources`` URLs such
as ``https://myanimelist.net/anime/16498``, which are our anime ids.

The file (about 40 MB) is read as a stream, one ``data[]`` entry at a time, under a size cap.
Both the pretty and the minified JSON work, and so does a JSON Lines file (a metadata object,
then one entry per line). Every entry is validated before anything is written; the aliases go
in with one transaction, so a bad file changes nothing.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from storage.importers import ImportFileError, ProgressFn
from storage.repository import Store

DEFAULT_MAX_ALIAS_BYTES = 256 * 1024 * 1024
MAX_ALIAS_CHARS = 200
ALIAS_SOURCE = "offline-db"
_CHUNK = 1 << 20
_MAL_URL = re.compile(r"^https?://(?:www\.)?myanimelist\.net/anime/(\d+)(?:[/?#].*)?$")


@dataclass
class AliasReport:
    """What an alias import did."""

    path: str
    entries: int = 0
    with_mal: int = 0
    without_mal: int = 0  # entries with no MyAnimeList source: nothing to attach them to
    without_mal_titles: list[str] = field(default_factory=list)
    unknown_anime: int = 0  # MyAnimeList ids that our catalog does not have
    aliases: int = 0  # distinct (alias, anime) pairs found for catalog anime
    skipped_scripts: int = 0  # synonyms in non-Latin scripts (kept only with all_scripts)
    written: int = 0
    unchanged: int = 0

    def summary(self) -> str:
        parts = [
            f"{self.entries:,} entries read",
            f"{self.with_mal:,} with a MyAnimeList id",
            f"{self.aliases:,} aliases for catalog anime",
            f"{self.written:,} written",
            f"{self.unchanged:,} already known",
        ]
        if self.unknown_anime:
            parts.append(f"{self.unknown_anime:,} MyAnimeList ids not in the catalog")
        if self.without_mal:
            sample = ", ".join(repr(t) for t in self.without_mal_titles[:3])
            parts.append(
                f"{self.without_mal:,} entries without a MyAnimeList source (e.g. {sample})"
            )
        if self.skipped_scripts:
            parts.append(f"{self.skipped_scripts:,} non-Latin synonyms skipped")
        return f"aliases {self.path}: " + "; ".join(parts)


def mal_id(url: str) -> int | None:
    """The MyAnimeList anime id in a source URL, or None for other sites."""
    match = _MAL_URL.match(url.strip())
    return int(match.group(1)) if match else None


def is_latin(text: str) -> bool:
    """True when the letters of ``text`` are (accented) Latin: the ones people type in search."""
    letters = [c for c in unicodedata.normalize("NFKD", text) if c.isalpha()]
    return bool(letters) and sum(c.isascii() for c in letters) >= 0.8 * len(letters)


class _JsonStream:
    """Decodes JSON values one at a time from a text stream, reading it in chunks."""

    def __init__(
        self, fh: IO[str], path: Path, max_bytes: int, progress: ProgressFn | None, total: int
    ) -> None:
        self._fh, self._path, self._max = fh, path, max_bytes
        self._progress, self._total = progress, total
        self._buf, self._pos, self._eof = "", 0, False
        self._read_chars = 0
        self._line_base = 1
        self._decoder = json.JSONDecoder()

    @property
    def line(self) -> int:
        return self._line_base + self._buf.count("\n", 0, self._pos)

    def error(self, problem: str) -> ImportFileError:
        return ImportFileError(self._path, self.line, problem)

    def _more(self) -> bool:
        if self._eof:
            return False
        chunk = self._fh.read(_CHUNK)
        if not chunk:
            self._eof = True
            return False
        self._read_chars += len(chunk)
        if self._read_chars > self._max:
            raise ImportFileError(
                self._path,
                None,
                f"file is over the {self._max / 1e6:.0f} MB limit for alias imports",
            )
        self._line_base += self._buf.count("\n", 0, self._pos)
        self._buf = self._buf[self._pos :] + chunk
        self._pos = 0
        if self._progress:
            self._progress(min(self._read_chars, self._total), self._total)
        return True

    def peek(self) -> str:
        """The next non-blank character ('' at the end of the file)."""
        while True:
            while self._pos < len(self._buf) and self._buf[self._pos] in " \t\r\n":
                self._pos += 1
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._more():
                return ""

    def take(self, expected: str) -> None:
        found = self.peek()
        if found != expected:
            shown = repr(found) if found else "the end of the file"
            raise self.error(
                f"malformed JSON: expected {expected!r}, found {shown} "
                "(truncated or not an anime-offline-database file?)"
            )
        self._pos += 1

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                obj, end = self._decoder.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                if self._more():
                    continue
                raise self.error(f"malformed JSON ({exc.msg})") from None
            if end >= len(self._buf) and not self._eof and self._more():
                continue  # a number or literal may go on in the next chunk
            self._pos = end
            return obj


def iter_entries(
    fh: IO[str],
    path: Path,
    max_bytes: int = DEFAULT_MAX_ALIAS_BYTES,
    progress: ProgressFn | None = None,
    total: int = 0,
) -> Iterator[tuple[int, Any]]:
    """Yield (line, entry) for every ``data[]`` entry of the stream."""
    stream = _JsonStream(fh, path, max_bytes, progress, total)
    first = stream.peek()
    if first == "[":  # a bare array of entries
        yield from _array(stream)
    elif first == "{":
        stream.take("{")
        saw_data = False
        if stream.peek() != "}":
            while True:
                key = stream.value()
                if not isinstance(key, str):
                    raise stream.error("malformed JSON: object keys must be strings")
                stream.take(":")
                if key == "data":
                    saw_data = True
                    yield from _array(stream)
                else:
                    stream.value()
                if stream.peek() == ",":
                    stream.take(",")
                    continue
                break
        stream.take("}")
        while stream.peek() == "{":  # JSON Lines: entries after the metadata line
            saw_data = True
            line = stream.line
            yield line, stream.value()
        if not saw_data:
            raise stream.error('no "data" array: not an anime-offline-database file')
    else:
        raise stream.error("not a JSON file (expected '{' or '[' at the start)")
    if stream.peek():
        raise stream.error("unexpected text after the end of the JSON data")


def _array(stream: _JsonStream) -> Iterator[tuple[int, Any]]:
    stream.take("[")
    if stream.peek() == "]":
        stream.take("]")
        return
    while True:
        stream.peek()  # skip blanks so that the line is the entry's own
        line = stream.line
        yield line, stream.value()
        if stream.peek() == ",":
            stream.take(",")
            continue
        stream.take("]")
        return


def _strings(entry: dict[str, Any], key: str, path: Path, line: int, index: int) -> list[str]:
    values = entry.get(key, [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ImportFileError(path, line, f"entry {index}: {key!r} must be a list of strings")
    return values


def _entry_fields(
    entry: Any, path: Path, line: int, index: int
) -> tuple[str, list[str], list[str]]:
    """(title, sources, synonyms) of one entry, or the error that names what is wrong."""
    if not isinstance(entry, dict):
        raise ImportFileError(path, line, f"entry {index} is not a JSON object")
    title = entry.get("title")
    if not isinstance(title, str) or not title.strip():
        raise ImportFileError(path, line, f'entry {index} has no "title" string')
    return (
        title,
        _strings(entry, "sources", path, line, index),
        _strings(entry, "synonyms", path, line, index),
    )


def _usable(
    own_title: str, names: Iterable[str], all_scripts: bool, report: AliasReport
) -> Iterator[str]:
    """The names worth keeping as aliases of an anime titled ``own_title`` (whitespace tidied;
    not empty, not too long, not the title itself; Latin script unless ``all_scripts``)."""
    own = own_title.casefold()
    for name in names:
        alias = " ".join(name.split())
        if not alias or len(alias) > MAX_ALIAS_CHARS or alias.casefold() == own:
            continue
        if not all_scripts and not is_latin(alias):
            report.skipped_scripts += 1
            continue
        yield alias


def parse_aliases(
    path: str | Path,
    catalog_ids: set[int],
    progress: ProgressFn | None = None,
    max_bytes: int = DEFAULT_MAX_ALIAS_BYTES,
    all_scripts: bool = False,
    titles: dict[int, str] | None = None,
) -> tuple[list[tuple[str, int]], AliasReport]:
    """Read the file into (alias, anime_id) pairs for catalog anime, and a report.

    ``titles`` (anime id -> catalog title) lets aliases equal to the catalog title be skipped.
    """
    path = Path(path)
    if not path.is_file():
        raise ImportFileError(path, None, "no such file")
    size = path.stat().st_size
    if size > max_bytes:
        raise ImportFileError(
            path,
            None,
            f"file is {size / 1e6:.1f} MB, over the "
            f"{max_bytes / 1e6:.0f} MB limit for alias imports",
        )
    report = AliasReport(str(path))
    titles = titles or {}
    pairs: dict[tuple[str, int], None] = {}
    unknown: set[int] = set()
    with path.open("r", encoding="utf-8-sig", newline="") as fh:
        try:
            for index, (line, entry) in enumerate(
                iter_entries(fh, path, max_bytes, progress, size), start=1
            ):
                title, sources, synonyms = _entry_fields(entry, path, line, index)
                report.entries += 1
                ids = sorted({i for i in map(mal_id, sources) if i is not None})
                if not ids:
                    report.without_mal += 1
                    if len(report.without_mal_titles) < 5:
                        report.without_mal_titles.append(title.strip())
                    continue
                report.with_mal += 1
                for anime_id in ids:
                    if anime_id not in catalog_ids:
                        unknown.add(anime_id)
                        continue
                    own = titles.get(anime_id, "")
                    for alias in _usable(own, (title, *synonyms), all_scripts, report):
                        pairs[(alias, anime_id)] = None
        except UnicodeDecodeError as exc:
            raise ImportFileError(path, None, f"not UTF-8 text ({exc.reason})") from None
    report.unknown_anime = len(unknown)
    report.aliases = len(pairs)
    return list(pairs), report


def import_aliases(
    store: Store,
    path: str | Path,
    progress: ProgressFn | None = None,
    max_bytes: int = DEFAULT_MAX_ALIAS_BYTES,
    all_scripts: bool = False,
) -> AliasReport:
    """Import aliases for the anime in the catalog, all or nothing; re-importing changes nothing."""
    catalog = store.catalog.all()
    if not catalog:
        raise ImportFileError(path, None, "the catalog is empty: import the catalog first")
    titles = {a.anime_id: a.title for a in catalog}
    pairs, report = parse_aliases(path, set(titles), progress, max_bytes, all_scripts, titles)
    report.written = store.write_batch(
        lambda conn: store.catalog.add_aliases(pairs, ALIAS_SOURCE, conn)
    )
    report.unchanged = len(pairs) - report.written
    return report
