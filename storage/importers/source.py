"""Reading an import's file: plain or gzip-compressed CSV, streamed, with strict number parsing.

Numbers are parsed by pattern, not by ``int()``/``float()`` alone: those accept ``nan``,
``inf``, ``1e309``, ``1_000`` and non-ASCII digits, and a 5,000-digit id costs them seconds.
Every value is also checked against the range the database and the model can hold, so that a
bad cell is reported with its file, line and column instead of as a raw SQLite or overflow error.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zlib
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import IO, cast

from storage.importers.errors import ImportFileError, ProgressFn

#: Largest id accepted for an anime (MyAnimeList ids are below 100,000; int32 for the model).
MAX_ID = 2**31 - 1
#: Largest count (episodes, members) accepted: far above any real one, far below SQLite's limit.
MAX_COUNT = 10**12

_INT = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def _shown(text: str) -> str:
    return repr(text if len(text) <= 24 else text[:20] + "...")


def parse_int(text: str, column: str, low: int, high: int) -> int:
    """``text`` as a whole number in ``[low, high]``; ValueError with a readable message if not."""
    text = text.strip()
    if not _INT.fullmatch(text):
        raise ValueError(f"{column} must be a whole number, got {_shown(text)}")
    if len(text.lstrip("+-0")) > 20:
        raise ValueError(f"{column} {_shown(text)} is out of range ({low} to {high})")
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{column} {value} is out of range ({low} to {high})")
    return value


def parse_decimal(text: str, column: str, low: float, high: float) -> float:
    """``text`` as a plain decimal in ``[low, high]`` (no exponent, nan or infinity)."""
    text = text.strip()
    if not _DECIMAL.fullmatch(text) or len(text) > 40:
        raise ValueError(f"{column} must be a number like 8.25, got {_shown(text)}")
    value = float(text)
    if not low <= value <= high:
        raise ValueError(f"{column} {text} is out of range ({low:g} to {high:g})")
    return value


class _LineReader:
    """Decoded lines of an import file, reporting bytes consumed and enforcing the size cap.

    The cap applies to the decompressed text as well, so a small gzip bomb is refused too.
    """

    def __init__(
        self, path: Path, raw: IO[bytes], total: int, max_bytes: int, progress: ProgressFn | None
    ) -> None:
        self._path, self._raw, self._total = path, raw, total
        self._max, self._progress = max_bytes, progress
        binary: IO[bytes] = cast(IO[bytes], gzip.GzipFile(fileobj=raw)) if is_gzip(path) else raw
        self._text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")

    def __iter__(self) -> Iterator[str]:
        last = read = 0
        # Lines come in blocks of about 64 KiB: the size cap and progress are checked once
        # per block, not once per line (the file's own tell() per line cost more than csv).
        for block in iter(lambda: self._text.readlines(1 << 16), []):
            read += sum(map(len, block))
            if read > self._max:
                raise ImportFileError(self._path, None, _too_big(read, self._max, "decompressed"))
            yield from block
            done = self._raw.tell()
            if self._progress and done - last > 1 << 20:
                self._progress(done, self._total)
                last = done
        if self._progress:
            self._progress(self._total, self._total)


def is_gzip(path: Path) -> bool:
    return path.suffix.lower() == ".gz"


def _too_big(size: int, limit: int, what: str = "") -> str:
    what = f" {what}" if what else ""
    return f"file is {size / 1e6:.1f} MB{what}, over the {limit / 1e6:.0f} MB limit"


class CsvSource:
    """An open CSV import file: ``rows()`` yields (line number, fields); closes on exit."""

    def __init__(self, path: Path, max_bytes: int, progress: ProgressFn | None = None) -> None:
        if not path.is_file():
            raise ImportFileError(path, None, "no such file")
        size = path.stat().st_size
        if size > max_bytes:
            raise ImportFileError(path, None, _too_big(size, max_bytes) + " for this import")
        self.path = path
        self._raw = path.open("rb")
        self._reader = csv.reader(_LineReader(path, self._raw, size, max_bytes, progress))

    def __enter__(self) -> CsvSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self._raw.close()

    def header(self) -> list[str]:
        """The first row, stripped; an empty file is an error."""
        try:
            return [h.strip() for h in next(self._read())]
        except StopIteration:
            raise ImportFileError(self.path, 1, "the file is empty") from None

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """(line number, fields) of every non-empty row after the header."""
        for row in self._read():
            if row:
                yield self._reader.line_num, row

    def chunks(self, size: int) -> Iterator[tuple[list[int], list[list[str]]]]:
        """(line numbers, fields) of the non-empty rows after the header, read ``size`` rows at
        a time: :meth:`rows` without a tuple and a generator step per row."""
        reader, rows = self._reader, self._read()
        while True:
            lines: list[int] = []
            fields: list[list[str]] = []
            taken = 0
            for taken, row in enumerate(islice(rows, size), start=1):  # noqa: B007
                if row:
                    lines.append(reader.line_num)
                    fields.append(row)
            if fields:
                yield lines, fields
            if taken < size:
                return

    def _read(self) -> Iterator[list[str]]:
        try:
            yield from self._reader
        except csv.Error as exc:
            raise ImportFileError(
                self.path, self._reader.line_num, f"malformed CSV ({exc})"
            ) from None
        except UnicodeDecodeError as exc:
            raise bad_utf8(self.path, exc) from None
        except (OSError, EOFError, zlib.error) as exc:
            raise ImportFileError(self.path, None, f"cannot read the file ({exc})") from None


def bad_utf8(path: Path, exc: UnicodeDecodeError) -> ImportFileError:
    """Name the first line that is not UTF-8 (the decoder reads ahead, so find it ourselves)."""
    opener = gzip.open if is_gzip(path) else open
    with opener(path, "rb") as raw:
        for number, line in enumerate(raw, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return ImportFileError(path, number, f"not UTF-8 text ({exc.reason})")
    return ImportFileError(path, None, f"not UTF-8 text ({exc.reason})")


def check_fields(path: Path, line: int, row: list[str], width: int) -> None:
    if len(row) != width:
        raise ImportFileError(
            path,
            line,
            f"expected {width} fields, found {len(row)} (truncated or malformed line)",
        )
