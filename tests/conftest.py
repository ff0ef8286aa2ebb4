"""Shared fixtures. Tests needing the real public data read ANIREC_DATA_DIR and skip without it."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
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


class _ErrorRecords(logging.Handler):
    """Keeps every ERROR (and worse) record logged anywhere in the process."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def no_error_logs(request: pytest.FixtureRequest) -> Iterator[_ErrorRecords]:
    """Fail the test if anything logged an ERROR while it ran (a bot that answered but logged
    a traceback did not really work). Mark a test ``allow_error_logs`` when it provokes one."""
    handler = _ErrorRecords()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
    if handler.records and request.node.get_closest_marker("allow_error_logs") is None:
        lines = [
            f"{r.name}: {r.getMessage()}"
            + (f" ({r.exc_info[0].__name__}: {r.exc_info[1]})" if r.exc_info else "")
            for r in handler.records[:5]
        ]
        pytest.fail("ERROR logged during the test:\n" + "\n".join(lines))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "allow_error_logs: the test provokes an ERROR log on purpose"
    )
