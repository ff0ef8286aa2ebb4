"""Shared fixtures. Tests that need the real public data read ANIREC_DATA_DIR and skip without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage.repository import Store


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder holding anime/catalog.csv and anime/animelist.csv, or a clear skip."""
    raw = os.environ.get("ANIREC_DATA_DIR")
    if not raw:
        pytest.skip("real data not configured: set ANIREC_DATA_DIR to the shared data folder")
    path = Path(raw).resolve()
    if not (path / "anime" / "catalog.csv").is_file():
        pytest.skip(f"real data not found: {path}/anime/catalog.csv is missing")
    return path


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """An empty database in a real SQLite file."""
    with Store(tmp_path / "anirec.db") as s:
        yield s
