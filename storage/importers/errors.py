"""What an import reports: the typed error a person reads, and the summary of a good import."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

#: Called with (bytes read so far, total bytes) as an import streams through its file.
ProgressFn = Callable[[int, int], None]

# Escape sequences first (so their parameters go too), then any other control character.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def strip_controls(text: str) -> str:
    """``text`` without terminal escape sequences or control characters (newlines and tabs stay).

    A file name or a cell of an uploaded file is hostile text: an error or a report must not
    carry what could drive a terminal, whoever shows it. (Storage cannot import the bot's
    ``bot.text_safety.printable``, which every front end applies again when it shows text.)
    """
    return _ESCAPES.sub("", text)


class ImportFileError(Exception):
    """A file that cannot be imported; the message names the file, the place and the problem.

    ``line`` is a line number in a text file; ``entry`` names an element of a structured file
    (a list export's entry: its position, id and title). ``str()`` is one line for a person.
    """

    def __init__(
        self, path: str | Path, line: int | None, problem: str, entry: str | None = None
    ) -> None:
        where = strip_controls(str(path)).replace("\n", " ")
        if line:
            where += f", line {line}"
        if entry:
            where += f", {strip_controls(entry)}"
        super().__init__(f"{where}: {strip_controls(problem)}")
        self.path, self.line, self.problem, self.entry = str(path), line, problem, entry


@dataclass
class ImportReport:
    """What an import did. ``unknown_anime`` rows were not written (only with skip_unknown)."""

    path: str
    kind: str
    rows: int = 0
    written: int = 0
    unchanged: int = 0
    scored: int = 0
    users: int = 0
    unknown_anime: int = 0
    unknown_anime_ids: list[int] = field(default_factory=list)
    duplicates: int = 0

    def note_unknown(self, anime_id: int) -> None:
        """Count a row for an anime missing from the catalog, keeping a few ids as examples."""
        self.unknown_anime += 1
        if len(self.unknown_anime_ids) < 20:
            self.unknown_anime_ids.append(anime_id)

    def summary(self) -> str:
        parts = [
            f"{self.rows:,} rows read",
            f"{self.written:,} written",
            f"{self.unchanged:,} unchanged",
        ]
        if self.users:
            parts.append(f"{self.users:,} users")
        if self.duplicates:
            parts.append(f"{self.duplicates:,} exact duplicate rows merged")
        if self.unknown_anime:
            sample = ", ".join(str(i) for i in self.unknown_anime_ids[:5])
            parts.append(
                f"{self.unknown_anime:,} rows for anime not in the catalog skipped (e.g. {sample})"
            )
        return strip_controls(f"{self.kind} {self.path}: " + "; ".join(parts))
