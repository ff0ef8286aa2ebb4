"""Batch picks for offline use: `anirec recommend --ratings FILE.csv`.

Each user of a ratings file (people the model never saw) is folded in from their rows alone and
ranked through :meth:`Recommender.recommend_for`, the chat's own ranking path; nothing is read
from or written to the users' tables. The file is streamed twice: a first pass validates every
row (so a bad line stops the run before any output), the second ranks one user at a time, so
memory holds one user's rows plus the set of user ids seen. That is why a user's rows must be
consecutive (grouped by user, in any order of users).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bot.cli.common import say
from recommender.types import Filters, Pick
from storage.importers import ImportFileError, rating_rows
from storage.importers.errors import strip_controls
from storage.importers.source import parse_int
from storage.rows import Rating

if TYPE_CHECKING:  # the model stack (torch) loads only for commands that rank
    from recommender import Recommender

#: Biggest ratings file read (streamed, so only a guard against a wrong path).
MAX_RATINGS_BYTES = 64 * 2**30
#: Biggest candidates file read (its ids are held in memory).
MAX_CANDIDATE_BYTES = 64 * 2**20


class BatchInputError(Exception):
    """A ratings or candidates file that cannot be used; the message names the line."""


@dataclass
class BatchReport:
    """What a run read, for the summary line on stderr."""

    users: int = 0
    rows: int = 0


def _bad(path: Path, line: int | None, problem: str) -> BatchInputError:
    where = strip_controls(str(path)).replace("\n", " ")
    if line:
        return BatchInputError(f"bad row: line {line} of {where}: {strip_controls(problem)}")
    return BatchInputError(f"{where}: {strip_controls(problem)}")


def users_in(path: Path, report: BatchReport | None = None) -> Iterator[tuple[str, list[Rating]]]:
    """(user id, their list in file order) for each user of ``path``, one user at a time.

    Raises :class:`BatchInputError` naming the line of the first bad row, of a user whose rows
    are not consecutive, or of an anime listed twice for one user with different values (an
    exact repeat is ignored).
    """
    report = report or BatchReport()
    seen: set[str] = set()
    user: str | None = None
    rows: dict[int, Rating] = {}
    try:
        for line, who, anime_id, score, status in rating_rows(
            path, MAX_RATINGS_BYTES, empty_unscored=True
        ):
            report.rows += 1
            if who != user:
                if user is not None:
                    report.users += 1
                    yield user, list(rows.values())
                if who in seen:
                    raise _bad(
                        path,
                        line,
                        f"user {who} appeared before on an earlier line: "
                        "the file must be grouped by user (sort it by user_id)",
                    )
                seen.add(who)
                user, rows = who, {}
            rating = Rating(anime_id, score, status, "file", "")
            known = rows.setdefault(anime_id, rating)
            if known != rating:
                raise _bad(path, line, f"user {who} lists anime {anime_id} twice, differently")
    except ImportFileError as exc:
        raise _bad(path, exc.line, exc.problem) from None
    if user is not None:
        report.users += 1
        yield user, list(rows.values())


def read_candidates(path: Path, catalog: Collection[int]) -> set[int]:
    """The anime ids of ``path`` (one per line, blank lines skipped); an id missing from the
    catalog, or anything but an id, is an error naming its line."""
    if not path.is_file():
        raise _bad(path, None, "no such file")
    if path.stat().st_size > MAX_CANDIDATE_BYTES:
        raise _bad(path, None, f"over the {MAX_CANDIDATE_BYTES // 2**20} MB limit")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise _bad(path, None, f"not UTF-8 text ({exc.reason})") from None
    ids: set[int] = set()
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            anime_id = parse_int(text, "anime_id", 1, 2**31 - 1)
        except ValueError as exc:
            raise _bad(path, number, str(exc)) from None
        if anime_id not in catalog:
            raise _bad(path, number, f"anime_id {anime_id} is not in the catalog")
        ids.add(anime_id)
    return ids


def picks_line(user: str, picks: list[Pick]) -> str:
    """One JSON line: the user, their picks best first, and each pick's predicted 1-10 score."""
    return json.dumps(
        {
            "user_id": user,
            "picks": [p.anime.anime_id for p in picks],
            "predicted": {str(p.anime.anime_id): p.predicted_score for p in picks},
        }
    )


def run_batch(
    rec: Recommender,
    ratings: Path,
    k: int,
    filters: Filters,
    candidates: set[int] | None,
    as_json: bool,
) -> BatchReport:
    """Validate ``ratings`` whole, then print each user's picks (JSON lines or a table)."""
    for _ in users_in(ratings):
        pass  # a bad line anywhere stops the run before the first output
    report = BatchReport()
    for user, rows in users_in(ratings, report):
        picks = rec.recommend_for(rows, k, filters, candidates)
        if as_json:
            sys.stdout.write(picks_line(user, picks) + "\n")
            continue
        say(f"user {user} ({len(rows)} on their list):")
        for n, p in enumerate(picks, start=1):
            say(
                f"{n:>4}. {p.anime.title} [{p.anime.type or '?'}] predicted {p.predicted_score:.2f}"
            )
    sys.stdout.flush()
    return report
