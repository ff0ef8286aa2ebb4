"""Reading the anime-offline-database files as a stream of entries, in bounded memory.

Two layouts: the minified document (``{"data": [entry, ...], ...}``, tens of MB) is walked by a
small incremental parser that decodes one array element at a time with
``json.JSONDecoder.raw_decode`` over a sliding buffer; the ``.jsonl`` file has a metadata line,
then one entry per line. Either may be gzip- (``.gz``) or zstd-compressed (``.zst``, when the
``zstandard`` module is installed). The decompressed size is capped, and so is one entry's.

The decoder refuses ``NaN``/``Infinity`` and numbers with more than 20 digits (``int()`` of a
5,000-digit number costs seconds); such an entry is reported as bad, never decoded.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

from storage.importers.errors import ImportFileError, ProgressFn

#: Largest decompressed file accepted (the real minified file is ~50 MB).
MAX_OFFLINE_BYTES = 1024 * 1024 * 1024
#: Largest single entry (real ones are a few kB).
MAX_ENTRY_CHARS = 1 << 20
_CHUNK = 1 << 16
_WS = " \t\r\n"


class EntryError(ValueError):
    """One entry cannot be decoded; the message says why."""


def _big_int(text: str) -> int:
    if len(text.lstrip("-")) > 20:
        raise EntryError(f"number {text[:20]}... is out of range")
    return int(text)


def _no_constant(text: str) -> Any:
    raise EntryError(f"{text} is not a number")


_DECODER = json.JSONDecoder(parse_int=_big_int, parse_constant=_no_constant)


def is_jsonl(path: Path) -> bool:
    return ".jsonl" in [s.lower() for s in path.suffixes]


def is_offline_db(path: Path) -> bool:
    """A file name of the anime-offline-database (``.json`` or ``.jsonl``, maybe compressed)."""
    suffixes = [s.lower() for s in path.suffixes]
    return ".json" in suffixes or ".jsonl" in suffixes


def open_text(path: Path) -> tuple[IO[bytes], IO[str]]:
    """(the raw file, its decompressed text); .zst needs the optional ``zstandard`` module."""
    if not path.is_file():
        raise ImportFileError(path, None, "no such file")
    suffix = path.suffix.lower()
    raw = path.open("rb")
    binary: IO[bytes] = raw
    if suffix == ".gz":
        binary = cast(IO[bytes], gzip.GzipFile(fileobj=raw))
    elif suffix == ".zst":
        try:
            import zstandard  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            raw.close()
            raise ImportFileError(
                path,
                None,
                "a .zst file needs the zstandard module (pip install zstandard), "
                "or decompress it first (zstd -d FILE)",
            ) from None
        binary = cast(IO[bytes], zstandard.ZstdDecompressor().stream_reader(raw))
    return raw, io.TextIOWrapper(binary, encoding="utf-8-sig")


class _Buffer:
    """A sliding window over the text: ``more()`` appends a chunk, ``drop()`` forgets the head."""

    def __init__(self, path: Path, text: IO[str], raw: IO[bytes], progress: ProgressFn | None):
        self.path, self._text, self._raw, self._progress = path, text, raw, progress
        self.buf, self.pos, self.eof, self.read = "", 0, False, 0
        self._total = path.stat().st_size
        self._last = 0

    def more(self) -> bool:
        if self.eof:
            return False
        try:
            chunk = self._text.read(_CHUNK)
        except UnicodeDecodeError as exc:
            raise ImportFileError(self.path, None, f"not UTF-8 text ({exc.reason})") from None
        except (OSError, EOFError, zlib.error) as exc:
            raise ImportFileError(self.path, None, f"cannot read the file ({exc})") from None
        except Exception as exc:  # a zstd frame error has its own class
            raise ImportFileError(self.path, None, f"cannot read the file ({exc})") from None
        if not chunk:
            self.eof = True
            if self._progress:
                self._progress(self._total, self._total)
            return False
        self.read += len(chunk)
        if self.read > MAX_OFFLINE_BYTES:
            raise ImportFileError(
                self.path, None, f"file is over the {MAX_OFFLINE_BYTES // 2**20} MB limit"
            )
        self.buf = self.buf[self.pos :] + chunk
        self.pos = 0
        done = self._raw.tell()
        if self._progress and done - self._last > 1 << 20:
            self._progress(done, self._total)
            self._last = done
        return True

    def skip_ws(self) -> str:
        """The next non-blank character (not consumed); '' at the end of the file."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _WS:
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.more():
                return ""

    def expect(self, chars: str, what: str) -> str:
        ch = self.skip_ws()
        if not ch or ch not in chars:
            found = repr(ch) if ch else "the end of the file"
            raise ImportFileError(self.path, None, f"expected {what}, found {found}")
        self.pos += 1
        return ch

    def value(self) -> Any:
        """Decode the JSON value at the cursor, reading more text until it is complete."""
        self.skip_ws()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if len(self.buf) - self.pos > MAX_ENTRY_CHARS:
                    raise EntryError(f"longer than {MAX_ENTRY_CHARS:,} characters") from None
                if self.more():
                    continue
                raise EntryError(f"malformed JSON ({exc.msg})") from None
            if end >= len(self.buf) and self.more():
                continue  # a number cut by the chunk boundary: decode it whole
            if end - self.pos > MAX_ENTRY_CHARS:
                raise EntryError(f"longer than {MAX_ENTRY_CHARS:,} characters")
            self.pos = end
            return value


def minified_entries(path: Path, progress: ProgressFn | None = None) -> Iterator[tuple[int, Any]]:
    """(position from 1, decoded entry) of every element of the document's ``data`` array."""
    raw, text = open_text(path)
    with raw, text:
        buf = _Buffer(path, text, raw, progress)
        buf.expect("{", "a JSON object ({)")
        seen_data = False
        while buf.skip_ws() != "}":
            try:
                key = buf.value()
            except EntryError as exc:
                raise ImportFileError(path, None, f"bad document: {exc}") from None
            if not isinstance(key, str):
                raise ImportFileError(path, None, "bad document: a key is not a string")
            buf.expect(":", "':' after a key")
            if key == "data":
                seen_data = True
                yield from _array(path, buf)
            else:
                try:
                    buf.value()
                except EntryError as exc:
                    raise ImportFileError(path, None, f"bad {key!r}: {exc}") from None
            if buf.expect(",}", "',' or '}'") == "}":
                break
        if not seen_data:
            raise ImportFileError(path, None, 'no "data" array: not an anime-offline-database file')


def _array(path: Path, buf: _Buffer) -> Iterator[tuple[int, Any]]:
    buf.expect("[", 'an array after "data"')
    number = 0
    if buf.skip_ws() == "]":
        buf.pos += 1
        return
    while True:
        number += 1
        try:
            entry = buf.value()
        except EntryError as exc:
            raise ImportFileError(path, None, str(exc), entry=f"entry {number}") from None
        yield number, entry
        if buf.expect(",]", "',' or ']' after an entry") == "]":
            return


def jsonl_entries(path: Path, progress: ProgressFn | None = None) -> Iterator[tuple[int, Any]]:
    """(line number, decoded entry) of every line after the metadata line."""
    raw, text = open_text(path)
    total = path.stat().st_size
    read = last = 0
    with raw, text:
        number = 0
        while True:
            try:
                line = text.readline(MAX_ENTRY_CHARS + 1)
            except UnicodeDecodeError as exc:
                raise ImportFileError(path, number + 1, f"not UTF-8 text ({exc.reason})") from None
            except Exception as exc:
                raise ImportFileError(path, None, f"cannot read the file ({exc})") from None
            if not line:
                break
            number += 1
            read += len(line)
            if read > MAX_OFFLINE_BYTES:
                raise ImportFileError(
                    path, None, f"file is over the {MAX_OFFLINE_BYTES // 2**20} MB limit"
                )
            if len(line) > MAX_ENTRY_CHARS:
                raise ImportFileError(path, number, f"longer than {MAX_ENTRY_CHARS:,} characters")
            if progress and raw.tell() - last > 1 << 20:
                last = raw.tell()
                progress(last, total)
            if number == 1 or not line.strip():
                continue  # the metadata line
            try:
                yield number, _DECODER.decode(line)
            except EntryError as exc:
                raise ImportFileError(path, number, str(exc)) from None
            except json.JSONDecodeError as exc:
                raise ImportFileError(path, number, f"malformed JSON ({exc.msg})") from None
    if progress:
        progress(total, total)
