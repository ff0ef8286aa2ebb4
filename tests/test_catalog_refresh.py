"""The scheduled catalog refresh: the real APScheduler fires, httpx downloads from a real file
server on 127.0.0.1, the import runs off the loop, and the new titles are searchable (and in
/similar's genre fallback) without a retrain."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from apscheduler.triggers.date import DateTrigger

from bot.catalog_refresh import CatalogRefresh, catalog_refresh_service, file_name
from bot.settings import load_settings
from recommender.recommender import Recommender
from storage.repository import Store
from tests.offline_db import entry, write_jsonl, write_minified
from tests.test_import import dump


class FileServer:
    """Serves files from a folder on 127.0.0.1; ``hits`` counts requests."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.hits = folder, 0
        self.runner: web.AppRunner | None = None
        self.base = ""

    async def start(self) -> None:
        async def serve(request: web.Request) -> web.StreamResponse:
            self.hits += 1
            path = self.folder / request.match_info["name"]
            chunked = path.with_name(path.name.removeprefix("chunked-"))
            if path != chunked and chunked.is_file():  # no Content-Length: only the count stops it
                response = web.StreamResponse()
                await response.prepare(request)
                data = chunked.read_bytes()
                for start in range(0, len(data), 50):
                    await response.write(data[start : start + 50])
                await response.write_eof()
                return response
            if not path.is_file():
                return web.Response(status=404)
            return web.FileResponse(path)

        app = web.Application()
        app.router.add_get("/{name}", serve)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.base = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[FileServer]:
    folder = tmp_path / "www"
    folder.mkdir()
    files = FileServer(folder)
    await files.start()
    yield files
    await files.stop()


def soon() -> DateTrigger:
    return DateTrigger(run_date=datetime.now(UTC) + timedelta(milliseconds=300))


async def run_once(refresh: CatalogRefresh) -> None:
    """Start the real scheduler and wait until its job has imported the file."""
    await refresh.start()
    try:
        for _ in range(300):
            if refresh.last is not None:
                break
            await asyncio.sleep(0.05)
    finally:
        await refresh.stop()


NEW = [
    entry("Brand New Mecha Show", 50001, tags=["mecha", "action"], synonyms=["BNMS"]),
    entry("Indie Mecha Short", others=("https://anidb.net/anime/4242",), tags=["mecha"]),
]


async def test_scheduled_refresh_makes_new_titles_searchable(
    tmp_path, store, server, no_error_logs
):
    write_minified(server.folder / "anime-offline-database-minified.json", NEW)
    rec = Recommender(store)
    assert not rec.search("Brand New Mecha Show")
    refresh = CatalogRefresh(
        store, rec, f"{server.base}/anime-offline-database-minified.json", trigger=soon()
    )
    await run_once(refresh)
    assert refresh.last is not None and refresh.last.written == 2
    assert rec.search("Brand New Mecha Show")[0].anime.anime_id == 50001
    assert rec.search("BNMS")[0].anime.anime_id == 50001
    assert rec.search("Indie Mecha Short")[0].anime.anime_id >= 2**30
    assert "2 written" in (store.kv.get("catalog.refresh.last") or "")


async def test_jsonl_url_keeps_its_format(tmp_path, store, server):
    write_jsonl(server.folder / "anime-offline-database.jsonl", NEW)
    refresh = CatalogRefresh(
        store, None, f"{server.base}/anime-offline-database.jsonl", cron="0 6 * * 1"
    )
    report = await refresh.refresh()
    assert report is not None and report.rows == 2
    assert store.catalog.get(50001) is not None


async def test_a_failed_download_leaves_the_catalog_alone(tmp_path, store, server, caplog):
    write_minified(server.folder / "big.json", NEW * 1)
    store.catalog.upsert([])
    before = dump(store)
    missing = CatalogRefresh(store, None, f"{server.base}/missing.json", cron="0 6 * * 1")
    declared, streamed = (
        CatalogRefresh(store, None, f"{server.base}/{name}", cron="0 6 * * 1", max_bytes=100)
        for name in ("big.json", "chunked-big.json")
    )
    with caplog.at_level(logging.WARNING, logger="bot.catalog_refresh"):
        assert await missing.refresh() is None
        assert await declared.refresh() is None
        assert await streamed.refresh() is None
    messages = [r.getMessage() for r in caplog.records]
    assert "HTTP 404" in messages[0]
    assert "big.json is 1," in messages[1] and "over 100 bytes" in messages[1]
    assert "chunked-big.json is over 100 bytes" in messages[2]
    assert dump(store) == before


async def test_a_bad_file_leaves_the_catalog_alone(tmp_path, store, server, caplog):
    write_minified(server.folder / "bad.json", [*NEW, entry("Bad", 3, episodes=-5)])
    before = dump(store)
    refresh = CatalogRefresh(store, None, f"{server.base}/bad.json", cron="0 6 * * 1")
    with caplog.at_level(logging.WARNING, logger="bot.catalog_refresh"):
        assert await refresh.refresh() is None
    assert "entry 3 ('Bad'" in caplog.text
    assert dump(store) == before


def test_file_name_keeps_the_format_and_nothing_else():
    assert file_name("https://x.example/a/anime-offline-database.jsonl?x=1") == (
        "anime-offline-database.jsonl"
    )
    assert file_name("https://x.example/db.json.zst") == "db.json.zst"
    assert file_name("https://x.example/../../etc/passwd") == "anime-offline-database-minified.json"


def test_service_only_when_a_url_is_set(tmp_path):
    class Ctx:
        def __init__(self, **settings: object) -> None:
            self.settings = load_settings(database=tmp_path / "s.db", **settings)
            self.store = Store(tmp_path / "s.db")
            self.recommender = None

    assert catalog_refresh_service(Ctx()) is None
    assert (
        catalog_refresh_service(Ctx(catalog_url="https://x.example/db.json", catalog_cron="off"))
        is None
    )
    service = catalog_refresh_service(Ctx(catalog_url="https://x.example/db.json"))
    assert isinstance(service, CatalogRefresh)
    with pytest.raises(ValueError, match="http"):
        load_settings(catalog_url="file:///etc/passwd")


@pytest.mark.slow
def test_new_title_enters_similar_genre_fallback_without_retrain(tmp_path):
    from storage.importers import import_offline_catalog
    from tests.fixtures_model import build_small_world

    world = build_small_world(tmp_path / "world")
    rec = Recommender(world.store, world.checkpoint)
    import_offline_catalog(world.store, write_minified(tmp_path / "db.json", NEW))
    rec.reload_titles()
    new_id = rec.resolve_title("Brand New Mecha Show").anime_id
    picks = rec.similar(new_id, k=5)
    assert picks and all("Mecha" in p.anime.genres for p in picks)
    assert {p.anime.anime_id for p in picks} <= set(world.anime_by_genre["Mecha"])
