"""The Discord adapter end to end: the real discord.py client logs in to a fake Discord on
127.0.0.1 (REST + websocket gateway, tests/fakes/discord_api.py), receives READY and
GUILD_CREATE, then INTERACTION_CREATE for slash commands, autocomplete, buttons and selects.
We assert the interaction callbacks, follow-ups, the synced command schema and the rows in the
real SQLite file. The core and the recommender are the real ones (a small trained model)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.adapters.discord_bot import AnirecDiscord, build_discord_client
from bot.core import Caller, Core, RateLimiter, Reply
from bot.core.types import AnimeCard
from bot.settings import Settings
from recommender import Recommender
from tests.fakes.discord_api import EPHEMERAL, FakeDiscord, FakeUser, Pushed
from tests.fixtures_model import SmallWorld, build_small_world

# Any ERROR logged while the bot runs fails the test (see tests/conftest.py).
pytestmark = pytest.mark.usefixtures("no_error_logs")

ADMIN_ROLE = "anime-admin"
COMMANDS = {
    "rate",
    "unrate",
    "recommend",
    "similar",
    "next",
    "night",
    "profile",
    "import",
    "settings",
    "help",
    "retrain",
    "model",
    "compat",
    "twin",
    "fans",
    "status",
    "ptw",
    "season",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> SmallWorld:
    w = build_small_world(tmp_path_factory.mktemp("discord-world"))
    yield w
    w.close()


@dataclass
class Env:
    fake: FakeDiscord
    client: AnirecDiscord
    core: Core
    world: SmallWorld
    users: dict[str, FakeUser]

    def user_id(self, name: str) -> int:
        """The internal users.id of a Discord member (created on first contact)."""
        user = self.world.store.users.find("discord", str(self.users[name].id))
        assert user is not None, f"{name} has no row in SQLite"
        return user.id

    def rating(self, name: str, anime_id: int):
        ratings = self.world.store.ratings.of_user(self.user_id(name))
        return next((r for r in ratings if r.anime_id == anime_id), None)

    async def slash(
        self, name: str, options: dict | None = None, *, user: str, dm: bool = False
    ) -> tuple[Pushed, dict]:
        pushed = await self.fake.push_slash(name, options or {}, user=self.users[user], dm=dm)
        return pushed, await self.fake.response(pushed)

    async def press(self, custom_id: str, *, user: str) -> tuple[Pushed, dict]:
        pushed = await self.fake.push_button(custom_id, user=self.users[user])
        return pushed, await self.fake.response(pushed)


@contextlib.asynccontextmanager
async def running(
    world: SmallWorld,
    *,
    model: bool = True,
    limiter: RateLimiter | None = None,
    defer_after: float = 30.0,
    voice: tuple[str, ...] = (),
) -> AsyncIterator[Env]:
    """A fake Discord with alice, bob, cara (+ an admin by role, one by id), and the bot."""
    async with FakeDiscord() as fake:
        role = fake.add_role(ADMIN_ROLE)
        users = {
            name: fake.add_member(name, in_voice=name in voice)
            for name in ("alice", "bob", "cara", "dave")
        }
        users["rolf"] = fake.add_member("rolf", roles=(role,))
        users["ida"] = fake.add_member("ida")
        users["meg"] = fake.add_member("meg", manage_guild=True)
        settings = Settings(
            _env_file=None,
            admins=f"discord:{users['ida'].id}",
            admin_role=ADMIN_ROLE,
            database=world.db_path,
        )
        recommender = Recommender(world.store, world.checkpoint if model else None)
        core = Core(
            world.store, recommender, settings, limiter=limiter or RateLimiter(capacity=1000)
        )
        client = build_discord_client(
            core, settings, defer_after=defer_after, guild_ready_timeout=0.2
        )
        task = asyncio.create_task(client.start(fake.token))
        try:
            await fake.wait_ready()
            await fake.wait_for_call("PUT", rf"/applications/{fake.APP_ID}/commands")
            yield Env(fake, client, core, world, users)
        finally:
            await client.close()
            await asyncio.wait_for(task, 10)


def plain(text: str) -> str:
    """Message text without Discord markdown escapes (``animelist\\_bob`` -> ``animelist_bob``)."""
    return re.sub(r"\\(.)", r"\1", text)


def rows_of(message: dict) -> list[list[dict]]:
    return [row["components"] for row in message.get("components", [])]


def button(message: dict, label: str) -> str:
    for row in rows_of(message):
        for c in row:
            if c.get("label") == label:
                return c["custom_id"]
    raise AssertionError(f"no button {label!r} in {rows_of(message)}")


async def test_login_ready_guild_and_synced_schema(
    world: SmallWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running(world) as env:
        fake, client = env.fake, env.client
        await asyncio.wait_for(client.wait_until_ready(), 10)
        guild = client.get_guild(fake.GUILD_ID)
        assert guild is not None and guild.name == "Anime Club"
        assert {r.name for r in guild.roles} >= {ADMIN_ROLE}
        # IDENTIFY asked only for the intents we need: guilds (1) and voice states (128)
        assert fake.identify is not None and fake.identify["intents"] == 1 | 128
        assert [c.path for c in fake.calls[:2]] == ["/users/@me", "/oauth2/applications/@me"]

        schema = {c["name"]: c for c in fake.commands}
        assert set(schema) == COMMANDS
        rate = {o["name"]: o for o in schema["rate"]["options"]}
        assert rate["title"]["type"] == 3 and rate["title"]["required"] is True
        assert rate["title"]["autocomplete"] is True and rate["title"]["max_length"] == 100
        assert rate["score"]["type"] == 4 and not rate["score"]["required"]
        assert (rate["score"]["min_value"], rate["score"]["max_value"]) == (1, 10)
        count = schema["recommend"]["options"][0]
        assert (count["name"], count["min_value"], count["max_value"]) == ("count", 1, 25)
        assert schema["import"]["options"][0]["type"] == 11  # an attachment, required
        assert schema["import"]["options"][0]["required"] is True
        night = {o["name"]: o["type"] for o in schema["night"]["options"]}
        assert night == {"voice": 5, "member1": 6, "member2": 6, "member3": 6, "budget": 3}
        scope = next(o for o in schema["settings"]["options"] if o["name"] == "scope")
        assert {c["value"] for c in scope["choices"]} == {"user", "chat"}
        assert all(len(c["description"]) <= 100 for c in fake.commands)
        # admin commands are hidden from members without Manage Server (32); the rest are not
        hidden = {c["name"]: c.get("default_member_permissions") for c in fake.commands}
        assert int(hidden["retrain"]) == int(hidden["model"]) == 32
        assert all(hidden[n] is None for n in COMMANDS - {"retrain", "model"})

        # a fake-Discord client refuses what the real one would: out-of-range scores
        with pytest.raises(ValueError, match="max_value"):
            await fake.push_slash("rate", {"title": "x", "score": 11}, user=env.users["alice"])
    assert fake.heartbeats >= 1
    assert FakeDiscord.TOKEN not in caplog.text  # the token is never logged


async def test_rate_with_score_writes_the_rating(world: SmallWorld) -> None:
    aid = world.anime_by_genre["Mecha"][0]
    async with running(world) as env:
        _, body = await env.slash("rate", {"title": "Mecha Story A", "score": 9}, user="alice")
        assert body["type"] == 4
        assert "Rated Mecha Story A: 9/10" in body["data"]["content"]
        assert not body["data"].get("flags")  # public
        assert env.rating("alice", aid).score == 9
        assert env.rating("alice", aid).source == "chat"
        recommend = button(body["data"], "Recommend for me")
        assert recommend.startswith(f"ar|{env.users['alice'].id}|rc:") and len(recommend) <= 100

        # an exact pick from autocomplete ("#ID") and an unknown title ("did you mean")
        _, body = await env.slash("rate", {"title": f"#{aid}", "score": 7}, user="alice")
        assert "9/10" not in body["data"]["content"] and "7/10 (was 9)" in body["data"]["content"]
        _, body = await env.slash("rate", {"title": "Mecah Stroy", "score": 6}, user="alice")
        assert "Did you mean" in body["data"]["content"]
        assert any("Mecha Story" in c["label"] for r in rows_of(body["data"]) for c in r)


async def test_autocomplete_offers_titles_without_adult_ones(world: SmallWorld) -> None:
    async with running(world) as env:
        pushed = await env.fake.push_autocomplete(
            "rate", {"title": "mecha story"}, "title", user=env.users["bob"]
        )
        body = await env.fake.response(pushed)
        assert body["type"] == 8
        choices = body["data"]["choices"]
        assert choices and all(c["name"].startswith("Mecha Story") for c in choices[:5])
        assert all(re.fullmatch(r"#\d+", c["value"]) for c in choices)
        pushed = await env.fake.push_autocomplete(
            "similar", {"title": "night romance"}, "title", user=env.users["bob"]
        )
        names = [c["name"] for c in (await env.fake.response(pushed))["data"]["choices"]]
        assert not any(n.startswith("Night Romance") for n in names)  # NSFW: not opted in


async def test_rate_buttons_only_the_caller_can_press(world: SmallWorld) -> None:
    aid = world.anime_by_genre["Sports"][1]
    async with running(world) as env:
        pushed, _ = await env.slash("rate", {"title": f"#{aid}"}, user="alice")
        message = env.fake.message_for(pushed)
        ids = env.fake.custom_ids(message)
        assert [b["label"] for r in rows_of(message) for b in r] == [str(s) for s in range(1, 11)]
        assert all(i.startswith(f"ar|{env.users['alice'].id}|rt:{aid}:") for i in ids)
        assert all(len(i) <= 100 for i in ids)

        _, denied = await env.press(button(message, "7"), user="bob")
        assert denied["type"] == 4 and denied["data"]["flags"] & EPHEMERAL
        assert "belong to" in denied["data"]["content"]
        assert env.world.store.users.find("discord", str(env.users["bob"].id)) is None

        _, done = await env.press(button(message, "8"), user="alice")
        assert done["type"] == 7  # the keyboard message is updated in place
        assert "8/10" in done["data"]["content"]
        assert env.rating("alice", aid).score == 8
        assert [b["label"] for r in rows_of(env.fake.message_for(pushed)) for b in r] == [
            "Recommend for me"
        ]


async def test_recommend_embeds_buttons_and_actions(world: SmallWorld) -> None:
    mecha = world.anime_by_genre["Mecha"]
    async with running(world) as env:
        for aid in mecha[:4]:
            await env.slash("rate", {"title": f"#{aid}", "score": 10}, user="cara")
        _, body = await env.slash("recommend", {"count": 3}, user="cara")
        data = body["data"]
        assert body["type"] == 4 and "Picks for" in data["content"]
        assert len(data["embeds"]) == 3
        picked = []
        for embed in data["embeds"]:
            fields = {f["name"]: f["value"] for f in embed["fields"]}
            assert embed["title"] and embed["url"].startswith("https://myanimelist.net/anime/")
            assert fields["Genres"] and fields["Type"]
            score = float(fields["Predicted score"].removesuffix("/10"))
            assert 1.0 <= score <= 10.0
            assert embed["description"].startswith("Why: ")
            picked.append(int(embed["url"].rsplit("/", 1)[1]))
        assert not set(picked) & set(mecha[:4])  # nothing already rated
        assert sum(p in mecha for p in picked) >= 2  # the planted taste shows
        labels = [b["label"] for r in rows_of(data) for b in r]
        assert labels == [
            "#1 Seen it / rate",
            "#1 Not interested",
            "#1 Less like this",
            "#1 Plan to watch",
            "#2 Seen it / rate",
            "#2 Not interested",
            "#2 Less like this",
            "#2 Plan to watch",
            "#3 Seen it / rate",
            "#3 Not interested",
            "#3 Less like this",
            "#3 Plan to watch",
            "More",
            "Quick start: rate 10 titles",  # fewer than 5 ratings
        ]

        _, nope = await env.press(button(data, "#1 Not interested"), user="cara")
        assert nope["data"]["flags"] & EPHEMERAL
        assert env.rating("cara", picked[0]).status == "not_interested"

        _, more = await env.press(button(data, "More"), user="cara")
        later = [int(e["url"].rsplit("/", 1)[1]) for e in more["data"]["embeds"]]
        assert later and not set(later) & set(picked)

        # more picks than Discord's 10 embeds: the rest are listed in the text
        _, big = await env.slash("recommend", {"count": 12}, user="cara")
        assert len(big["data"]["embeds"]) == 10
        assert "\n11. " in big["data"]["content"] and "\n12. " in big["data"]["content"]
        assert len(rows_of(big["data"])) <= 5
        assert all(len(r) <= 5 for r in rows_of(big["data"]))

        seen, ask = await env.press(button(data, "#2 Seen it / rate"), user="cara")
        assert ask["type"] == 4
        assert [b["label"] for r in rows_of(ask["data"]) for b in r] == [
            str(s) for s in range(1, 11)
        ]
        _, rated = await env.press(button(env.fake.message_for(seen), "3"), user="cara")
        assert rated["type"] == 7 and env.rating("cara", picked[1]).score == 3


async def test_night_lobby_join_pick_and_vote(world: SmallWorld) -> None:
    romance, comedy = world.anime_by_genre["Romance"], world.anime_by_genre["Comedy"]
    async with running(world) as env:
        await env.slash("rate", {"title": f"#{romance[0]}", "score": 9}, user="alice")
        await env.slash("rate", {"title": f"#{comedy[0]}", "score": 9}, user="bob")
        await env.slash("rate", {"title": f"#{romance[1]}", "score": 8}, user="dave")
        pushed, lobby = await env.slash("night", {}, user="alice")
        assert lobby["type"] == 4
        message = env.fake.message_for(pushed)
        assert [b["label"] for r in rows_of(message) for b in r] == ["Join", "Pick!"]

        _, joined = await env.press(button(message, "Join"), user="bob")
        assert joined["type"] == 7 and "Bob" in joined["data"]["embeds"][0]["description"]
        await env.press(button(message, "Join"), user="dave")
        _, again = await env.press(button(message, "Join"), user="dave")
        assert again["data"]["flags"] & EPHEMERAL and "already" in again["data"]["content"]

        go, picks = await env.press(button(message, "Pick!"), user="alice")
        data = picks["data"]
        assert picks["type"] == 4 and data["embeds"]
        seen = {romance[0], comedy[0], romance[1]}
        for embed in data["embeds"]:
            assert int(embed["url"].rsplit("/", 1)[1]) not in seen
            each = next(f["value"] for f in embed["fields"] if f["name"] == "Predicted for each")
            assert re.fullmatch(r"Alice \d+\.\d \u00b7 Bob \d+\.\d \u00b7 Dave \d+\.\d", each)
        select = rows_of(data)[-1][0]
        assert select["type"] == 3 and len(select["options"]) == len(data["embeds"])
        choice = select["options"][0]

        vote = await env.fake.push_select(
            select["custom_id"], [choice["value"]], user=env.users["bob"]
        )
        voted = await env.fake.response(vote)
        assert voted["data"]["flags"] & EPHEMERAL
        assert f"You voted for {choice['label']}" in voted["data"]["content"]

        # a member vetoes the first pick: the list is redrawn without it, the next best joins
        picks_message = env.fake.message_for(go)
        first = data["embeds"][0]["title"]
        assert "for Alice: you liked" in json.dumps(data["embeds"])
        _, vetoed = await env.press(button(picks_message, "#1 Veto"), user="dave")
        assert vetoed["type"] == 7
        titles = [e["title"] for e in vetoed["data"]["embeds"]]
        assert first not in titles and len(titles) == len(data["embeds"])
        assert titles[: len(titles) - 1] == [e["title"] for e in data["embeds"][1:]]
        _, decided = await env.press(button(picks_message, "Decide"), user="alice")
        assert "Tonight: " in json.dumps(decided["data"])
        redrawn = rows_of(vetoed["data"])[-1][0]
        late = await env.fake.push_select(
            redrawn["custom_id"], [redrawn["options"][0]["value"]], user=env.users["dave"]
        )
        assert "vote is over" in (await env.fake.response(late))["data"]["content"]


async def test_night_takes_the_voice_channel(world: SmallWorld) -> None:
    sports = world.anime_by_genre["Sports"]
    async with running(world, voice=("alice", "bob", "cara")) as env:
        await env.slash("rate", {"title": f"#{sports[0]}", "score": 10}, user="bob")
        _, body = await env.slash("night", {}, user="alice")
        data = body["data"]
        assert data["embeds"] and rows_of(data)[-1][0]["type"] == 3
        for embed in data["embeds"]:
            assert int(embed["url"].rsplit("/", 1)[1]) != sports[0]
            each = next(f["value"] for f in embed["fields"] if f["name"] == "Predicted for each")
            assert sorted(part.split()[0] for part in each.split(" \u00b7 ")) == [
                "Alice",
                "Bob",
                "Cara",
            ]
        # voice:True outside a voice channel is refused kindly
        _, body = await env.slash("night", {"voice": True}, user="dave")
        assert body["data"]["flags"] & EPHEMERAL and "voice channel" in body["data"]["content"]
        await env.fake.join_voice(env.users["dave"])  # VOICE_STATE_UPDATE over the gateway
        _, body = await env.slash("night", {"voice": True}, user="dave")
        each = next(
            f["value"]
            for f in body["data"]["embeds"][0]["fields"]
            if f["name"] == "Predicted for each"
        )
        assert sorted(part.split()[0] for part in each.split(" \u00b7 ")) == [
            "Alice",
            "Bob",
            "Cara",
            "Dave",
        ]


async def test_import_attachment_writes_ratings(world: SmallWorld) -> None:
    a, b = world.anime_by_genre["Horror"][:2]
    xml = (
        f"<?xml version='1.0' encoding='UTF-8'?><myanimelist>"
        f"<myinfo><user_name>bob</user_name></myinfo>"
        f"<anime><series_animedb_id>{a}</series_animedb_id><my_score>9</my_score>"
        f"<my_status>Completed</my_status></anime>"
        f"<anime><series_animedb_id>{b}</series_animedb_id><my_score>0</my_score>"
        f"<my_status>Plan to Watch</my_status></anime></myanimelist>"
    ).encode()
    async with running(world) as env:
        upload = env.fake.upload("animelist_bob.xml", xml)
        _, body = await env.slash("import", {"file": upload}, user="bob")
        assert "Imported animelist_bob.xml: 2 entries, 1 with a score" in plain(
            body["data"]["content"]
        )
        assert env.rating("bob", a).score == 9
        assert env.rating("bob", b).status == "plan_to_watch"
        _, body = await env.slash(
            "import", {"file": env.fake.upload("x.xml", b"<nope")}, user="bob"
        )
        assert "couldn't read that file" in body["data"]["content"]
        # the attachment can't be downloaded: a kind, private apology, nothing half-done
        gone = env.fake.upload("gone.xml", xml)
        del env.fake.uploads[gone.id]
        _, body = await env.slash("import", {"file": gone}, user="bob")
        assert body["data"]["flags"] & EPHEMERAL and "Sorry" in body["data"]["content"]


async def test_admin_commands_gated_by_id_or_role(world: SmallWorld) -> None:
    async with running(world) as env:
        _, body = await env.slash("model", user="bob")
        assert body["data"]["flags"] & EPHEMERAL and "Only admins" in body["data"]["content"]
        for admin in ("rolf", "ida"):  # by role, by configured id
            _, body = await env.slash("model", user=admin)
            embed = body["data"]["embeds"][0]
            assert embed["title"] == "Model"
            assert any(f["name"] == "Serving" and "version" in f["value"] for f in embed["fields"])
        _, body = await env.slash("retrain", user="bob")
        assert "Only admins" in body["data"]["content"]
        _, body = await env.slash("retrain", user="rolf")
        assert "not configured" in body["data"]["content"]


async def test_settings_profile_help_and_dm(world: SmallWorld) -> None:
    async with running(world) as env:
        _, body = await env.slash("settings", {"nsfw": True}, user="dave")
        assert body["data"]["flags"] & EPHEMERAL and "for you: on" in body["data"]["content"]
        assert env.world.store.users.find("discord", str(env.users["dave"].id)).settings["nsfw"]
        _, body = await env.slash("settings", {"nsfw": True, "scope": "chat"}, user="dave")
        assert "Only the group's admins" in body["data"]["content"]
        _, body = await env.slash("settings", {"nsfw": True, "scope": "chat"}, user="meg")
        assert "this chat: on" in body["data"]["content"]
        chat = env.world.store.chats.ensure("discord", str(env.fake.TEXT_CHANNEL_ID))
        assert chat.settings["nsfw"] is True

        _, body = await env.slash("help", user="dave")
        assert body["data"]["embeds"][0]["title"] == "Anirec help"
        assert "/retrain" not in body["data"]["embeds"][0]["description"]
        _, body = await env.slash("profile", user="dave", dm=True)  # works in a DM
        assert body["type"] == 4 and "Dave" in body["data"]["embeds"][0]["title"] + body["data"][
            "embeds"
        ][0].get("description", "")
        _, body = await env.slash("night", user="dave", dm=True)
        assert "In a DM" in body["data"]["content"]


async def test_per_user_cooldown_is_friendly(world: SmallWorld) -> None:
    async with running(world, limiter=RateLimiter(capacity=2, per_second=0.001)) as env:
        for _ in range(2):
            _, body = await env.slash("help", user="alice")
            assert body["data"]["embeds"]
        _, body = await env.slash("help", user="alice")
        assert body["data"]["flags"] & EPHEMERAL and "Easy there" in body["data"]["content"]
        _, body = await env.slash("help", user="bob")  # per user: bob is fine
        assert body["data"]["embeds"]


async def test_slow_work_is_deferred_then_edited(world: SmallWorld) -> None:
    async with running(world, defer_after=0) as env:
        pushed, body = await env.slash("recommend", {"count": 2}, user="alice")
        assert body["type"] == 5  # "thinking..." first
        assert len((await env.fake.answer(pushed))["embeds"]) == 2
        edit = await env.fake.wait_for_call(
            "PATCH", rf"/webhooks/{env.fake.APP_ID}/{pushed.token}/messages/@original"
        )
        assert len(edit.json["embeds"]) == 2 and edit.json["components"]
        assert len(env.fake.message_for(pushed)["embeds"]) == 2
        # an ephemeral answer replaces the public "thinking" message with a private follow-up
        pushed, body = await env.slash("settings", user="alice")
        assert body["type"] == 5
        await env.fake.wait_for_call(
            "DELETE", rf"/webhooks/{env.fake.APP_ID}/{pushed.token}/messages/@original"
        )
        follow = await env.fake.wait_for_call(
            "POST", rf"/webhooks/{env.fake.APP_ID}/{pushed.token}"
        )
        assert follow.json["flags"] & EPHEMERAL and "NSFW" in follow.json["content"]
        # a deferred press that edits: the pressed message is edited through @original
        aid = world.anime_by_genre["Comedy"][3]
        pushed, _ = await env.slash("rate", {"title": f"#{aid}"}, user="alice")
        await env.fake.wait_for_call("PATCH", rf"/webhooks/\d+/{pushed.token}/messages/@original")
        press, body = await env.press(button(env.fake.message_for(pushed), "6"), user="alice")
        assert body["type"] == 6
        await env.fake.wait_for_call("PATCH", rf"/webhooks/\d+/{press.token}/messages/@original")
        assert "6/10" in env.fake.message_for(pushed)["content"]
        assert env.rating("alice", aid).score == 6


async def test_no_model_and_notifications(world: SmallWorld) -> None:
    async with running(world, model=False) as env:
        _, body = await env.slash("recommend", user="alice")
        assert "No model is trained yet" in body["data"]["content"]
        await asyncio.wait_for(env.client.wait_until_ready(), 10)
        # the core posts into a channel (retrain news) and, for a user id, into a DM
        assert await env.core.notify("discord", str(env.fake.TEXT_CHANNEL_ID), "Promoted v2")
        call = await env.fake.wait_for_call(
            "POST", rf"/channels/{env.fake.TEXT_CHANNEL_ID}/messages"
        )
        assert call.json["content"] == "Promoted v2"
        ida = env.users["ida"].id
        mark = len(env.fake.calls)
        notify = env.core.ctx.senders.notifier(Caller("discord", str(ida), "ida"))  # in a DM
        assert notify is not None
        await notify("Rejected v3")
        dm = env.fake.dm_channels[ida]
        call = await env.fake.wait_for_call("POST", rf"/channels/{dm}/messages", since=mark)
        assert call.json["content"] == "Rejected v3"
        paths = [c.path for c in env.fake.calls[mark:]]
        assert paths[0] == "/users/@me/channels"  # the DM opened directly, no 404 first
        assert f"/channels/{ida}/messages" not in paths
        assert all(c.status < 400 for c in env.fake.calls[mark:])


async def test_picks_show_the_picture_as_a_thumbnail(world: SmallWorld) -> None:
    poster = "https://cdn.myanimelist.net/images/anime/4/19644.jpg"
    cards = (
        AnimeCard(1, "Cowboy Bebop", ("Action",), "TV", 26, picture=poster),
        AnimeCard(2, "No Poster", ("Drama",), "TV", 12),
    )
    async with running(world, model=False) as env:
        await asyncio.wait_for(env.client.wait_until_ready(), 10)
        channel = str(env.fake.TEXT_CHANNEL_ID)
        await env.client.send_to(channel, Reply("1. Cowboy Bebop\n2. No Poster", picks=cards))
        call = await env.fake.wait_for_call("POST", rf"/channels/{channel}/messages")
        first, second = call.json["embeds"]
        assert first["thumbnail"] == {"url": poster}
        assert "thumbnail" not in second


async def test_commands_sync_only_when_the_table_changed(world: SmallWorld) -> None:
    """A restart with the same commands publishes nothing; a changed table publishes again."""
    settings = Settings(_env_file=None)
    put = r"/applications/\d+/commands"
    async with FakeDiscord() as fake:

        async def start(extra: bool = False) -> tuple[AnirecDiscord, asyncio.Task]:
            core = Core(world.store, Recommender(world.store, None), settings)
            client = build_discord_client(core, settings, guild_ready_timeout=0.2)
            if extra:

                @client.tree.command(name="extra", description="A new command")
                async def extra_command(interaction) -> None:  # pragma: no cover - never run
                    pass

            return client, asyncio.create_task(client.start(fake.token))

        for run, extra in enumerate((False, False, True), start=1):
            client, task = await start(extra)
            try:
                await fake.wait_ready(sessions=run)
                await asyncio.wait_for(client.wait_until_ready(), 10)
            finally:
                await client.close()
                await task
            puts = [c for c in fake.calls if c.method == "PUT" and re.fullmatch(put, c.path)]
            assert len(puts) == (1 if run < 3 else 2), run
        assert "extra" in fake.command_names()


async def test_buttons_work_after_a_restart(world: SmallWorld) -> None:
    """Custom ids carry everything: a new process (client and core) handles an old button."""
    aid = world.anime_by_genre["Horror"][5]
    settings = Settings(_env_file=None)
    async with FakeDiscord() as fake:
        erin = fake.add_member("erin")

        async def start() -> tuple[AnirecDiscord, asyncio.Task]:
            core = Core(world.store, Recommender(world.store, world.checkpoint), settings)
            client = build_discord_client(core, settings, guild_ready_timeout=0.2)
            return client, asyncio.create_task(client.start(fake.token))

        client, task = await start()
        await fake.wait_ready()
        await fake.wait_synced()
        pushed = await fake.push_slash("rate", {"title": f"#{aid}"}, user=erin)
        await fake.response(pushed)
        await client.close()
        await task

        client, task = await start()
        try:
            await fake.wait_ready(sessions=2)
            keyboard = fake.message_for(pushed)
            press = await fake.push_button(button(keyboard, "5"), user=erin)
            assert (await fake.response(press))["type"] == 7
            user = world.store.users.find("discord", str(erin.id))
            assert [r.score for r in world.store.ratings.of_user(user.id)] == [5]
        finally:
            await client.close()
            await task


async def test_a_bot_stopped_while_waiting_for_its_guilds_stops_cleanly(world: SmallWorld) -> None:
    """discord.py dispatches ``ready`` a ``guild_ready_timeout`` after the last guild; a bot
    closed inside that wait must not dispatch on the closed client afterwards."""
    settings = Settings(_env_file=None)
    async with FakeDiscord() as fake:
        core = Core(world.store, Recommender(world.store, None), settings)
        client = build_discord_client(core, settings, guild_ready_timeout=0.5)
        task = asyncio.create_task(client.start(fake.token))
        await fake.wait_ready()
        waiting = client._connection._ready_task
        assert waiting is not None and not waiting.done()
        await client.close()
        await asyncio.wait_for(task, 10)
        await asyncio.sleep(0.8)  # past the guild wait
        assert waiting.done() and not client.is_ready()
        assert waiting.cancelled() or waiting.exception() is None


def test_custom_ids_fit_discord(tmp_path: Path) -> None:
    """Every action id the core can make still fits a custom_id with the owner prefix."""
    from bot.adapters.discord_render import button_id
    from bot.core import MAX_ACTION_LEN, Button

    action = "x" * MAX_ACTION_LEN
    assert len(button_id(Button("b", action, owner="9" * 20))) <= 100


MENTIONS = ("@everyone", "@here", "<@&{role}>", "<@{user}>")


def _sent_messages(fake: FakeDiscord) -> list[dict]:
    """The JSON of every request that creates or edits a message (interaction callbacks with
    data, follow-ups, edits of @original, channel posts)."""
    out = []
    for call in fake.calls:
        body = call.json if isinstance(call.json, dict) else None
        if body is None or call.method not in ("POST", "PATCH"):
            continue
        if call.path.endswith("/callback"):
            if body.get("type") in (4, 7):
                out.append(body.get("data") or {})
        elif call.path.startswith(("/webhooks/", "/channels/")):
            out.append(body)
    return out


async def test_no_reply_can_ping_anyone(world: SmallWorld) -> None:
    """`/rate @everyone 9` echoes the unknown title: the text is defused and every message
    the bot sends carries allowed_mentions {"parse": []}, so nothing pings."""
    async with running(world) as env:
        role = env.fake.add_role("mods")
        hostile = [m.format(role=role, user=env.users["cara"].id) + " Bebop" for m in MENTIONS]
        for text in hostile:
            pushed = await env.fake.push_slash(
                "rate", {"title": text, "score": 9}, user=env.users["alice"]
            )
            await env.fake.answer(pushed)
        pushed = await env.fake.push_slash("similar", {"title": "@here"}, user=env.users["bob"])
        await env.fake.answer(pushed)
        await env.client.send_to(
            str(env.fake.TEXT_CHANNEL_ID), Reply("@everyone <@&1> a retrain finished")
        )
        await env.fake.wait_for_call("POST", rf"/channels/{env.fake.TEXT_CHANNEL_ID}/messages")
        sent = _sent_messages(env.fake)
        assert len(sent) >= len(hostile) + 2
        for body in sent:
            mentions = body.get("allowed_mentions")
            assert mentions is not None and mentions["parse"] == [], body
            assert not mentions.get("users") and not mentions.get("roles"), body
            shown = json.dumps(
                [body.get("content"), body.get("embeds"), body.get("components")],
                ensure_ascii=False,
            )
            for raw in ("@everyone", "@here", f"<@&{role}>", f"<@{env.users['cara'].id}>"):
                assert raw not in shown, (raw, body)
        echoed = " ".join(json.dumps(b, ensure_ascii=False) for b in sent)
        assert "@\u2060everyone" in echoed  # still readable, just inert


def _text(body: dict) -> str:
    data = body["data"]
    embeds = "".join(e.get("description", "") for e in data.get("embeds", []))
    return plain((data.get("content") or "") + embeds)


async def test_compat_and_less_like_this(world: SmallWorld) -> None:
    """/compat respects the other person's sharing; "Less like this" steers the caller only."""
    mecha, sports = world.anime_by_genre["Mecha"], world.anime_by_genre["Sports"]
    async with running(world) as env:
        for aid in mecha[:3]:
            await env.slash("rate", {"title": f"#{aid}", "score": 10}, user="alice")
        await env.slash("rate", {"title": f"#{sports[0]}", "score": 3}, user="alice")
        await env.slash("rate", {"title": f"#{mecha[0]}", "score": 9}, user="bob")
        await env.slash("rate", {"title": f"#{sports[0]}", "score": 10}, user="bob")
        _, denied = await env.slash("compat", {"member": env.users["bob"]}, user="alice")
        assert "doesn't share their taste" in _text(denied)
        _, shared = await env.slash("settings", {"share": True}, user="bob")
        assert shared["data"]["flags"] & EPHEMERAL and "groups" in _text(shared)
        assert world.store.users.get(env.user_id("bob")).settings["share"] is True
        _, shown = await env.slash("compat", {"member": env.users["bob"]}, user="alice")
        text = _text(shown)
        assert "% compatible" in text and "Both loved:" in text
        assert "Biggest disagreement: Sports Story A" in text

        _, picks = await env.slash("recommend", {"count": 3}, user="alice")
        less = button(picks["data"], "#1 Less like this")
        _, nope = await env.press(less, user="bob")
        assert "belong to" in _text(nope)
        _, done = await env.press(less, user="alice")
        assert done["data"]["flags"] & EPHEMERAL and "less like" in _text(done)
        steer = world.store.users.get(env.user_id("alice")).settings["less"]
        assert steer["titles"] or steer["genres"]
        assert "less" not in world.store.users.get(env.user_id("bob")).settings
        _, listed = await env.slash("settings", {}, user="alice")
        undo = [b["custom_id"] for r in rows_of(listed["data"]) for b in r]
        assert len(undo) == 1
        _, undone = await env.press(undo[0], user="alice")
        assert "Undone" in _text(undone)
        steer = world.store.users.get(env.user_id("alice")).settings["less"]
        assert steer == {"titles": [], "genres": []}


def newcomer(env: Env, name: str, user_id: int) -> FakeUser:
    """A member added for one test, with an id no other test uses (the store is the module's)."""
    user = env.users[name] = env.fake.add_member(name, user_id=user_id)
    return user


def embed_ids(data: dict) -> list[int]:
    return [int(e["url"].rsplit("/", 1)[1]) for e in data.get("embeds", [])]


async def test_fans_in_a_server_lists_only_members_who_share(world: SmallWorld) -> None:
    loved = world.anime_by_genre["Romance"][12]
    async with running(world) as env:
        for uid, name in enumerate(("fanny", "shyla", "lowell", "asker"), start=1):
            newcomer(env, name, 1_300_000_000_000_000_000 + uid)
        for name, score, share in (
            ("fanny", 9, True),
            ("shyla", 10, False),  # loved it most, but never shown to others
            ("lowell", 3, True),  # shares, but did not love it
            ("asker", 8, False),
        ):
            await env.slash("rate", {"title": f"#{loved}", "score": score}, user=name)
            await env.slash("settings", {"share": share}, user=name)
        _, body = await env.slash("fans", {"title": f"#{loved}"}, user="asker")
        text = _text(body)
        assert f"Fans of {title_of(world, loved)} here:" in text, text
        assert "- Fanny: 9/10" in text
        assert "Shyla" not in text and "Lowell" not in text and "Asker" not in text
        await env.slash("settings", {"share": True}, user="shyla")  # opting in shows her
        _, body = await env.slash("fans", {"title": f"#{loved}"}, user="asker")
        text = _text(body)
        assert text.index("- Shyla: 10/10") < text.index("- Fanny: 9/10")
        _, body = await env.slash("fans", {"title": "Romanse Stroy M"}, user="asker")
        assert "Did you mean" in _text(body) and "Fanny" not in _text(body)
        _, body = await env.slash("fans", {"title": f"#{loved}"}, user="asker", dm=True)
        assert body["data"]["flags"] & EPHEMERAL and "group" in _text(body)


def title_of(world: SmallWorld, anime_id: int) -> str:
    return next(a.title for a in world.anime if a.anime_id == anime_id)


async def test_twin_in_a_server_shows_only_members_who_share(world: SmallWorld) -> None:
    horror, comedy = world.anime_by_genre["Horror"], world.anime_by_genre["Comedy"]
    mine = {horror[10]: 10, horror[11]: 9, horror[12]: 10, comedy[10]: 2}
    async with running(world) as env:
        for uid, name in enumerate(("mina", "tomas", "sasha", "farid"), start=11):
            newcomer(env, name, 1_300_000_000_000_000_000 + uid)
        people = {
            "mina": (mine, False),
            "tomas": ({horror[10]: 10, horror[13]: 9, horror[11]: 9, comedy[10]: 3}, True),
            "sasha": (mine, False),  # the closest match, but she does not share
            "farid": ({comedy[10]: 10, comedy[11]: 10, horror[10]: 2}, True),
        }
        for name, (ratings, share) in people.items():
            for aid, score in ratings.items():
                await env.slash("rate", {"title": f"#{aid}", "score": score}, user=name)
            await env.slash("settings", {"share": share}, user=name)
        _, body = await env.slash("twin", user="mina")
        text = _text(body)
        assert "Your taste twin here: Tomas." in text, text
        assert "% compatible" in text
        assert "Sasha" not in text and "Farid" not in text
        assert "not shown to others" in text  # mina does not share herself
        _, body = await env.slash("twin", user="mina", dm=True)
        assert body["data"]["flags"] & EPHEMERAL and "group" in _text(body)


async def test_recommend_offers_the_quick_start_deck(world: SmallWorld) -> None:
    async with running(world) as env:
        newcomer(env, "nova", 1_300_000_000_000_000_021)
        _, picks = await env.slash("recommend", {"count": 3}, user="nova")
        offer = button(picks["data"], "Quick start: rate 10 titles")
        _, denied = await env.press(offer, user="bob")
        assert "belong to" in _text(denied)
        first, body = await env.press(offer, user="nova")
        assert body["type"] == 4  # the first card is a message of its own
        card = env.fake.message_for(first)
        assert "Quick start 1/10" in plain(card["content"])
        [shown] = embed_ids(card)
        assert [[b["label"] for b in row] for row in rows_of(card)] == [
            ["1", "2", "3", "4", "5"],
            ["6", "7", "8", "9", "10"],
            ["Haven't seen it"],
        ]
        _, rated = await env.press(button(card, "8"), user="nova")
        assert rated["type"] == 7  # the card is replaced by the next one
        content = plain(rated["data"]["content"])
        assert f"Rated {title_of(world, shown)}: 8/10." in content
        assert "Quick start 2/10" in content
        assert env.rating("nova", shown).score == 8
        [second] = embed_ids(rated["data"])
        assert second != shown
        _, skipped = await env.press(
            button(env.fake.message_for(first), "Haven't seen it"), user="nova"
        )
        assert "Quick start 3/10" in plain(skipped["data"]["content"])
        ratings = world.store.ratings.of_user(env.user_id("nova"))
        assert {r.anime_id: r.score for r in ratings} == {shown: 8}  # a skip stores nothing
        for _ in range(8):  # skip to the end of the deck: a way on to the picks
            message = env.fake.message_for(first)
            _, last = await env.press(button(message, "Haven't seen it"), user="nova")
        assert "That's the deck!" in plain(last["data"]["content"])
        _, picks = await env.press(button(last["data"], "Recommend for me"), user="nova")
        assert picks["data"]["embeds"] and shown not in embed_ids(picks["data"])


async def test_title_language_setting_shows_english_titles(world: SmallWorld) -> None:
    aid = world.anime_by_genre["Horror"][14]
    romaji, english = title_of(world, aid), "The Haunted House of the Dark Sea"
    world.store.catalog.add_aliases([(english, aid), ("HHDS", aid)], "import")
    async with running(world) as env:
        newcomer(env, "enzo", 1_300_000_000_000_000_031)
        _, body = await env.slash("rate", {"title": f"#{aid}", "score": 6}, user="enzo")
        assert f"Rated {romaji}: 6/10" in plain(body["data"]["content"])
        _, body = await env.slash("settings", {"titles": "english"}, user="enzo")
        assert body["data"]["flags"] & EPHEMERAL
        assert world.store.users.get(env.user_id("enzo")).settings["titles"] == "english"
        _, body = await env.slash("rate", {"title": f"#{aid}", "score": 9}, user="enzo")
        content = plain(body["data"]["content"])
        assert f"{english}: 9/10" in content and romaji not in content
        pushed = await env.fake.push_autocomplete(
            "rate", {"title": "haunted house"}, "title", user=env.users["enzo"]
        )
        choices = (await env.fake.response(pushed))["data"]["choices"]
        assert choices[0]["name"].startswith(english) and choices[0]["value"] == f"#{aid}"
        # someone on romaji still sees the catalog's title
        _, body = await env.slash("rate", {"title": f"#{aid}", "score": 7}, user="cara")
        assert f"Rated {romaji}: 7/10" in plain(body["data"]["content"])
        await env.slash("settings", {"titles": "romaji"}, user="enzo")
        _, body = await env.slash("rate", {"title": f"#{aid}", "score": 8}, user="enzo")
        content = plain(body["data"]["content"])
        assert f"{romaji}: 8/10" in content and english not in content
