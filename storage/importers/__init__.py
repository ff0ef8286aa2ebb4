"""Importers for the catalog, data-set rating files and MyAnimeList XML list exports.

The catalog also comes from the anime-offline-database (``offline``), JSON instead of CSV.
Each importer streams its file (plain or gzip-compressed), validates every row, and publishes
all of it in one short transaction: a file with any bad row leaves the database exactly as it
was, and the error names the file, the line (or entry) and the problem. Importing the same file
twice changes nothing the second time. One module per format; this package re-exports them.
"""

from storage.importers.catalog import (
    CATALOG_COLUMNS,
    DEFAULT_MAX_CSV_BYTES,
    NSFW_GENRES,
    import_catalog,
    iter_catalog,
    parse_catalog,
)
from storage.importers.dispatch import import_any_catalog
from storage.importers.errors import ImportFileError, ImportReport, ProgressFn
from storage.importers.malxml import (
    MAX_XML_BYTES,
    XML_STATUS,
    import_mal_xml,
    import_mal_xml_for,
    parse_mal_xml,
    read_capped,
)
from storage.importers.offline import import_offline_catalog
from storage.importers.ratings import (
    NUMERIC_STATUS,
    RATINGS_FORMATS,
    import_ratings,
    rating_rows,
)

__all__ = [
    "CATALOG_COLUMNS",
    "DEFAULT_MAX_CSV_BYTES",
    "MAX_XML_BYTES",
    "NSFW_GENRES",
    "NUMERIC_STATUS",
    "RATINGS_FORMATS",
    "XML_STATUS",
    "ImportFileError",
    "ImportReport",
    "ProgressFn",
    "import_any_catalog",
    "import_catalog",
    "import_offline_catalog",
    "import_mal_xml",
    "import_mal_xml_for",
    "import_ratings",
    "iter_catalog",
    "parse_catalog",
    "parse_mal_xml",
    "rating_rows",
    "read_capped",
]
