"""Where the demo's data comes from: a data folder when it holds the files, else the shipped copy.

The package ships the CC0 "Anime Recommendations Database" catalog and the 453k-row list sample
(gzip, about 1.8 MB) so that ``anirec demo`` works on a fresh clone or a plain install. A folder
(``ANIREC_DATA_DIR``) holding ``anime/catalog.csv`` and ``anime/animelist.csv`` (or ``.csv.gz``)
wins over the shipped copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

CATALOG_NAME = "catalog.csv"
RATINGS_NAME = "animelist.csv"


@dataclass(frozen=True)
class DemoData:
    """The two files the demo imports, and a few words on where they come from."""

    catalog: Path
    ratings: Path
    origin: str


def _pick(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def folder_data(data_dir: Path) -> DemoData | None:
    """The data set in ``data_dir/anime`` when both files are there."""
    anime = data_dir / "anime"
    catalog, ratings = _pick(anime, CATALOG_NAME), _pick(anime, RATINGS_NAME)
    if catalog is None or ratings is None:
        return None
    return DemoData(catalog, ratings, f"data folder {data_dir}")


def shipped_data() -> DemoData | None:
    """The copy inside the package, or None when the package was installed without it."""
    here = Path(str(resources.files(__name__)))
    catalog, ratings = _pick(here, CATALOG_NAME), _pick(here, RATINGS_NAME)
    if catalog is None or ratings is None:
        return None
    return DemoData(catalog, ratings, "the anime data shipped with Anirec (CC0)")


def demo_data(data_dir: Path | None) -> DemoData | None:
    """The demo's data: ``data_dir`` when it holds the files, else the shipped copy, else None."""
    found = folder_data(data_dir) if data_dir is not None else None
    return found or shipped_data()
