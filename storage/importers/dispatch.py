"""Which catalog importer reads a file: the offline database by its JSON name, else CSV."""

from __future__ import annotations

from pathlib import Path

from storage.importers.catalog import import_catalog
from storage.importers.errors import ImportReport, ProgressFn
from storage.importers.jsonstream import is_offline_db
from storage.importers.offline import import_offline_catalog
from storage.repository import Store


def import_any_catalog(
    store: Store, path: str | Path, progress: ProgressFn | None = None
) -> ImportReport:
    """Import a catalog file: ``*.json``/``*.jsonl`` (maybe ``.gz``/``.zst``) or a CSV."""
    if is_offline_db(Path(path)):
        return import_offline_catalog(store, path, progress)
    return import_catalog(store, path, progress)
