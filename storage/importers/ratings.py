"""The data-set ratings importer: three CSV layouts (plain or ``.gz``), streamed through staging.

Rows are validated one at a time and staged in a temporary table (see :mod:`storage.staging`),
so memory stays bounded whatever the file's size; duplicates and clashes are found there, and
the rows reach the real tables in one publish step, all or nothing.
"""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storage.importers import ratings_publish
from storage.importers.catalog import DEFAULT_MAX_CSV_BYTES
from storage.importers.errors import ImportFileError, ImportReport, ProgressFn
from storage.importers.source import MAX_ID, CsvSource, check_fields, parse_int
from storage.repository import Store
from storage.staging import Staging

# The origin notebooks' numeric MyAnimeList statuses.
NUMERIC_STATUS = {1: "watching", 2: "completed", 3: "on_hold", 4: "dropped", 6: "plan_to_watch"}
MAX_USER_ID_CHARS = 64
#: Up to this many staged rows publish in one transaction (atomic to readers too: about 2 s
#: for the 453k-row data set); bigger files publish in chunks of PUBLISH_CHUNK_ROWS rows (about
#: half a second of write lock each, a 150 ms pause between them) so that no chat write waits
#: behind the import for more than about a second.
ONE_STEP_ROWS = 600_000
PUBLISH_CHUNK_ROWS = 600_000
#: Rows read, validated and staged together (bounds the memory the import holds).
PARSE_CHUNK_ROWS = 20_000
#: Longest anime id cell the column-wise path converts (longer ones take the careful path).
_MAX_ID_DIGITS = len(str(MAX_ID))
#: A validated row as staged: (user, anime_id, score, status, line).
StagedRow = tuple[str, int, int | None, str | None, int]
#: The same rows as columns: users, anime ids, scores, statuses, lines.
Columns = tuple[list[str], list[int], list[int | None], list[str | None], list[int]]


@dataclass(frozen=True)
class _RatingsFormat:
    name: str
    score_column: str
    unscored: int  # the value that means "on the list, not scored"
    status_column: str | None = None


RATINGS_FORMATS = (
    _RatingsFormat("user_id,anime_id,status,score,num_episodes_watched", "score", 0, "status"),
    _RatingsFormat("user_id,anime_id,score", "score", 0),
    _RatingsFormat("user_id,anime_id,rating", "rating", -1),
)


def _detect_format(header: list[str], path: Path) -> _RatingsFormat:
    names = set(header)
    for fmt in RATINGS_FORMATS:
        if set(fmt.name.split(",")) <= names:
            return fmt
    raise ImportFileError(
        path,
        1,
        f"bad header {','.join(header)!r}; expected one of: "
        + " | ".join(f.name for f in RATINGS_FORMATS),
    )


class _RowParser:
    """Turns one CSV row of a known layout into (user, anime_id, score, status)."""

    def __init__(self, header: list[str], fmt: _RatingsFormat, empty_unscored: bool) -> None:
        self.fmt = fmt
        self.empty_unscored = empty_unscored
        self.user = header.index("user_id")
        self.anime = header.index("anime_id")
        self.score = header.index(fmt.score_column)
        self.status = header.index(fmt.status_column) if fmt.status_column else None
        self.width = len(header)
        # Exact cell texts the careful parser reads as these values (anything else: careful).
        self.score_cells: dict[str, int | None] = {str(s): s for s in range(1, 11)}
        self.score_cells[str(fmt.unscored)] = None
        if empty_unscored:
            self.score_cells[""] = None
        self.status_cells = {str(code): name for code, name in NUMERIC_STATUS.items()}

    def chunk(self, lines: list[int], rows: list[list[str]]) -> Columns | None:
        """The rows of ``chunk`` converted column by column, or None when some cell is not in
        the plain form (digits; the exact score and status codes) or out of range: that chunk
        then takes the careful path, which names the bad line."""
        if set(map(len, rows)) != {self.width}:
            return None
        cols = list(zip(*rows, strict=True))
        users = list(map(str.strip, cols[self.user]))
        if not all(users) or max(map(len, users)) > MAX_USER_ID_CHARS:
            return None
        cells = cols[self.anime]
        digits = "".join(cells)
        if not (digits.isascii() and digits.isdigit()):
            return None
        if min(map(len, cells)) == 0 or max(map(len, cells)) > _MAX_ID_DIGITS:
            return None
        anime = list(map(int, cells))
        if min(anime) < 1 or max(anime) > MAX_ID:
            return None
        try:
            scores = list(map(self.score_cells.__getitem__, cols[self.score]))
            statuses: list[str | None] = (
                [None] * len(rows)
                if self.status is None
                else list(map(self.status_cells.__getitem__, cols[self.status]))
            )
        except KeyError:
            return None
        return users, anime, scores, statuses, lines

    def __call__(self, row: list[str]) -> tuple[str, int, int | None, str | None]:
        user = row[self.user].strip()
        if not user:
            raise ValueError("empty user_id")
        if len(user) > MAX_USER_ID_CHARS:
            raise ValueError(f"user_id is longer than {MAX_USER_ID_CHARS} characters")
        anime_id = parse_int(row[self.anime], "anime_id", 1, MAX_ID)
        column, unscored = self.fmt.score_column, self.fmt.unscored
        try:
            if self.empty_unscored and not row[self.score].strip():
                raw_score = unscored
            else:
                raw_score = parse_int(row[self.score], column, -1_000, 1_000)
        except ValueError as exc:
            if "out of range" not in str(exc):
                raise
            raw_score = 1_001
        if raw_score == unscored:
            score = None
        elif 1 <= raw_score <= 10:
            score = raw_score
        else:
            raise ValueError(
                f"{column} {row[self.score].strip()[:20]} is out of range "
                f"(1-10, or {unscored} for unscored)"
            )
        status = None
        if self.status is not None:
            code = parse_int(row[self.status], "status", 0, 99)
            if code not in NUMERIC_STATUS:
                raise ValueError(f"unknown status code {code}")
            status = NUMERIC_STATUS[code]
        return user, anime_id, score, status


# Users are keyed by a number per file (in order of first appearance), so staged rows arrive in
# key order (appends to the B-tree) and publish in the order of the users' ids.
_STAGE_USERS = "CREATE TEMP TABLE stage_users (num INTEGER PRIMARY KEY, user TEXT NOT NULL)"
_STAGE = """
CREATE TEMP TABLE stage_ratings (
    num INTEGER NOT NULL, anime_id INTEGER NOT NULL, score INTEGER, status TEXT, line INTEGER,
    clash INTEGER, PRIMARY KEY (num, anime_id)
) WITHOUT ROWID"""
# Rows are staged several per statement (Staging.load_values). An exact duplicate is dropped
# (counted later); a second row with other values records its line as a clash.
_LOAD_INTO = "INSERT INTO stage_ratings (num, anime_id, score, status, line)"
_LOAD_WIDTH = 5
_LOAD_CONFLICT = """
ON CONFLICT (num, anime_id) DO UPDATE SET clash = COALESCE(
    clash, CASE WHEN (score, status) IS NOT (excluded.score, excluded.status) THEN excluded.line END
)"""
_LOAD_USERS = "INSERT INTO stage_users (num, user) VALUES (?, ?)"
_STAGE_ANIME = "CREATE TEMP TABLE stage_anime (anime_id INTEGER PRIMARY KEY)"
_LOAD_ANIME = "INSERT INTO stage_anime (anime_id) VALUES (?)"


class _UserNumbers:
    """Numbers users in order of first appearance; ``new`` holds those not yet staged, and
    ``anime`` every anime id seen (checked against the catalog at publish)."""

    def __init__(self) -> None:
        self.nums: dict[str, int] = {}
        self.new: list[tuple[int, str]] = []
        self.anime: set[int] = set()

    def __call__(self, users: list[str]) -> list[int]:
        nums = self.nums
        for user in dict.fromkeys(users):
            if user not in nums:
                nums[user] = len(nums) + 1
                self.new.append((nums[user], user))
        return list(map(nums.__getitem__, users))


def _numbered(chunks: Iterable[Columns], numbers: _UserNumbers) -> Iterator[list[Any]]:
    """Each chunk's rows as staged, flat: user number, anime_id, score, status, line, then
    the next row's (built column by column, with no tuple per row)."""
    for users, anime, scores, statuses, lines in chunks:
        numbers.anime.update(anime)
        flat: list[Any] = [None] * (_LOAD_WIDTH * len(lines))
        flat[0::_LOAD_WIDTH] = numbers(users)
        flat[1::_LOAD_WIDTH] = anime
        flat[2::_LOAD_WIDTH] = scores
        flat[3::_LOAD_WIDTH] = statuses
        flat[4::_LOAD_WIDTH] = lines
        yield flat


def _staged_chunks(
    path: Path,
    report: ImportReport,
    known: set[int],
    skip_unknown: bool,
    progress: ProgressFn | None,
    max_bytes: int,
) -> Iterator[Columns]:
    """Columns of validated rows, in file order; the first bad row raises, naming its line.
    Rows are read ``PARSE_CHUNK_ROWS`` at a time: a chunk of plain cells is converted
    column-wise (:meth:`_RowParser.chunk`), any other chunk row by row by the same rules, so
    the two paths accept exactly the same files."""
    with CsvSource(path, max_bytes, progress) as source:
        header = source.header()
        parse = _RowParser(header, _detect_format(header, path), False)
        for lines, chunk in source.chunks(PARSE_CHUNK_ROWS):
            report.rows += len(lines)
            fast = parse.chunk(lines, chunk)
            if fast is not None and known.issuperset(fast[1]):
                yield fast
                continue
            # Row by row (parse, then catalog check), so that the first bad line is named.
            numbered = zip(lines, chunk, strict=True)
            rows: Iterable[StagedRow] = (
                zip(*fast, strict=True) if fast else (_checked(path, parse, *r) for r in numbered)
            )
            kept = _known_only(path, rows, report, known, skip_unknown)
            if kept:
                users, anime, scores, statuses, lines = map(list, zip(*kept, strict=True))
                yield users, anime, scores, statuses, lines


def _checked(path: Path, parse: _RowParser, line: int, row: list[str]) -> StagedRow:
    """One row through the careful parser: its values, or the error naming its line."""
    check_fields(path, line, row, parse.width)
    try:
        user, anime_id, score, status = parse(row)
    except ValueError as exc:
        raise ImportFileError(path, line, str(exc)) from None
    return user, anime_id, score, status, line


def _known_only(
    path: Path,
    rows: Iterable[StagedRow],
    report: ImportReport,
    known: set[int],
    skip_unknown: bool,
) -> list[StagedRow]:
    """``rows`` without those whose anime is not in the catalog (counted), or the error for the
    first of them (rows are checked in order, so an earlier bad line is named first)."""
    kept = []
    for row in rows:
        if row[1] in known:
            kept.append(row)
        elif not skip_unknown:
            raise ImportFileError(
                path,
                row[4],
                f"anime_id {row[1]} is not in the catalog (use --skip-unknown to skip such rows)",
            )
        else:
            report.note_unknown(row[1])
    return kept


def rating_rows(
    path: Path,
    max_bytes: int = DEFAULT_MAX_CSV_BYTES,
    progress: ProgressFn | None = None,
    *,
    empty_unscored: bool = False,
) -> Iterator[tuple[int, str, int, int | None, str | None]]:
    """(line, user, anime_id, score, status) of each row of a ratings file in any of
    ``RATINGS_FORMATS``, streamed and validated one at a time; the first bad row raises
    :class:`ImportFileError` naming its line. Anime ids are not checked against the catalog.
    ``empty_unscored``: an empty score cell means "unscored", like the format's own marker.
    """
    with CsvSource(path, max_bytes, progress) as source:
        header = source.header()
        parse = _RowParser(header, _detect_format(header, path), empty_unscored)
        for line, row in source.rows():
            user, anime_id, score, status, _ = _checked(path, parse, line, row)
            yield line, user, anime_id, score, status


def import_ratings(
    store: Store,
    path: str | Path,
    progress: ProgressFn | None = None,
    skip_unknown: bool = False,
    max_bytes: int = DEFAULT_MAX_CSV_BYTES,
) -> ImportReport:
    """Import a data-set rating file into the data-set user namespace, all or nothing.

    Rows for anime missing from the catalog are an error unless ``skip_unknown``, in which case
    they are counted and reported, never written.
    """
    path = Path(path)
    if not path.is_file():
        raise ImportFileError(path, None, "no such file")
    known = store.catalog.ids()
    if not known:
        raise ImportFileError(path, None, "the catalog is empty: import the catalog first")
    report = ImportReport(str(path), "ratings")
    with Staging(store.path) as staging:
        staging.create(_STAGE_USERS)
        staging.create(_STAGE)
        numbers = _UserNumbers()
        chunks = _staged_chunks(path, report, known, skip_unknown, progress, max_bytes)
        with _cyclic_gc_paused():
            staging.load_values(_LOAD_INTO, _LOAD_WIDTH, _LOAD_CONFLICT, _numbered(chunks, numbers))
        staging.load(_LOAD_USERS, numbers.new)
        staging.create(_STAGE_ANIME)
        staging.load(_LOAD_ANIME, ((a,) for a in sorted(numbers.anime)))
        per_user = staging.query(
            "SELECT num, COUNT(*), COUNT(score) FROM stage_ratings GROUP BY num ORDER BY num"
        )
        staged = sum(rows for _, rows, _ in per_user)
        report.duplicates = report.rows - report.unknown_anime - staged
        if report.duplicates:  # only a repeated pair can clash
            _refuse_clash(staging, path)
        report.users, report.scored = len(per_user), sum(scored for *_, scored in per_user)
        step = PUBLISH_CHUNK_ROWS if staged > ONE_STEP_ROWS else staged
        try:
            bounds = ratings_publish.user_ranges(per_user, step)
            # The catalog is checked once per chunk instead of once per row (and the users'
            # ids come from the same transaction): a quarter of the publish's time.
            staging.conn.execute("PRAGMA foreign_keys = OFF")
            rebuild = ratings_publish.rebuilds_index(staging, staged)
            publish, finish = ratings_publish.publisher(bounds, rebuild)
            report.written = staging.publish_chunks(bounds, publish, str(path), finish)
        except sqlite3.IntegrityError as exc:
            raise ImportFileError(
                path, None, f"the catalog changed during the import ({exc}); run it again"
            ) from None
    report.unchanged = staged - report.written
    return report


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cycle collector while rows stream through: each chunk holds tens of
    thousands of fresh lists, which set off collections that would take half the import's
    time, and the streaming makes no reference cycles (plain reference counting frees it)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _refuse_clash(staging: Staging, path: Path) -> None:
    """Raise for the first line that repeats a (user, anime) pair with different values."""
    clash = staging.query(
        "SELECT u.user, s.anime_id, s.clash FROM stage_ratings s "
        "JOIN stage_users u ON u.num = s.num WHERE s.clash IS NOT NULL "
        "ORDER BY s.clash LIMIT 1"
    )
    if clash:
        user, anime_id, line = clash[0]
        raise ImportFileError(
            path, line, f"user {user} and anime {anime_id} appear twice with different values"
        )
