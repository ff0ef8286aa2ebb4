"""The seasonal radar: a weekly post of this season's best picks, and a DM when a planned title
starts airing.

- Weekly (an APScheduler job, ``DEFAULT_CRON``): every chat with ``radar`` on gets the season's
  best picks for its members (seen there, not opted out; aggregated like anime night), and
  every person with ``radar`` on gets their own top of the season by DM.
- On catalog refresh (:class:`AiringWatch`, a watcher of :class:`bot.catalog_refresh.
  CatalogRefresh`): a plan-to-watch title that went from UPCOMING to ONGOING (or arrived as
  ONGOING in the current season) is announced by DM to the people planning it (radar on).

Nothing is sent twice: each notification is claimed in ``sent_notifications`` before delivery
(and released when delivery failed). Every message carries a one-tap opt-out button; NSFW
titles only reach people (and chats) who opted in. Delivery goes through the core's
:class:`~bot.core.senders.Notifier` port, which the running chat adapters implement.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger

from bot.core import cards
from bot.core.commands import season as seasons
from bot.core.context import Context
from bot.core.senders import DM_PREFIX, Notifier
from bot.core.types import Reply
from recommender.types import Filters
from storage.rows import Anime, Chat, User
from training.scheduler import crontab_trigger, single_job_scheduler

log = logging.getLogger(__name__)

JOB_ID = "seasonal-radar"
DEFAULT_CRON = "0 17 * * 5"  # Fridays, 17:00 UTC
WEEKLY, AIRING = "weekly", "airing"
PICKS = 5
RADAR = seasons.RADAR_SETTING
Clock = Callable[[], datetime]


def week_of(when: datetime) -> str:
    """``2026-W05``: the ISO week a weekly post belongs to."""
    year, week, _ = when.isocalendar()
    return f"{year}-W{week:02d}"


def starts_airing(before: str | None, known: bool, after: Anime, today: datetime) -> bool:
    """Whether a refresh saw ``after`` start airing: UPCOMING -> ONGOING, or first seen (or
    first given a status) as ONGOING in the current season."""
    if after.status != "ONGOING":
        return False
    if before == "UPCOMING":
        return True
    fresh = not known or before is None
    return fresh and (after.season, after.year) == seasons.season_of(today)


class Radar:
    """Composes and delivers the radar's messages; :meth:`weekly` is the scheduled job."""

    def __init__(
        self, ctx: Context, notifier: Notifier, *, clock: Clock | None = None, picks: int = PICKS
    ) -> None:
        self.ctx, self.notifier, self.picks = ctx, notifier, picks
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self.sent = ctx.store.notifications

    # -- the weekly post ---------------------------------------------------------------------
    async def weekly(self) -> int:
        """One week's posts to opted-in chats and people (each at most once a week)."""
        if not self.ctx.recommender.ready:
            return 0
        now = self.clock()
        week, season = week_of(now), seasons.season_of(now)
        ids = await asyncio.to_thread(self._season_ids, season)
        if not ids:
            return 0
        sent = 0
        for chat in await asyncio.to_thread(self.ctx.store.chats.with_setting, RADAR):
            reply = await asyncio.to_thread(self._chat_post, chat, season, ids)
            target = f"{chat.platform}:{chat.chat_id}"
            sent += await self._send(WEEKLY, target, week, chat.platform, chat.chat_id, reply)
        for user in await asyncio.to_thread(self.ctx.store.users.with_setting, RADAR):
            reply = await asyncio.to_thread(self._user_post, user, season, ids)
            chat_id = f"{DM_PREFIX}{user.platform_user_id}"
            target = f"{user.platform}:{chat_id}"
            sent += await self._send(WEEKLY, target, week, user.platform, chat_id, reply)
        return sent

    def _season_ids(self, season: seasons.Season) -> list[int]:
        return [a.anime_id for a in self.ctx.store.catalog.in_season(*season)]

    def _chat_post(self, chat: Chat, season: seasons.Season, ids: list[int]) -> Reply | None:
        members = [
            u
            for u in self.ctx.store.members.of_chat(chat.platform, chat.chat_id)
            if u.settings.get(RADAR, True) is not False
        ]
        if not members:
            return None
        nsfw = bool(chat.settings.get("nsfw")) and all(u.settings.get("nsfw") for u in members)
        found = self.ctx.recommender.anime_night(
            [u.id for u in members], self.picks, Filters(nsfw=nsfw), candidates=ids
        )
        if not found:
            return None
        made = [
            cards.card(p.anime, predicted_score=float(p.group_score), reason="group score")
            for p in found
        ]
        name = seasons.season_name(season)
        text = f"Season radar, {name}: the best picks for the {len(members)} of you here\n"
        text += "\n".join(cards.line(c, i + 1) for i, c in enumerate(made))
        return Reply(
            text,
            title=f"Season radar: {name}",
            picks=tuple(made),
            buttons=((seasons.chat_off_button(),),),
        )

    def _user_post(self, user: User, season: seasons.Season, ids: list[int]) -> Reply | None:
        nsfw = bool(user.settings.get("nsfw"))
        picks, _ = seasons.season_picks(self.ctx, user.id, season, nsfw, self.picks)
        if not picks:
            return None
        made = [cards.from_pick(p) for p in picks]
        name = seasons.season_name(season)
        text = f"Your season radar, {name}:\n"
        text += "\n".join(cards.line(c, i + 1) for i, c in enumerate(made))
        button = seasons.user_off_button(user.id, user.platform_user_id)
        return Reply(text, title=f"Season radar: {name}", picks=tuple(made), buttons=((button,),))

    # -- airing DMs ----------------------------------------------------------------------------
    def snapshot(self) -> dict[int, str | None]:
        """The catalog's airing statuses before a refresh (compared with the ones after)."""
        return self.ctx.store.catalog.statuses()

    async def airing(self, before: Mapping[int, str | None]) -> int:
        """DM the people planning a title that started airing since ``before``."""
        after = await asyncio.to_thread(self.ctx.store.catalog.statuses)
        today = self.clock()
        changed = [a for a, st in after.items() if st == "ONGOING" and before.get(a) != "ONGOING"]
        started = await asyncio.to_thread(self._started, changed, before, today)
        if not started:
            return 0
        planned = await asyncio.to_thread(self.ctx.store.ratings.planned_by, started)
        by_user: dict[int, list[int]] = {}
        for user_id, anime_id in planned:
            by_user.setdefault(user_id, []).append(anime_id)
        sent = 0
        for user_id, anime_ids in by_user.items():
            sent += await self._airing_dm(user_id, [started[a] for a in anime_ids])
        return sent

    def _started(
        self, changed: list[int], before: Mapping[int, str | None], today: datetime
    ) -> dict[int, Anime]:
        found = {}
        for anime_id in changed:
            anime = self.ctx.store.catalog.get(anime_id)
            if anime is not None and starts_airing(
                before.get(anime_id), anime_id in before, anime, today
            ):
                found[anime_id] = anime
        return found

    async def _airing_dm(self, user_id: int, titles: list[Anime]) -> int:
        user = await asyncio.to_thread(self.ctx.store.users.get, user_id)
        if user is None or not user.settings.get(RADAR):
            return 0
        titles = [a for a in titles if user.settings.get("nsfw") or not a.nsfw]
        chat_id = f"{DM_PREFIX}{user.platform_user_id}"
        target = f"{user.platform}:{chat_id}"
        sent = 0
        for anime in titles:  # one claim per title: a title is announced once, ever
            reply = Reply(
                f"{anime.title} has started airing! It's on your plan-to-watch list.",
                picks=(cards.card(anime),),
                buttons=((seasons.user_off_button(user.id, user.platform_user_id),),),
            )
            sent += await self._send(
                AIRING, target, str(anime.anime_id), user.platform, chat_id, reply
            )
        return sent

    # -- delivery ------------------------------------------------------------------------------
    async def _send(
        self, kind: str, target: str, subject: str, platform: str, chat_id: str, reply: Reply | None
    ) -> int:
        """Claim, deliver, and release the claim when delivery failed; 1 when it went out."""
        if reply is None:
            return 0
        if not await asyncio.to_thread(self.sent.claim, kind, target, subject):
            return 0
        if await self.notifier.deliver(platform, chat_id, reply):
            return 1
        await asyncio.to_thread(self.sent.release, kind, target, subject)
        return 0


class AiringWatch:
    """The catalog refresh's watcher: statuses before the import, DMs after it."""

    def __init__(self, radar: Radar) -> None:
        self.radar = radar

    def before_import(self) -> dict[int, str | None]:
        return self.radar.snapshot()

    async def after_import(self, before: Any) -> None:
        await self.radar.airing(before)


class RadarService:
    """The weekly job on a real APScheduler (crontab text or any trigger)."""

    def __init__(
        self,
        radar: Radar,
        *,
        cron: str = DEFAULT_CRON,
        trigger: BaseTrigger | None = None,
        timezone: Any = UTC,
    ) -> None:
        self.radar = radar
        self.trigger = trigger if trigger is not None else crontab_trigger(cron, timezone)
        self.timezone = timezone
        self.scheduler: AsyncIOScheduler | None = None

    async def start(self) -> None:
        self.scheduler = single_job_scheduler(
            self._run, self.trigger, JOB_ID, "seasonal radar", self.timezone
        )
        self.scheduler.start()

    async def stop(self) -> None:
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    async def _run(self) -> None:
        try:
            sent = await self.radar.weekly()
        except Exception:  # a failed week is logged; the next one runs anyway
            log.exception("seasonal radar failed")
            return
        log.info("seasonal radar: %d posts", sent)


def build_radar(app: Any) -> Radar:
    """The radar of a running bot (``bot.app.AppContext``): the core's context and senders."""
    core_ctx: Context = app.core.ctx
    return Radar(core_ctx, core_ctx.senders)


def radar_service(app: Any) -> RadarService:
    """``bot.app`` service factory: the weekly radar post."""
    return RadarService(build_radar(app))
