"""The franchise graph and its table: rebuilt from the catalog after an import, read at load.

Stored rather than worked out at every model load: the catalog changes only on an import, the
table lets anyone inspect the groups (``anirec franchise``), and a load then costs one read
instead of a pass over every title. An empty table (a database from before franchises) is
filled on first read.
"""

from __future__ import annotations

from collections.abc import Sequence

from recommender.franchise import FranchiseGraph
from storage.repository import Store
from storage.rows import Anime


def rebuild(store: Store, catalog: Sequence[Anime] | None = None) -> FranchiseGraph:
    """Work the franchises out from the catalog (and its related-anime links) and store them;
    call after every catalog import."""
    catalog = store.catalog.all() if catalog is None else catalog
    graph = FranchiseGraph.build(catalog, store.catalog.links())
    store.franchises.replace((f.members, f.entry) for f in graph.franchises)
    return graph


def load(store: Store, catalog: Sequence[Anime] | None = None) -> FranchiseGraph:
    """The stored franchises, ordered against ``catalog``; rebuilt when none are stored yet."""
    catalog = store.catalog.all() if catalog is None else catalog
    groups = store.franchises.groups()
    if not groups:
        return rebuild(store, catalog) if catalog else FranchiseGraph(())
    return FranchiseGraph.from_groups(catalog, (members for members, _ in groups))
