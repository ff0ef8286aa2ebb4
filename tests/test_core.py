"""The command core against a real SQLite file and the real Recommender (no model, or a small
really trained one from tests/fixtures_model.py for the model-backed commands)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from bot.core import (
    MAX_ACTION_LEN,
    Caller,
    Core,
    Member,
    RateLimiter,
    Reply,
    Request,
    RetrainStatus,
    RetrainTicket,
    parse_line,
)
from bot.core.parsing import UsageError
from bot.settings import Settings
from recommender import Recommender
from storage.repository import Store
from storage.rows import Anime

CATALOG = [
    Anime(1, "Cowboy Bebop", ("Action", "Sci-Fi", "Space"), "TV", 26, 8.8, 900_000, False),
    Anime(
        5, "Cowboy Bebop: Tengoku no Tobira", ("Action", "Sci-Fi"), "Movie", 1, 8.4, 200_000, False
    ),
    Anime(20, "Naruto", ("Action", "Comedy", "Shounen"), "TV", 220, 7.8, 1_000_000, False),
    Anime(
        30, "Neon Genesis Evangelion", ("Mecha", "Drama", "Sci-Fi"), "TV", 26, 8.3, 800_000, False
    ),
    Anime(
        50, "Mob Psycho 100", ("Action", "Comedy", "Supernatural"), "TV", 12, 8.5, 600_000, False
    ),
    Anime(60, "Monster", ("Mystery", "Drama", "Thriller"), "TV", 74, 8.7, 500_000, False),
    Anime(70, "Spicy Secret", ("Hentai",), "OVA", 2, 6.0, 5_000, True),
]
ALICE = Caller("console", "alice", "alice")
BOB = Caller("console", "bob", "bob")
MAL_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<myanimelist>
  <myinfo><user_name>alice</user_name></myinfo>
  <anime><series_animedb_id>1</series_animedb_id><series_title>Cowboy Bebop</series_title>
    <my_score>9</my_score><my_status>Completed</my_status></anime>
  <anime><series_animedb_id>60</series_animedb_id><series_title>Monster</series_title>
    <my_score>0</my_score><my_status>Plan to Watch</my_status></anime>
  <anime><series_animedb_id>99999</series_animedb_id><series_title>Unknown</series_title>
    <my_score>7</my_score><my_status>Completed</my_status></anime>
</myanimelist>
"""


@pytest.fixture
def catalog_store(tmp_path: Path) -> Store:
    with Store(tmp_path / "anirec.db") as store:
        store.catalog.upsert(CATALOG)
        yield store


@pytest.fixture
def core(catalog_store: Store) -> Core:
    settings = Settings(_env_file=None, admins="console:root", database=catalog_store.path)
    return Core(catalog_store, Recommender(catalog_store, None), settings, rate_limited=False)


def rows(store: Store, caller: Caller) -> dict[int, tuple[int | None, str | None, str]]:
    user = store.users.find(caller.platform, caller.user_id)
    if user is None:
        return {}
    return {r.anime_id: (r.score, r.status, r.source) for r in store.ratings.of_user(user.id)}


def actions(reply: Reply) -> list[str]:
    return [b.action for b in reply.all_buttons()]


# -- parsing -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "title", "score"),
    [
        ("/rate Cowboy Bebop 9", "Cowboy Bebop", 9),
        ("/rate Mob Psycho 100 8", "Mob Psycho 100", 8),
        ("/rate@AnirecBot Naruto 7/10", "Naruto", 7),
        ("/rate Naruto", "Naruto", None),
        ("/rate Naruto 11", "Naruto", 11),  # parsed; the core answers that scores go 1-10
    ],
)
def test_parse_rate(line: str, title: str, score: int | None):
    request = parse_line(ALICE, line)
    assert request is not None and request.command == "rate"
    assert (request.title, request.score) == (title, score)


def test_parse_other_commands():
    assert parse_line(ALICE, "hello") is None
    assert parse_line(ALICE, "/recommend 7").k == 7
    assert parse_line(ALICE, "/night @bob, carol").names == ("bob", "carol")
    settings = parse_line(ALICE, "/settings chat nsfw on")
    assert (settings.scope, settings.setting, settings.value) == ("chat", "nsfw", True)
    for bad in (
        "/recommend lots",
        "/recommend 99",
        "/settings nsfw maybe",
        "/frobnicate",
        "/rate",
        "/similar",
    ):
        with pytest.raises(UsageError):
            parse_line(ALICE, bad)


# -- rate / unrate -----------------------------------------------------------------------------
async def test_rate_writes_the_row(core: Core):
    reply = await core.handle_text(ALICE, "/rate Cowboy Bebop 9")
    assert reply.kind == "ok" and "Cowboy Bebop: 9/10" in reply.text
    assert rows(core.store, ALICE) == {1: (9, None, "chat")}
    again = await core.handle_text(ALICE, "/rate cowboy bebop 7")
    assert "(was 9)" in again.text
    assert rows(core.store, ALICE) == {1: (7, None, "chat")}


@pytest.mark.parametrize("score", [0, 11, -3])
async def test_score_outside_range_is_refused(core: Core, score: int):
    reply = await core.handle(Request("rate", ALICE, title="Naruto", score=score))
    assert reply.kind == "error" and "1 to 10" in reply.text
    assert rows(core.store, ALICE) == {}


async def test_rate_without_score_offers_buttons_only_the_caller_can_press(core: Core):
    reply = await core.handle_text(ALICE, "/rate Naruto")
    buttons = reply.all_buttons()
    assert [b.label for b in buttons] == [str(s) for s in range(1, 11)]
    assert all(b.owner == "alice" for b in buttons)
    assert rows(core.store, ALICE) == {}
    denied = await core.press(BOB, buttons[7].action)
    assert denied.kind == "denied" and denied.ephemeral
    assert rows(core.store, ALICE) == {} and rows(core.store, BOB) == {}
    done = await core.press(ALICE, buttons[7].action)
    assert done.edit and "Naruto: 8/10" in done.text
    assert rows(core.store, ALICE) == {20: (8, None, "chat")}


async def test_unknown_title_suggests_with_buttons(core: Core):
    reply = await core.handle_text(ALICE, "/rate Cowboy Bebob movie 8")
    assert reply.kind == "did_you_mean" and "Did you mean" in reply.text
    labels = [b.label for b in reply.all_buttons()]
    assert "Cowboy Bebop: Tengoku no Tobira" in labels
    chosen = next(b for b in reply.all_buttons() if b.label.startswith("Cowboy Bebop: T"))
    done = await core.press(ALICE, chosen.action)
    assert "8/10" in done.text
    assert rows(core.store, ALICE) == {5: (8, None, "chat")}
    nothing = await core.handle_text(ALICE, "/rate qqqqqqqqqqqqqq 8")
    assert nothing.kind == "did_you_mean" and "couldn't find" in nothing.text


async def test_did_you_mean_hides_adult_titles_until_opted_in(core: Core):
    hidden = await core.handle_text(ALICE, "/rate Spicy Secrets Club 8")
    assert hidden.kind == "did_you_mean"
    assert "Spicy Secret" not in [b.label for b in hidden.all_buttons()]
    await core.handle_text(ALICE, "/settings nsfw on")
    shown = await core.handle_text(ALICE, "/rate Spicy Secrets Club 8")
    assert "Spicy Secret" in [b.label for b in shown.all_buttons()]


async def test_unrate(core: Core):
    await core.handle_text(ALICE, "/rate Monster 10")
    reply = await core.handle_text(ALICE, "/unrate monster")
    assert "Removed Monster" in reply.text and rows(core.store, ALICE) == {}
    again = await core.handle_text(ALICE, "/unrate monster")
    assert "wasn't on your list" in again.text


async def test_autocomplete_values_resolve_exactly(core: Core):
    choices = await core.autocomplete(ALICE, "bebop")
    assert choices and choices[0].value.startswith("#")
    target = next(c for c in choices if c.label == "Cowboy Bebop: Tengoku no Tobira")
    await core.handle(Request("rate", ALICE, title=target.value, score=6))
    assert rows(core.store, ALICE) == {5: (6, None, "chat")}
    assert all(c.label != "Spicy Secret" for c in await core.autocomplete(ALICE, "spicy"))


async def test_rating_survives_a_busy_database(core: Core, tmp_path: Path):
    """Another process holds the write lock for a while: the rating waits, then lands."""
    blocker = sqlite3.connect(core.store.path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    release = threading.Timer(1.0, lambda: blocker.execute("COMMIT"))
    release.start()
    try:
        reply = await core.handle_text(ALICE, "/rate Naruto 6")
    finally:
        release.join()
        blocker.close()
    assert reply.kind == "ok"
    assert rows(core.store, ALICE) == {20: (6, None, "chat")}


# -- profile, import, settings, help ----------------------------------------------------------
async def test_profile(core: Core):
    empty = await core.handle_text(ALICE, "/profile")
    assert "empty" in empty.text
    for line in ("/rate Cowboy Bebop 10", "/rate Mob Psycho 100 9", "/rate Naruto 4"):
        await core.handle_text(ALICE, line)
    reply = await core.handle_text(ALICE, "/profile")
    fields = {f.name: f.value for f in reply.fields}
    assert fields["Scored"] == "3" and fields["Mean score"] == "7.67"
    assert fields["Top rated"].splitlines()[0] == "- Cowboy Bebop: 10/10"
    assert "Sci-Fi" in fields["Favourite genres"]  # from what they liked, not Naruto


async def test_import_mal_xml(core: Core):
    reply = await core.handle(Request("import", ALICE, data=MAL_XML, filename="animelist.xml"))
    assert "3 entries" in reply.text and "1 anime aren't in my catalog" in reply.text
    assert rows(core.store, ALICE) == {
        1: (9, "completed", "import"),
        60: (None, "plan_to_watch", "import"),
    }
    broken = await core.handle(
        Request("import", ALICE, data=b"<myanimelist><anime>", filename="bad.xml")
    )
    assert broken.kind == "error" and "couldn't read" in broken.text
    empty = await core.handle(Request("import", ALICE))
    assert empty.kind == "error"


async def test_settings_user_and_chat(core: Core):
    reply = await core.handle_text(ALICE, "/settings nsfw on")
    assert "on" in reply.text
    assert core.store.users.find("console", "alice").settings["nsfw"] is True
    assert any(c.label == "Spicy Secret" for c in await core.autocomplete(ALICE, "spicy"))
    member = Caller("telegram", "7", "carol", chat_id="-100", is_group=True)
    denied = await core.handle_text(member, "/settings chat nsfw on")
    assert denied.kind == "denied"
    assert core.store.chats.ensure("telegram", "-100").settings == {}
    admin = Caller("telegram", "8", "dave", chat_id="-100", is_group=True, chat_admin=True)
    done = await core.handle_text(admin, "/settings chat nsfw on")
    assert "this chat: on" in done.text
    assert core.store.chats.ensure("telegram", "-100").settings == {"nsfw": True}
    await core.handle_text(ALICE, "/settings nsfw off")
    assert core.store.users.find("console", "alice").settings["nsfw"] is False


async def test_help_hides_admin_commands(core: Core):
    plain = await core.handle_text(ALICE, "/help")
    assert "/rate" in plain.text and "/retrain" not in plain.text
    admin = await core.handle_text(Caller("console", "root", "root"), "/help")
    assert "/retrain" in admin.text and "/model" in admin.text


# -- admin: retrain and model ------------------------------------------------------------------
ROOT = Caller("console", "root", "root")


async def test_retrain_and_model_without_a_retrain_control(core: Core):
    denied = await core.handle_text(ALICE, "/retrain")
    assert denied.kind == "denied"
    reply = await core.handle_text(ROOT, "/retrain")
    assert "not configured" in reply.text
    status = await core.handle_text(ROOT, "/model")
    fields = {f.name: f.value for f in status.fields}
    assert fields["Serving"] == "no model trained yet" and fields["Last run"] == "none yet"
    assert "not configured" in fields["Next run"]
    store = core.store
    run = store.runs.start("cli", "console:root")
    store.runs.update(
        run, status="finished", decision="promoted", finished_at="2025-01-01T00:00:00"
    )
    version = store.versions.add("models/v1.safetensors", {"ndcg_at_10": 0.31}, "abc", run)
    store.versions.promote(version)
    fields = {f.name: f.value for f in (await core.handle_text(ROOT, "/model")).fields}
    assert fields["Serving"].startswith(f"version {version}")
    assert "ndcg_at_10 0.3100" in fields["Metrics"]
    assert fields["Last run"].startswith(f"#{run} (cli) finished, promoted")


class OneRunAtATime:
    """A RetrainControl that only remembers requests: the real one belongs to the retraining
    issue; this checks what the core says for each answer the port can give."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None]] = []
        self.reloads = 0

    async def reload(self) -> str:
        self.reloads += 1
        return "Now serving v0007."

    async def request(self, trigger, requested_by, notify=None) -> RetrainTicket:
        self.requests.append((trigger, requested_by))
        if len(self.requests) == 1:
            return RetrainTicket(True, run_id=4, started_at="2025-05-01T12:00:00+00:00")
        return RetrainTicket(
            False, run_id=4, started_at="2025-05-01T12:00:00+00:00", progress="epoch 3/12"
        )

    async def status(self) -> RetrainStatus:
        return RetrainStatus(
            serving_version="v7",
            serving_metrics={"rmse": 1.12},
            next_run="2025-05-02T03:30:00+00:00",
            running=RetrainTicket(False, 4, "2025-05-01T12:00:00+00:00", "epoch 3/12"),
        )


async def test_retrain_through_the_port(core: Core):
    control = OneRunAtATime()
    core.set_retrain_control(control)
    first = await core.handle_text(ROOT, "/retrain")
    assert "Retraining started (run #4)" in first.text
    second = await core.handle_text(ROOT, "/retrain")
    assert second.text == "Already running (started 2025-05-01 12:00 UTC, epoch 3/12)."
    assert control.requests == [("admin", "console:root")] * 2
    fields = {f.name: f.value for f in (await core.handle_text(ROOT, "/model")).fields}
    assert fields["Next run"] == "2025-05-02 03:30 UTC"
    assert fields["Running"] == "run #4 started 2025-05-01 12:00 UTC, epoch 3/12"
    assert [e.action for e in core.store.audit.recent()].count("retrain_request") == 2


async def test_model_reload_and_a_refused_retrain(core: Core):
    control = OneRunAtATime()
    core.set_retrain_control(control)
    assert (await core.handle_text(ALICE, "/model reload")).kind == "denied"
    assert control.reloads == 0
    reloaded = await core.handle_text(ROOT, "/model reload")
    assert reloaded.text == "Now serving v0007." and control.reloads == 1
    assert "/model [reload]" in (await core.handle_text(ROOT, "/model frobnicate")).text

    async def refused(trigger, requested_by, notify=None) -> RetrainTicket:
        return RetrainTicket(False, run_id=None, message="Cannot retrain: read-only folder")

    control.request = refused  # type: ignore[method-assign]
    reply = await core.handle_text(ROOT, "/retrain")
    assert reply.kind == "error" and reply.text == "Cannot retrain: read-only folder"


# -- limits and errors -------------------------------------------------------------------------
async def test_rate_limit_gives_a_friendly_cooldown(catalog_store: Store):
    now = [100.0]
    limiter = RateLimiter(capacity=3, per_second=0.5, clock=lambda: now[0])
    core = Core(catalog_store, Recommender(catalog_store, None), limiter=limiter)
    for _ in range(3):
        assert (await core.handle_text(ALICE, "/help")).kind == "ok"
    blocked = await core.handle_text(ALICE, "/rate Naruto 9")
    assert blocked.kind == "cooldown" and "try again in 2 seconds" in blocked.text
    assert rows(catalog_store, ALICE) == {}
    assert (await core.handle_text(BOB, "/help")).kind == "ok"  # per user
    now[0] += 2.0
    assert (await core.handle_text(ALICE, "/rate Naruto 9")).kind == "ok"


async def test_no_model_yet(core: Core):
    for line in ("/recommend", "/similar Naruto"):
        reply = await core.handle_text(ALICE, line)
        assert reply.kind == "no_model" and "No model is trained yet" in reply.text
    await core.handle_text(BOB, "/rate Naruto 5")
    night = await core.handle(Request("night", ALICE, names=("bob",)))
    assert night.kind == "no_model"


async def test_night_needs_known_people(core: Core):
    reply = await core.handle(Request("night", ALICE, names=("nobody",)))
    assert reply.kind == "error" and "nobody" in reply.text
    private = await core.handle(Request("night", ALICE))
    assert private.kind == "error"


async def test_stale_and_foreign_buttons(core: Core):
    assert (await core.press(ALICE, "zz:1")).kind == "error"
    assert (await core.press(ALICE, "rt:notanumber")).kind == "error"
    assert (await core.press(ALICE, "nj:deadbeef")).kind == "error"


async def test_action_ids_fit_telegram_and_discord(core: Core):
    big = Caller("discord", "1" * 19, "big")
    await core.handle(Request("rate", big, title="Naruto", score=3))
    user = core.store.users.find("discord", "1" * 19)
    reply = await core.handle(Request("rate", big, title="Neon Genesis Evangelion"))
    for action in actions(reply):
        assert len(action.encode()) <= MAX_ACTION_LEN
        assert str(user.id) in action


async def test_lobby_join_and_members(core: Core):
    group = {"chat_id": "-42", "is_group": True}
    host = Caller("telegram", "1", "host", **group)
    guest = Caller("telegram", "2", "guest", **group)
    lobby = await core.handle(Request("night", host))
    assert lobby.kind == "lobby" and "host" in lobby.text
    join = next(b for b in lobby.all_buttons() if b.label == "Join")
    joined = await core.press(guest, join.action)
    assert joined.edit and "(2): host, guest" in joined.text
    assert (await core.press(guest, join.action)).ephemeral
    go = next(b for b in lobby.all_buttons() if b.label == "Pick!")
    assert (await core.press(Caller("telegram", "3", "x", **group), go.action)).ephemeral
    assert (await core.press(guest, go.action)).kind == "no_model"


async def test_concurrent_rates_lose_nothing(core: Core):
    callers = [Caller("telegram", str(i), f"u{i}") for i in range(20)]
    lines = ["/rate Naruto 7", "/rate Monster 9", "/rate Cowboy Bebop 10"]
    replies = await asyncio.gather(*(core.handle_text(c, line) for c in callers for line in lines))
    assert all(r.kind == "ok" for r in replies)
    for c in callers:
        assert rows(core.store, c) == {
            20: (7, None, "chat"),
            60: (9, None, "chat"),
            1: (10, None, "chat"),
        }


def test_member_type_is_exported():
    assert Member("1", "x").display_name == "x"
