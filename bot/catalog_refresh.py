"""The scheduled catalog refresh: download the anime-offline-database and import it.

``catalog_refresh_service(ctx)`` is listed in ``bot.app.SERVICE_FACTORIES``. When
``ANIREC_CATALOG_URL`` is set, an APScheduler job on ``ANIREC_CATALOG_CRON`` downloads the file
(bounded time and size) into a temporary folder, imports it in a worker thread (the import is
all or nothing, so a bad download leaves the catalog as it was), then rebuilds the franchises
and the title index and gives new titles content vectors in the serving model, so that they are
searchable and recommendable at once, without a retrain.
"""

from __future__ import annotations

import asyncio
import logging
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger

from bot.settings import Settings
from recommender import franchise_store
from storage.importers import ImportFileError, ImportReport, import_offline_catalog
from storage.importers.jsonstream import is_offline_db
from storage.repository import Store
from training.scheduler import OFF, crontab_trigger, single_job_scheduler

log = logging.getLogger(__name__)

JOB_ID = "catalog-refresh"
KV_LAST = "catalog.refresh.last"
DEFAULT_NAME = "anime-offline-database-minified.json"
_SAFE_NAME = re.compile(r"[A-Za-z0-9._-]{1,120}")


class CatalogWatcher(Protocol):
    """Told about each import: ``before_import`` runs in a worker thread before it (its result
    comes back to ``after_import`` once the import succeeded), e.g. the radar's airing DMs."""

    def before_import(self) -> Any: ...

    async def after_import(self, before: Any) -> None: ...


class DownloadError(Exception):
    """The catalog file could not be fetched (the message says why, without the URL's query)."""


def file_name(url: str) -> str:
    """A safe local name that keeps the format's suffixes (``.jsonl``, ``.json.zst``, ...)."""
    name = Path(urlsplit(url).path).name
    if _SAFE_NAME.fullmatch(name) and is_offline_db(Path(name)):
        return name
    return DEFAULT_NAME


async def download(url: str, dest: Path, *, max_bytes: int, timeout_s: float) -> int:
    """Stream ``url`` into ``dest``; returns its size. Refuses more than ``max_bytes``."""
    where = urlsplit(url)._replace(query="", fragment="").geturl()
    size = 0
    try:
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(timeout_s), follow_redirects=True) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise DownloadError(f"{where} answered HTTP {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise DownloadError(f"{where} is {int(declared):,} bytes, over {max_bytes:,} bytes")
            with dest.open("wb") as out:
                async for chunk in response.aiter_raw():
                    size += len(chunk)
                    if size > max_bytes:
                        raise DownloadError(f"{where} is over {max_bytes:,} bytes")
                    out.write(chunk)
    except httpx.HTTPError as exc:
        raise DownloadError(f"{where}: {type(exc).__name__} {exc}") from None
    return size


class CatalogRefresh:
    """Downloads and imports the catalog on a trigger (crontab text or any APScheduler trigger)."""

    def __init__(
        self,
        store: Store,
        recommender: Any,
        url: str,
        *,
        cron: str | None = None,
        trigger: BaseTrigger | None = None,
        max_bytes: int = 512 * 2**20,
        timeout_s: float = 60.0,
        timezone: Any = UTC,
    ) -> None:
        self.store, self.recommender, self.url = store, recommender, url
        self.trigger = trigger if trigger is not None else crontab_trigger(cron or "", timezone)
        self.max_bytes, self.timeout_s, self.timezone = max_bytes, timeout_s, timezone
        self.scheduler: AsyncIOScheduler | None = None
        self.last: ImportReport | None = None
        self.watchers: list[CatalogWatcher] = []

    async def start(self) -> None:
        self.scheduler = single_job_scheduler(
            self.refresh, self.trigger, JOB_ID, "catalog refresh", self.timezone
        )
        self.scheduler.start()
        job = self.scheduler.get_job(JOB_ID)
        log.info("catalog refresh: next run %s", job.next_run_time if job else None)

    async def stop(self) -> None:
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    async def refresh(self) -> ImportReport | None:
        """One refresh; a failure is logged and leaves the catalog as it was."""
        try:
            before = [await asyncio.to_thread(w.before_import) for w in self.watchers]
            with tempfile.TemporaryDirectory(prefix="anirec-catalog-") as folder:
                path = Path(folder) / file_name(self.url)
                await download(self.url, path, max_bytes=self.max_bytes, timeout_s=self.timeout_s)
                report = await asyncio.to_thread(import_offline_catalog, self.store, path)
        except (DownloadError, ImportFileError, OSError) as exc:
            log.warning("catalog refresh failed, the catalog is unchanged: %s", exc)
            return None
        if report.written:
            await asyncio.to_thread(franchise_store.rebuild, self.store)
        if report.written and hasattr(self.recommender, "refresh_catalog"):
            # new titles become searchable and recommendable (content vectors) at once
            await asyncio.to_thread(self.recommender.refresh_catalog)
        elif report.written and hasattr(self.recommender, "reload_titles"):
            await asyncio.to_thread(self.recommender.reload_titles)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        await asyncio.to_thread(self.store.kv.set, KV_LAST, f"{now} {report.summary()}")
        log.info("catalog refresh: %s", report.summary())
        for watcher, seen in zip(self.watchers, before, strict=True):
            try:
                await watcher.after_import(seen)
            except Exception:  # a watcher's failure never undoes the refresh
                log.exception("catalog refresh: watcher %s failed", type(watcher).__name__)
        self.last = report
        return report


def catalog_refresh_service(ctx: Any) -> CatalogRefresh | None:
    """``bot.app`` service factory: the refresh when ``ANIREC_CATALOG_URL`` is set."""
    settings: Settings = ctx.settings
    if not settings.catalog_url or settings.catalog_cron.strip().lower() in OFF:
        return None
    refresh = CatalogRefresh(
        ctx.store,
        ctx.recommender,
        settings.catalog_url,
        cron=settings.catalog_cron,
        max_bytes=settings.catalog_max_mb * 2**20,
    )
    if getattr(ctx, "core", None) is not None:
        from bot.radar import AiringWatch, build_radar

        refresh.watchers.append(AiringWatch(build_radar(ctx)))
    return refresh
