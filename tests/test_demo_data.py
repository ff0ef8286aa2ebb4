"""The demo data shipped inside the package: the exact CC0 files, and they import completely."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

from storage.demo_data import demo_data, folder_data, shipped_data
from storage.importers import import_catalog, import_ratings
from storage.repository import Store

# SHA-256 of the uncompressed files, as published with the shared data set.
CATALOG_SHA256 = "2342ef3b42135e5878a3cbfa7a83c6306e7ccfacbcf165c314467bd56c99d64b"
RATINGS_SHA256 = "4142f6ba123bb9cc025bfa0317c32d54ec4469806e530fd28a8bccdb81df5dad"


def test_the_shipped_files_are_the_published_ones():
    shipped = shipped_data()
    assert shipped is not None
    for path, digest in ((shipped.catalog, CATALOG_SHA256), (shipped.ratings, RATINGS_SHA256)):
        assert path.suffix == ".gz"
        assert hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest() == digest
    names = {p.name for p in shipped.catalog.parent.iterdir()}
    assert not any("movie" in n.lower() or "ml-" in n.lower() for n in names)


def test_an_empty_or_missing_folder_resolves_to_the_shipped_files(tmp_path: Path):
    assert folder_data(tmp_path) is None
    assert demo_data(tmp_path) == shipped_data() == demo_data(None)


def test_the_shipped_files_import_completely(store: Store):
    shipped = demo_data(None)
    assert shipped is not None
    assert import_catalog(store, shipped.catalog).written == 12_294
    report = import_ratings(store, shipped.ratings)
    assert (report.written, report.users, report.scored) == (453_101, 4_500, 358_223)
    assert store.stats()["nsfw_anime"] == 1_141
