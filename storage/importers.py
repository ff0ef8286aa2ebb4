"""Importers for the catalog, data-set rating files and MyAnimeList XML list exports.

Each importer streams its file, validates every row, and writes inside one transaction: a file
with any bad row leaves the database exactly as it was, and the error names the file, the line
and the problem. Importing the same file twice changes nothing the second time.
"""

from __future__ import annotations

import csv
import html
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml import ElementTree as SafeET

from storage.repository import Store
from storage.rows import Anime, User
from storage.schema import STATUSES

#: Called with (bytes read so far, total bytes) as an import streams through its file.
ProgressFn = Callable[[int, int], None]

CATALOG_COLUMNS = ("anime_id", "name", "genre", "type", "episodes", "rating", "members")
NSFW_GENRES = frozenset({"Hentai"})
MAX_XML_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_CSV_BYTES = 512 * 1024 * 1024
CHUNK_ROWS = 50_000

# The origin notebooks' numeric MyAnimeList statuses.
NUMERIC_STATUS = {1: "watching", 2: "completed", 3: "on_hold", 4: "dropped", 6: "plan_to_watch"}
XML_STATUS = {
    "watching": "watching",
    "completed": "completed",
    "on-hold": "on_hold",
    "on hold": "on_hold",
    "dropped": "dropped",
    "plan to watch": "plan_to_watch",
    "plan_to_watch": "plan_to_watch",
}


class ImportFileError(Exception):
    """A file that cannot be imported; the message names the file, the line and the problem."""

    def __init__(self, path: str | Path, line: int | None, problem: str) -> None:
        where = f"{path}, line {line}" if line else str(path)
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.problem = str(path), line, problem


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
        return f"{self.kind} {self.path}: " + "; ".join(parts)


class _CountingReader(io.TextIOBase):
    """Wraps a binary file, decoding UTF-8 and reporting bytes consumed for a progress bar."""

    def __init__(self, raw: IO[bytes], total: int, progress: ProgressFn | None) -> None:
        self._raw, self._total, self._progress, self._done = raw, total, progress, 0
        self._text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")

    def __iter__(self) -> Iterator[str]:
        last = 0
        for line in self._text:
            yield line
            self._done = self._raw.tell() if self._raw.seekable() else self._done + len(line)
            if self._progress and self._done - last > 1 << 20:
                self._progress(self._done, self._total)
                last = self._done
        if self._progress:
            self._progress(self._total, self._total)


def _open_csv(path: Path, max_bytes: int, progress: ProgressFn | None):
    if not path.is_file():
        raise ImportFileError(path, None, "no such file")
    size = path.stat().st_size
    if size > max_bytes:
        raise ImportFileError(
            path,
            None,
            f"file is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit for this import",
        )
    raw = path.open("rb")
    return raw, csv.reader(_CountingReader(raw, size, progress))


def _bad_utf8(path: Path, exc: UnicodeDecodeError) -> ImportFileError:
    """Name the first line that is not UTF-8 (the decoder reads ahead, so find it ourselves)."""
    with path.open("rb") as raw:
        for number, line in enumerate(raw, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return ImportFileError(path, number, f"not UTF-8 text ({exc.reason})")
    return ImportFileError(path, None, f"not UTF-8 text ({exc.reason})")


def _int(value: str, path: Path, line: int, column: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise ImportFileError(
            path, line, f"{column} must be a whole number, got {value!r}"
        ) from None


# -- catalog ---------------------------------------------------------------------------------
def parse_catalog(
    path: str | Path, progress: ProgressFn | None = None, max_bytes: int = DEFAULT_MAX_CSV_BYTES
) -> list[Anime]:
    """Read a Kaggle ``anime.csv``: unescape titles, mark Hentai NSFW, episodes 'Unknown' -> None."""
    path = Path(path)
    raw, reader = _open_csv(path, max_bytes, progress)
    with raw:
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise ImportFileError(path, 1, "the file is empty") from None
        except UnicodeDecodeError as exc:
            raise _bad_utf8(path, exc) from None
        missing = [c for c in CATALOG_COLUMNS if c not in header]
        if missing:
            raise ImportFileError(
                path,
                1,
                f"bad header: missing column(s) {', '.join(missing)}; "
                f"expected {','.join(CATALOG_COLUMNS)}",
            )
        col = {name: header.index(name) for name in CATALOG_COLUMNS}
        seen: set[int] = set()
        rows: list[Anime] = []
        try:
            for row in reader:
                line = reader.line_num
                if not row:
                    continue
                if len(row) != len(header):
                    raise ImportFileError(
                        path,
                        line,
                        f"expected {len(header)} fields, found "
                        f"{len(row)} (truncated or malformed line)",
                    )
                anime_id = _int(row[col["anime_id"]], path, line, "anime_id")
                if anime_id in seen:
                    raise ImportFileError(path, line, f"anime_id {anime_id} appears twice")
                seen.add(anime_id)
                title = html.unescape(row[col["name"]]).strip()
                if not title:
                    raise ImportFileError(path, line, "empty name")
                genres = tuple(
                    html.unescape(g).strip() for g in row[col["genre"]].split(",") if g.strip()
                )
                episodes_text = row[col["episodes"]].strip()
                episodes = (
                    None
                    if episodes_text in ("", "Unknown")
                    else _int(episodes_text, path, line, "episodes")
                )
                score_text = row[col["rating"]].strip()
                try:
                    mal_score = float(score_text) if score_text else None
                except ValueError:
                    raise ImportFileError(
                        path, line, f"rating must be a number, got {score_text!r}"
                    ) from None
                members_text = row[col["members"]].strip()
                members = _int(members_text, path, line, "members") if members_text else 0
                rows.append(
                    Anime(
                        anime_id=anime_id,
                        title=title,
                        genres=genres,
                        type=row[col["type"]].strip() or None,
                        episodes=episodes,
                        mal_score=mal_score,
                        members=members,
                        nsfw=bool(NSFW_GENRES.intersection(genres)),
                    )
                )
        except csv.Error as exc:
            raise ImportFileError(path, reader.line_num, f"malformed CSV ({exc})") from None
        except UnicodeDecodeError as exc:
            raise _bad_utf8(path, exc) from None
    return rows


def import_catalog(
    store: Store, path: str | Path, progress: ProgressFn | None = None
) -> ImportReport:
    rows = parse_catalog(path, progress)
    report = ImportReport(str(path), "catalog", rows=len(rows))
    report.written = store.write_batch(lambda conn: store.catalog.upsert(rows, conn))
    report.unchanged = report.rows - report.written
    return report


# -- data-set ratings ------------------------------------------------------------------------
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
    raw, reader = _open_csv(path, max_bytes, progress)
    report = ImportReport(str(path), "ratings")
    with raw:
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise ImportFileError(path, 1, "the file is empty") from None
        except UnicodeDecodeError as exc:
            raise _bad_utf8(path, exc) from None
        fmt = _detect_format(header, path)
        iu, ia, isc = (
            header.index("user_id"),
            header.index("anime_id"),
            header.index(fmt.score_column),
        )
        ist = header.index(fmt.status_column) if fmt.status_column else None
        seen: dict[tuple[str, int], tuple[int | None, str | None]] = {}
        try:
            for row in reader:
                line = reader.line_num
                if not row:
                    continue
                if len(row) != len(header):
                    raise ImportFileError(
                        path,
                        line,
                        f"expected {len(header)} fields, found "
                        f"{len(row)} (truncated or malformed line)",
                    )
                user = row[iu].strip()
                if not user:
                    raise ImportFileError(path, line, "empty user_id")
                anime_id = _int(row[ia], path, line, "anime_id")
                raw_score = _int(row[isc], path, line, fmt.score_column)
                if raw_score == fmt.unscored:
                    score = None
                elif 1 <= raw_score <= 10:
                    score = raw_score
                else:
                    raise ImportFileError(
                        path,
                        line,
                        f"{fmt.score_column} {raw_score} is out of "
                        f"range (1-10, or {fmt.unscored} for unscored)",
                    )
                status = None
                if ist is not None:
                    code = _int(row[ist], path, line, "status")
                    if code not in NUMERIC_STATUS:
                        raise ImportFileError(path, line, f"unknown status code {code}")
                    status = NUMERIC_STATUS[code]
                report.rows += 1
                if anime_id not in known:
                    if not skip_unknown:
                        raise ImportFileError(
                            path,
                            line,
                            f"anime_id {anime_id} is not in the catalog "
                            "(use --skip-unknown to skip such rows)",
                        )
                    report.unknown_anime += 1
                    if len(report.unknown_anime_ids) < 20:
                        report.unknown_anime_ids.append(anime_id)
                    continue
                key = (user, anime_id)
                previous = seen.get(key)
                if previous is not None:
                    if previous != (score, status):
                        raise ImportFileError(
                            path,
                            line,
                            f"user {user} and anime {anime_id} appear twice with different values",
                        )
                    report.duplicates += 1
                    continue
                seen[key] = (score, status)
        except csv.Error as exc:
            raise ImportFileError(path, reader.line_num, f"malformed CSV ({exc})") from None
        except UnicodeDecodeError as exc:
            raise _bad_utf8(path, exc) from None

    def write(conn) -> int:
        user_map = store.users.ensure_dataset((u for u, _ in seen), conn)
        # Primary-key order turns the upsert into appends to the B-tree: about twice as fast.
        rows = sorted(
            (user_map[user], anime_id, score, status)
            for (user, anime_id), (score, status) in seen.items()
        )
        written = 0
        for start in range(0, len(rows), CHUNK_ROWS):
            written += store.ratings.upsert_rows(conn, rows[start : start + CHUNK_ROWS], "dataset")
        return written

    report.written = store.write_batch(write)
    report.unchanged = len(seen) - report.written
    report.users = len({u for u, _ in seen})
    report.scored = sum(1 for s, _ in seen.values() if s is not None)
    return report


# -- MyAnimeList XML -------------------------------------------------------------------------
def parse_mal_xml(
    data: bytes, name: str = "upload", max_bytes: int = MAX_XML_BYTES
) -> list[tuple[int, int | None, str | None]]:
    """Parse a MyAnimeList list export into (anime_id, score or None, status) entries.

    Refuses DTDs, entities and external references (billion laughs, XXE) and anything over
    ``max_bytes``.
    """
    if len(data) > max_bytes:
        raise ImportFileError(
            name,
            None,
            f"file is {len(data) / 1e6:.1f} MB, over the "
            f"{max_bytes / 1e6:.0f} MB limit for list exports",
        )
    try:
        root = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden):
        raise ImportFileError(
            name,
            None,
            "XML with a DOCTYPE or entities is not accepted; "
            "export your list from MyAnimeList again",
        ) from None
    except SafeET.ParseError as exc:
        line = exc.position[0] if getattr(exc, "position", None) else None
        raise ImportFileError(
            name, line, f"not a valid XML file ({exc.msg if hasattr(exc, 'msg') else exc})"
        ) from None
    if root.tag != "myanimelist":
        raise ImportFileError(
            name,
            None,
            f"not a MyAnimeList export (root element <{root.tag}>, expected <myanimelist>)",
        )
    entries: dict[int, tuple[int | None, str | None]] = {}
    for index, node in enumerate(root.iter("anime"), start=1):
        id_text = (node.findtext("series_animedb_id") or "").strip()
        if not id_text.isdigit():
            raise ImportFileError(
                name, None, f"<anime> entry {index} has no valid <series_animedb_id> ({id_text!r})"
            )
        score_text = (node.findtext("my_score") or "0").strip() or "0"
        try:
            raw_score = int(float(score_text))
        except ValueError:
            raise ImportFileError(
                name, None, f"<anime> entry {index}: my_score {score_text!r} is not a number"
            ) from None
        if not 0 <= raw_score <= 10:
            raise ImportFileError(
                name, None, f"<anime> entry {index}: my_score {raw_score} is out of range (0-10)"
            )
        status_text = (node.findtext("my_status") or "").strip().lower()
        status = XML_STATUS.get(status_text)
        if status is None and status_text.isdigit():
            status = NUMERIC_STATUS.get(int(status_text))
        entries[int(id_text)] = (raw_score or None, status)
    return [(aid, score, status) for aid, (score, status) in entries.items()]


def import_mal_xml(store: Store, user: User, data: bytes, name: str = "upload") -> ImportReport:
    """Import one chat user's MyAnimeList export. Anime missing from the catalog are reported."""
    entries = parse_mal_xml(data, name)
    known = store.catalog.ids()
    report = ImportReport(name, "MyAnimeList list", rows=len(entries), users=1)
    rows = []
    for anime_id, score, status in entries:
        if anime_id not in known:
            report.unknown_anime += 1
            if len(report.unknown_anime_ids) < 20:
                report.unknown_anime_ids.append(anime_id)
            continue
        assert status is None or status in STATUSES
        rows.append((user.id, anime_id, score, status))
        report.scored += score is not None
    report.written = store.write_batch(lambda conn: store.ratings.upsert_rows(conn, rows, "import"))
    report.unchanged = len(rows) - report.written
    return report


def read_capped(path: str | Path, max_bytes: int = MAX_XML_BYTES) -> bytes:
    """Read a file but refuse one over ``max_bytes`` before loading it all into memory."""
    path = Path(path)
    if not path.is_file():
        raise ImportFileError(path, None, "no such file")
    size = os.path.getsize(path)
    if size > max_bytes:
        raise ImportFileError(
            path,
            None,
            f"file is {size / 1e6:.1f} MB, over the "
            f"{max_bytes / 1e6:.0f} MB limit for list exports",
        )
    return path.read_bytes()
