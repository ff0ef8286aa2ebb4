"""/season with a fixed date, and the seasonal radar on the real APScheduler with a fake clock:
one post per week, none twice, none to people or chats who opted out, NSFW respected; the
airing DM sent once, from a real catalog refresh. Real SQLite and a really trained model."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.catalog_refresh import CatalogRefresh
from bot.core import Caller, Core, Reply
from bot.core.commands.season import next_season, season_of
from bot.radar import AiringWatch, Radar, RadarService, starts_airing, week_of
from bot.settings import Settings
from recommender import Recommender
from storage.importers import import_offline_catalog
from storage.rows import Anime
from tests.fixtures_model import SmallWorld, build_small_world
from tests.offline_db import entry, write_minified
from tests.test_catalog_refresh import FileServer

WINTER = {"season": "WINTER", "year": 2026}
SPRING = {"season": "SPRING", "year": 2026}
FEB = datetime(2026, 2, 10, 12, tzinfo=UTC)
NEW_ID = 50001
LATER = DateTrigger(run_date=datetime(2099, 1, 1, tzinfo=UTC))


def season_entries(world: SmallWorld, mecha8_status: str = "UPCOMING") -> list[dict]:
    titles = {a.anime_id: a.title for a in world.anime}

    def known(aid: int, season: dict, status: str) -> dict:
        return entry(titles[aid], aid, animeSeason=season, status=status)

    out = [known(a, WINTER, "ONGOING") for a in (5, 6, 7, 20, 21, 50, world.nsfw_ids[0])]
    out += [known(a, SPRING, "UPCOMING") for a in (70, 71)]
    out.append(known(8, SPRING, mecha8_status))
    out.append(entry("Brand New Mecha Show", NEW_ID, animeSeason=WINTER, tags=["mecha"]))
    out[-1]["status"] = "ONGOING"
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> SmallWorld:
    root = tmp_path_factory.mktemp("radar-world")
    w = build_small_world(root)
    import_offline_catalog(w.store, write_minified(root / "db.json", season_entries(w)))
    yield w
    w.close()


def make_core(world: SmallWorld, now: datetime = FEB) -> Core:
    settings = Settings(_env_file=None, database=world.db_path)
    core = Core(
        world.store,
        Recommender(world.store, world.checkpoint),
        settings,
        rate_limited=False,
        page_size=10,
    )
    core.ctx.now = lambda: now
    return core


def mecha_fan(world: SmallWorld, name: str, **settings: object) -> int:
    uid = world.new_user(name, {a: 9 for a in range(9, 15)})
    if settings:
        world.store.users.update_settings(uid, **settings)
    return uid


def test_seasons_of_dates():
    assert season_of(datetime(2026, 1, 1)) == ("WINTER", 2026)
    assert season_of(datetime(2026, 6, 30)) == ("SPRING", 2026)
    assert season_of(datetime(2026, 12, 31)) == ("FALL", 2026)
    assert next_season(("FALL", 2026)) == ("WINTER", 2027)
    assert week_of(datetime(2026, 2, 10)) == "2026-W07"


async def test_season_now_and_next_with_a_fake_date(world: SmallWorld):
    core = make_core(world)
    mecha_fan(world, "season-fan")
    fan = Caller("console", "season-fan", "season-fan")
    reply = await core.handle_text(fan, "/season")
    shown = [c.anime_id for c in reply.picks]
    assert "Winter 2026" in reply.text
    assert set(shown[:3]) == {5, 6, 7}  # the Mecha fan's own genre first
    # not learned (no list rows): ranked all the same, from its content (a Mecha tag)
    assert NEW_ID in shown[: len(shown) // 2 + 1]
    assert world.nsfw_ids[0] not in shown
    assert reply.picks[0].buttons[0].label == "Plan to watch"
    upcoming = await core.handle_text(fan, "/season next")
    assert "Spring 2026" in upcoming.text
    assert {c.anime_id for c in upcoming.picks} == {8, 70, 71}
    assert upcoming.picks[0].anime_id == 8
    await core.handle_text(fan, "/settings nsfw on")
    reply = await core.handle_text(fan, "/season now")
    assert world.nsfw_ids[0] in [c.anime_id for c in reply.picks]
    core.ctx.now = lambda: datetime(2031, 7, 1, tzinfo=UTC)
    assert "no season data" in (await core.handle_text(fan, "/season")).text
    assert (await core.handle_text(fan, "/season later")).kind == "error"


async def test_season_keeps_planned_titles_and_drops_the_rest_of_the_list(world: SmallWorld):
    core = make_core(world)
    uid = mecha_fan(world, "season-lister")
    world.store.ratings.upsert(uid, 5, None, "plan_to_watch")
    world.store.ratings.upsert(uid, 6, 8)
    world.store.ratings.upsert(uid, 7, None, "dropped")
    reply = await core.handle_text(Caller("console", "season-lister"), "/season")
    shown = {c.anime_id: c for c in reply.picks}
    assert 5 in shown and "plan-to-watch" in shown[5].reason
    assert 6 not in shown and 7 not in shown


@dataclass
class Outbox:
    """The notifier port as a running adapter implements it, recording what went out."""

    sent: list[tuple[str, str, Reply]] = field(default_factory=list)
    refuse: bool = False

    async def deliver(self, platform: str, chat_id: str, reply: Reply) -> bool:
        if self.refuse:
            return False
        self.sent.append((platform, chat_id, reply))
        return True

    def to(self, chat_id: str) -> list[Reply]:
        return [r for _, c, r in self.sent if c == chat_id]


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def wait_for(predicate, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)


async def test_weekly_radar_on_the_real_scheduler(world: SmallWorld, no_error_logs):
    core = make_core(world)
    store = world.store
    a = mecha_fan(world, "w-a", nsfw=True)
    b = mecha_fan(world, "w-b")  # NSFW off: the group's post stays clean
    mecha_fan(world, "w-c", radar=True)
    mecha_fan(world, "w-d", radar=False)
    quitter = mecha_fan(world, "w-e", radar=False)
    for uid in (a, b, quitter):
        store.members.seen("console", "g1", uid)
    store.members.seen("console", "g2", a)
    store.chats.update_settings("console", "g1", radar=True, nsfw=True)
    store.chats.update_settings("console", "g2", radar=False)
    clock, outbox = FakeClock(FEB), Outbox()
    radar = Radar(core.ctx, outbox, clock=clock)
    service = RadarService(radar, trigger=IntervalTrigger(seconds=0.2))
    fired = 0
    real_weekly = radar.weekly

    async def counted() -> int:
        nonlocal fired
        fired += 1
        return await real_weekly()

    radar.weekly = counted  # type: ignore[method-assign]
    await service.start()
    try:
        await wait_for(lambda: fired >= 4)
        assert len(outbox.to("g1")) == 1 and not outbox.to("g2")
        assert len(outbox.to("user:w-c")) == 1 and not outbox.to("user:w-d")
        assert len(outbox.sent) == 2  # nobody else: w-a and w-b never opted in to DMs
        post = outbox.to("g1")[0]
        shown = {p.anime_id for p in post.picks}
        winter = {5, 6, 7, 20, 21, 50, NEW_ID}  # the new title is scored from its content
        assert shown and shown <= winter and world.nsfw_ids[0] not in shown
        assert "the 2 of you" in post.text  # the member who opted out is not counted
        off = post.buttons[-1][0]
        clock.now = FEB + timedelta(days=7)
        seen = fired
        await wait_for(lambda: fired >= seen + 3)
        assert len(outbox.to("g1")) == 2 and len(outbox.to("user:w-c")) == 2
        admin = Caller("console", "boss", "boss", chat_id="g1", is_group=True, chat_admin=True)
        member = Caller("console", "w-b", "w-b", chat_id="g1", is_group=True)
        assert (await core.press(member, off.action)).kind == "denied"
        assert "off" in (await core.press(admin, off.action)).text
        dm_off = outbox.to("user:w-c")[0].buttons[-1][0]
        assert (await core.press(Caller("console", "w-c"), dm_off.action)).kind == "ok"
        clock.now = FEB + timedelta(days=14)
        seen = fired
        await wait_for(lambda: fired >= seen + 3)
        assert len(outbox.sent) == 4  # both opted out in one tap: nothing in week three
    finally:
        await service.stop()
    weeks = store.notifications.sent("weekly", "console:g1")
    assert [w for _, w in weeks] == ["2026-W07", "2026-W08"]


async def test_a_failed_delivery_is_retried_not_lost(world: SmallWorld):
    core = make_core(world)
    mecha_fan(world, "retry-me", radar=True)
    outbox = Outbox(refuse=True)
    radar = Radar(core.ctx, outbox, clock=FakeClock(FEB + timedelta(days=70)))
    await radar.weekly()
    assert not outbox.sent
    outbox.refuse = False
    await radar.weekly()
    assert len(outbox.to("user:retry-me")) == 1
    await radar.weekly()
    assert len(outbox.to("user:retry-me")) == 1


def test_starts_airing_rules():
    def show(status: str, season: str = "WINTER", year: int = 2026) -> Anime:
        return Anime(1, "X", (), "TV", 12, None, 0, False, status=status, season=season, year=year)

    assert starts_airing("UPCOMING", True, show("ONGOING", "FALL", 2025), FEB)
    assert starts_airing(None, False, show("ONGOING"), FEB)  # first seen, this season
    assert not starts_airing(None, False, show("ONGOING", "FALL", 2024), FEB)  # an old show
    assert not starts_airing("ONGOING", True, show("ONGOING"), FEB)
    assert not starts_airing("UPCOMING", True, show("UPCOMING"), FEB)
    assert not starts_airing("FINISHED", True, show("ONGOING"), FEB)


async def test_airing_dm_once_from_a_real_catalog_refresh(world: SmallWorld, tmp_path: Path):
    core = make_core(world)
    store = world.store
    planner = mecha_fan(world, "planner", radar=True)
    silent = mecha_fan(world, "silent")  # radar off: no DM
    prude = mecha_fan(world, "prude", radar=True)
    for uid in (planner, silent, prude):
        store.ratings.upsert(uid, 8, None, "plan_to_watch")
    store.ratings.upsert(prude, world.nsfw_ids[1], None, "plan_to_watch")
    store.ratings.upsert(planner, 70, None, "plan_to_watch")  # stays UPCOMING
    nsfw_new = entry(
        next(a.title for a in world.anime if a.anime_id == world.nsfw_ids[1]),
        world.nsfw_ids[1],
        animeSeason=WINTER,
        status="ONGOING",
    )
    outbox = Outbox()
    server = FileServer(tmp_path / "www")
    (tmp_path / "www").mkdir()
    write_minified(server.folder / "db.json", [*season_entries(world, "ONGOING"), nsfw_new])
    await server.start()
    try:
        refresh = CatalogRefresh(store, core.recommender, f"{server.base}/db.json", trigger=LATER)
        refresh.watchers.append(AiringWatch(Radar(core.ctx, outbox, clock=FakeClock(FEB))))
        assert await refresh.refresh() is not None
        assert len(outbox.to("user:planner")) == 1
        assert "Mecha Story H" in outbox.to("user:planner")[0].text
        assert outbox.to("user:planner")[0].buttons[-1][0].label == "Stop radar messages"
        assert not outbox.to("user:silent")
        assert [r.picks[0].anime_id for r in outbox.to("user:prude")] == [8]  # no adult DM
        assert await refresh.refresh() is not None  # the same file again: nothing new
        assert len(outbox.sent) == 2
    finally:
        await server.stop()
