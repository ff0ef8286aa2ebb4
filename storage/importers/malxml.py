"""MyAnimeList list exports (``animelist_*.xml``): parsed safely, validated, written at once.

Refuses DTDs, entities and external references (billion laughs, XXE) and anything over the
size cap. Every entry is checked before anything is written; an error names the file, the entry
(its position, anime id and title) and the problem. The list's owner is created in the same
transaction as the list, so a refused file leaves no trace.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from xml.etree.ElementTree import Element

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml import ElementTree as SafeET

from storage.db import utcnow
from storage.importers.errors import ImportFileError, ImportReport
from storage.importers.ratings import NUMERIC_STATUS
from storage.importers.source import MAX_ID, parse_decimal, parse_int
from storage.ratings import Ratings
from storage.repository import Store
from storage.rows import User

MAX_XML_BYTES = 10 * 1024 * 1024
XML_STATUS = {
    "watching": "watching",
    "completed": "completed",
    "on-hold": "on_hold",
    "on hold": "on_hold",
    "dropped": "dropped",
    "plan to watch": "plan_to_watch",
    "plan_to_watch": "plan_to_watch",
}
MalEntry = tuple[int, int | None, str | None]


def _too_big(size: int, max_bytes: int) -> str:
    return f"file is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit for list exports"


def _root(data: bytes, name: str) -> Element:
    try:
        root: Element = SafeET.fromstring(
            data, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
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
            name, line, f"not a valid XML file ({getattr(exc, 'msg', exc)})"
        ) from None
    if root.tag != "myanimelist":
        raise ImportFileError(
            name,
            None,
            f"not a MyAnimeList export (root element <{str(root.tag)[:40]}>, "
            "expected <myanimelist>)",
        )
    return root


def _entry(node: Element) -> MalEntry:
    """One validated ``<anime>`` element; ValueError says what is wrong with it."""
    id_text = (node.findtext("series_animedb_id") or "").strip()
    if not id_text:
        raise ValueError("no <series_animedb_id>")
    anime_id = parse_int(id_text, "series_animedb_id", 1, MAX_ID)
    score_text = (node.findtext("my_score") or "").strip() or "0"
    score = int(parse_decimal(score_text, "my_score", 0, 10))
    status_text = (node.findtext("my_status") or "").strip().lower()
    status = XML_STATUS.get(status_text)
    if status is None and status_text.isascii() and status_text.isdigit():
        status = NUMERIC_STATUS.get(int(status_text[-3:]))
    return anime_id, score or None, status


def _describe(index: int, node: Element) -> str:
    """``entry 3 (anime id 1, 'Cowboy Bebop')``: as much as the entry tells about itself."""
    bits = []
    id_text = (node.findtext("series_animedb_id") or "").strip()
    if id_text:
        bits.append(f"anime id {id_text if len(id_text) <= 24 else id_text[:20] + '...'}")
    title = (node.findtext("series_title") or "").strip()
    if title:
        bits.append(repr(title[:80]))
    return f"entry {index}" + (f" ({', '.join(bits)})" if bits else "")


def parse_mal_xml(
    data: bytes, name: str = "upload", max_bytes: int = MAX_XML_BYTES
) -> list[MalEntry]:
    """Parse a MyAnimeList list export into (anime_id, score or None, status) entries."""
    if len(data) > max_bytes:
        raise ImportFileError(name, None, _too_big(len(data), max_bytes))
    entries: dict[int, tuple[int | None, str | None]] = {}
    for index, node in enumerate(_root(data, name).iter("anime"), start=1):
        try:
            anime_id, score, status = _entry(node)
        except ValueError as exc:
            raise ImportFileError(name, None, str(exc), entry=_describe(index, node)) from None
        entries[anime_id] = (score, status)
    return [(aid, score, status) for aid, (score, status) in entries.items()]


def _write_list(
    conn: sqlite3.Connection, user_id: int, entries: list[MalEntry], known: set[int]
) -> int:
    rows = [(user_id, aid, score, status) for aid, score, status in entries if aid in known]
    return Ratings.upsert_rows(conn, rows, "import")


def _report(name: str, entries: list[MalEntry], known: set[int]) -> ImportReport:
    report = ImportReport(name, "MyAnimeList list", rows=len(entries), users=1)
    for anime_id, score, _ in entries:
        if anime_id in known:
            report.scored += score is not None
        else:
            report.note_unknown(anime_id)
    return report


def import_mal_xml(store: Store, user: User, data: bytes, name: str = "upload") -> ImportReport:
    """Import one chat user's MyAnimeList export. Anime missing from the catalog are reported."""
    entries = parse_mal_xml(data, name)
    known = store.catalog.ids()
    report = _report(name, entries, known)
    report.written = store.write_batch(lambda conn: _write_list(conn, user.id, entries, known))
    report.unchanged = len(entries) - report.unknown_anime - report.written
    return report


def import_mal_xml_for(
    store: Store,
    platform: str,
    platform_user_id: str,
    data: bytes,
    name: str = "upload",
    display_name: str | None = None,
) -> ImportReport:
    """Like :func:`import_mal_xml`, for a user who may not exist yet: the user row is created
    in the list's own transaction, only once the whole file has been accepted (a refused file
    leaves no row behind). ``display_name``, when given, is stored as ``users.ensure`` would."""
    entries = parse_mal_xml(data, name)
    known = store.catalog.ids()
    report = _report(name, entries, known)

    def write(conn: sqlite3.Connection) -> int:
        conn.execute(
            "INSERT INTO users (platform, platform_user_id, display_name, created_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (platform, platform_user_id) DO UPDATE SET "
            "display_name = excluded.display_name WHERE excluded.display_name IS NOT NULL "
            "AND excluded.display_name IS NOT users.display_name",
            (platform, platform_user_id, display_name, utcnow()),
        )
        (user_id,) = conn.execute(
            "SELECT id FROM users WHERE platform = ? AND platform_user_id = ?",
            (platform, platform_user_id),
        ).fetchone()
        return _write_list(conn, int(user_id), entries, known)

    report.written = store.write_batch(write)
    report.unchanged = len(entries) - report.unknown_anime - report.written
    return report


def read_capped(path: str | Path, max_bytes: int = MAX_XML_BYTES) -> bytes:
    """Read a file but refuse one over ``max_bytes`` before loading it all into memory."""
    path = Path(path)
    if not path.is_file():
        raise ImportFileError(path, None, "no such file")
    size = os.path.getsize(path)
    if size > max_bytes:
        raise ImportFileError(path, None, _too_big(size, max_bytes))
    return path.read_bytes()
