"""The Telegram adapter: the real python-telegram-bot Application against a fake Bot API on
127.0.0.1 (tests/fakes/telegram_api.py), a real SQLite file and a small really trained model."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from bot.app import AppContext, TelegramService
from bot.core import Core
from bot.settings import Settings
from recommender import Recommender
from storage.importers import MAX_XML_BYTES
from tests.fakes.telegram_api import BOT_USERNAME, TOKEN, Call, FakeTelegram
from tests.fixtures_model import build_small_world

# Any ERROR logged while the bot runs fails the test (see tests/conftest.py).
pytestmark = pytest.mark.usefixtures("no_error_logs")

GROUP = -1001


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = build_small_world(tmp_path_factory.mktemp("telegram"))
    yield w
    w.close()


@contextlib.asynccontextmanager
async def running_bot(
    world, with_model: bool = True, admins: str = ""
) -> AsyncIterator[tuple[FakeTelegram, Core]]:
    settings = Settings(_env_file=None, telegram_token=TOKEN, database=world.db_path, admins=admins)
    recommender = Recommender(world.store, world.checkpoint if with_model else None)
    core = Core(world.store, recommender, settings, rate_limited=False)
    async with FakeTelegram() as fake:
        service = TelegramService(
            AppContext(settings, world.store, recommender, core), fake.base_url, fake.base_file_url
        )
        await service.start()
        try:
            yield fake, core
        finally:
            await service.stop()


def ratings_of(world, tg_user: dict) -> dict[int, tuple[int | None, str | None, str]]:
    user = world.store.users.find("telegram", tg_user["id"])
    if user is None:
        return {}
    return {r.anime_id: (r.score, r.status, r.source) for r in world.store.ratings.of_user(user.id)}


def title(world, anime_id: int) -> str:
    return next(a.title for a in world.anime if a.anime_id == anime_id)


def to(chat_id: int):
    return lambda call: int(call.params["chat_id"]) == chat_id


async def test_start_publishes_commands_and_rates(world):
    async with running_bot(world) as (tg, _core):
        commands = (await tg.wait_for_call("setMyCommands")).params["commands"]
        assert {c["command"] for c in commands} >= {"rate", "recommend", "night", "import"}
        assert "retrain" not in {c["command"] for c in commands}  # admin-only, not advertised
        alice = tg.user("alice_tg")
        anime = world.anime_by_genre["Sports"][0]
        tg.push_command(f"/rate {title(world, anime)} 9", alice)
        sent = await tg.wait_for_call("sendMessage", where=to(alice["id"]))
        assert f"Rated {title(world, anime)}: 9/10" in sent.params["text"]
        assert [b["text"] for row in sent.buttons() for b in row] == ["Recommend for me"]
        assert ratings_of(world, alice) == {anime: (9, None, "chat")}


async def test_admins_get_their_menu_and_the_bot_its_description(world):
    boss = 777001
    async with running_bot(world, admins=f"telegram:{boss},discord:5") as (tg, _core):
        await tg.wait_for_call("setMyShortDescription")
        menus = tg.calls_to("setMyCommands")
        public = [m for m in menus if not m.params.get("scope")]
        scoped = [m for m in menus if m.params.get("scope")]
        assert len(public) == 1 and len(scoped) == 1
        assert scoped[0].params["scope"] == {"type": "chat", "chat_id": boss}
        names = {c["command"] for c in scoped[0].params["commands"]}
        assert {"retrain", "model", "rate"} <= names
        assert not {"retrain", "model"} & {c["command"] for c in public[0].params["commands"]}
        about = tg.calls_to("setMyDescription")[0].params["description"]
        assert "/recommend" in about and len(about) <= 512
        short = tg.calls_to("setMyShortDescription")[0].params["short_description"]
        assert 0 < len(short) <= 120


async def test_group_answers_reply_in_the_same_topic_while_typing(world):
    async with running_bot(world) as (tg, _core):
        nia = tg.user("nia_topic")
        topic_group = GROUP - 3
        asked = tg.push_command(
            "/recommend 3", nia, chat_id=topic_group, message_thread_id=42, is_topic_message=True
        )
        sent = await tg.wait_for_call("sendMessage", where=to(topic_group))
        assert sent.params["reply_parameters"]["message_id"] == asked["message"]["message_id"]
        assert int(sent.params["message_thread_id"]) == 42
        typing = tg.calls_to("sendChatAction")
        assert typing and typing[0].params["action"] == "typing"
        assert int(typing[0].params["message_thread_id"]) == 42
        assert typing[0].at <= sent.at
        # a button pressed on that answer answers in the same topic too
        more = next(d for d in sent.callback_data() if d.startswith("mo:"))
        mark = len(tg.calls)
        tg.push_callback(nia, sent.result, more)
        page = await tg.wait_for_call("sendMessage", since=mark, where=to(topic_group))
        assert int(page.params["message_thread_id"]) == 42
        # in a private chat: no reply quote, no topic
        mark = len(tg.calls)
        tg.push_command("/help", nia)
        private = await tg.wait_for_call("sendMessage", since=mark, where=to(nia["id"]))
        assert "reply_parameters" not in private.params
        assert "message_thread_id" not in private.params


async def test_score_keyboard_only_the_caller_can_press(world):
    async with running_bot(world) as (tg, _core):
        alice, mallory = tg.user("alice_kb"), tg.user("mallory")
        anime = world.anime_by_genre["Horror"][1]
        tg.push_command(f"/rate {title(world, anime)}", alice)
        sent = await tg.wait_for_call("sendMessage", where=to(alice["id"]))
        rows = sent.buttons()
        assert [[b["text"] for b in row] for row in rows] == [
            ["1", "2", "3", "4", "5"],
            ["6", "7", "8", "9", "10"],
        ]
        assert all(len(d.encode()) <= 64 for d in sent.callback_data())
        eight = rows[1][2]["callback_data"]
        mark = len(tg.calls)
        tg.push_callback(mallory, sent.result, eight)
        toast = await tg.wait_for_call("answerCallbackQuery", since=mark)
        assert "belong to someone else" in toast.params["text"]
        assert ratings_of(world, mallory) == {} and ratings_of(world, alice) == {}
        mark = len(tg.calls)
        tg.push_callback(alice, sent.result, eight)
        edited = await tg.wait_for_call("editMessageText", since=mark)
        assert f"{title(world, anime)}: 8/10" in edited.params["text"]
        assert int(edited.params["message_id"]) == sent.result["message_id"]
        await tg.wait_for_call("answerCallbackQuery", since=mark)
        assert ratings_of(world, alice) == {anime: (8, None, "chat")}


async def test_bad_input_is_answered_kindly(world):
    async with running_bot(world) as (tg, _core):
        bob = tg.user("bob_bad")
        tg.push_command("/rate Mecha Story A 42", bob)
        sent = await tg.wait_for_call("sendMessage", where=to(bob["id"]))
        assert "Scores go from 1 to 10" in sent.params["text"]
        mark = len(tg.calls)
        tg.push_command("/rate Mecha Stroy 9", bob)
        sent = await tg.wait_for_call("sendMessage", since=mark)
        assert "Did you mean" in sent.params["text"]
        assert all(d.startswith("rt:") and d.split(":")[2] == "9" for d in sent.callback_data())
        mark = len(tg.calls)
        tg.push_command(f"/rate@SomeOtherBot {title(world, 1)} 9", bob)  # not for us
        tg.push_command(f"/rate@{BOT_USERNAME} Mecha Story A 7", bob)
        sent = await tg.wait_for_call("sendMessage", since=mark)
        assert "Mecha Story A: 7/10" in sent.params["text"]
        assert ratings_of(world, bob) == {1: (7, None, "chat")}


async def test_recommend_buttons_not_interested_and_more(world):
    async with running_bot(world) as (tg, _core):
        carol = tg.user("carol_rec")
        liked = world.anime_by_genre["Romance"][:3]
        for anime in liked:
            tg.push_command(f"/rate {title(world, anime)} 10", carol)
        await tg.wait_for_calls("sendMessage", 3)
        mark = len(tg.calls)
        tg.push_command("/recommend 3", carol)
        sent = await tg.wait_for_call("sendMessage", since=mark)
        rows = sent.buttons()
        assert [b["text"] for b in rows[0]] == [
            "1. Seen it / rate",
            "1. Not interested",
            "1. Less like this",
            "1. Plan to watch",
        ]
        assert rows[-1][0]["text"] == "More" and len(rows) == 4
        first = int(rows[0][1]["callback_data"].split(":")[1])
        assert first not in liked and not title(world, first).startswith("Night Romance")
        mark = len(tg.calls)
        tg.push_callback(carol, sent.result, rows[0][1]["callback_data"])
        toast = await tg.wait_for_call("answerCallbackQuery", since=mark)
        assert "won't suggest" in toast.params["text"]
        assert ratings_of(world, carol)[first] == (None, "not_interested", "chat")
        mark = len(tg.calls)
        tg.push_callback(carol, sent.result, rows[-1][0]["callback_data"])
        more = await tg.wait_for_call("sendMessage", since=mark)
        assert more.params["text"].startswith("Picks for carol_rec\n\n4. ")
        assert str(first) not in "".join(more.callback_data())


async def test_inline_mode_shares_titles(world):
    async with running_bot(world, with_model=False) as (tg, _core):
        dave = tg.user("dave_inline")
        tg.push_inline(dave, "horror story")
        answer = await tg.wait_for_call("answerInlineQuery")
        results = answer.params["results"]
        assert results and all(r["type"] == "article" for r in results)
        assert all(r["title"].startswith("Horror Story") for r in results[:3])
        assert "myanimelist.net/anime/" in results[0]["input_message_content"]["message_text"]
        tg.push_inline(dave, "night romance")  # NSFW titles: not without opting in
        second = await tg.wait_for_call("answerInlineQuery", since=tg.calls.index(answer) + 1)
        assert all(not r["title"].startswith("Night Romance") for r in second.params["results"])


async def test_inline_mode_pages_and_shows_thumbnails(world):
    poster = "https://cdn.myanimelist.net/images/anime/1/1.jpg"
    async with running_bot(world, with_model=False) as (tg, core):
        search = core.search_titles

        async def with_posters(caller, text, limit=10):  # a catalog that knows some posters
            found = await search(caller, text, limit)
            return [replace(c, picture=poster) if c.anime_id % 2 else c for c in found]

        core.search_titles = with_posters
        eve = tg.user("eve_inline")
        tg.push_inline(eve, "story")
        first = await tg.wait_for_call("answerInlineQuery")
        page1 = first.params["results"]
        assert len(page1) == 10 and first.params["next_offset"] == "10"
        assert all(("thumbnail_url" in r) == (int(r["id"]) % 2 == 1) for r in page1)
        assert any(r.get("thumbnail_url") == poster for r in page1)
        mark = len(tg.calls)
        tg.push_inline(eve, "story", offset="10")
        second = await tg.wait_for_call("answerInlineQuery", since=mark)
        page2 = second.params["results"]
        assert page2 and not {r["id"] for r in page1} & {r["id"] for r in page2}


async def test_import_a_document(world):
    comedy = world.anime_by_genre["Comedy"]
    xml = (
        f"<myanimelist><anime><series_animedb_id>{comedy[0]}</series_animedb_id>"
        "<my_score>9</my_score><my_status>Completed</my_status></anime>"
        f"<anime><series_animedb_id>{comedy[1]}</series_animedb_id><my_score>0</my_score>"
        "<my_status>Plan to Watch</my_status></anime></myanimelist>"
    ).encode()
    async with running_bot(world, with_model=False) as (tg, _core):
        erin = tg.user("erin_import")
        tg.push_document(erin, "animelist_1.xml", xml)
        sent = await tg.wait_for_call("sendMessage", where=to(erin["id"]))
        assert "Imported animelist_1.xml: 2 entries, 1 with a score" in sent.params["text"]
        assert [c.method for c in tg.calls if c.method in ("getFile", "download")] == [
            "getFile",
            "download",
        ]
        assert ratings_of(world, erin) == {
            comedy[0]: (9, "completed", "import"),
            comedy[1]: (None, "plan_to_watch", "import"),
        }
        mark = len(tg.calls)
        tg.push_document(erin, "huge.xml", b"<myanimelist/>", file_size=MAX_XML_BYTES + 1)
        sent = await tg.wait_for_call("sendMessage", since=mark)
        assert "too big" in sent.params["text"]
        assert not tg.calls_to("getFile", since=mark)  # never downloaded
        mark = len(tg.calls)
        tg.push_document(erin, "junk.xml", b"this is not xml")
        sent = await tg.wait_for_call("sendMessage", since=mark)
        assert "couldn't read" in sent.params["text"]


async def test_group_night_lobby_join_picks_and_poll(world):
    async with running_bot(world) as (tg, _core):
        fay, gus = tg.user("fay_night"), tg.user("gus_night")
        fay_seen = world.anime_by_genre["Mecha"][:2]
        gus_seen = world.anime_by_genre["Sports"][:2]
        for user, seen in ((fay, fay_seen), (gus, gus_seen)):
            for anime in seen:
                tg.push_command(f"/rate {title(world, anime)} 9", user)
        await tg.wait_for_calls("sendMessage", 4)
        mark = len(tg.calls)
        tg.push_command("/night", fay, chat_id=GROUP)
        lobby = await tg.wait_for_call("sendMessage", since=mark, where=to(GROUP))
        assert "Anime night" in lobby.params["text"]
        join, pick = (b["callback_data"] for b in lobby.buttons()[0])
        mark = len(tg.calls)
        tg.push_callback(gus, lobby.result, join)
        edited = await tg.wait_for_call("editMessageText", since=mark)
        assert "fay_night, gus_night" in edited.params["text"]
        mark = len(tg.calls)
        tg.push_callback(fay, lobby.result, pick)
        picks: Call = await tg.wait_for_call("sendMessage", since=mark, where=to(GROUP))
        poll = await tg.wait_for_call("sendPoll", since=mark)
        assert "Anime night for fay_night, gus_night" in picks.params["text"]
        options = poll.params["options"]
        options = [o if isinstance(o, str) else o["text"] for o in options]
        assert len(options) >= 2 and str(poll.params["is_anonymous"]).lower() == "false"
        ids = {a.title: a.anime_id for a in world.anime}
        assert not {ids[o] for o in options} & set(fay_seen + gus_seen)
        assert all(o in picks.params["text"] for o in options)


async def test_group_settings_need_a_chat_admin(world):
    async with running_bot(world, with_model=False) as (tg, _core):
        hal, ivy = tg.user("hal_admin"), tg.user("ivy_member")
        tg.chat_admins.add((GROUP - 1, hal["id"]))
        tg.push_command("/settings chat nsfw on", ivy, chat_id=GROUP - 1)
        denied = await tg.wait_for_call("sendMessage", where=to(GROUP - 1))
        assert "Only the group's admins" in denied.params["text"]
        assert world.store.chats.ensure("telegram", GROUP - 1).settings == {}
        mark = len(tg.calls)
        tg.push_command("/settings chat nsfw on", hal, chat_id=GROUP - 1)
        done = await tg.wait_for_call("sendMessage", since=mark)
        assert "this chat: on" in done.params["text"]
        assert tg.calls_to("getChatMember", since=mark)
        assert world.store.chats.ensure("telegram", GROUP - 1).settings == {"nsfw": True}


async def test_one_users_commands_run_in_order_others_run_alongside(world):
    """`/rate X 9` then `/recommend` from one person: the picks know the rating even when the
    rating is slow to save, while another person's command is answered meanwhile."""
    async with running_bot(world) as (tg, core):
        handle = core.handle

        async def slow_rating(request):  # a rating that takes a while to save
            if request.command == "rate":
                await asyncio.sleep(1.0)
            return await handle(request)

        core.handle = slow_rating
        jo, kim = tg.user("jo_order"), tg.user("kim_order")
        rated = world.anime_by_genre["Horror"][4]
        tg.push_command(f"/rate {title(world, rated)} 9", jo)
        tg.push_command("/recommend 3", jo)
        tg.push_command("/help", kim)
        kim_reply = await tg.wait_for_call("sendMessage", where=to(kim["id"]))
        first, second = await _replies_to(tg, jo, 2)
        assert kim_reply.at < first.at  # kim did not wait behind jo's slow rating
        assert first.params["text"].startswith("Rated ")
        assert "haven't rated" not in second.params["text"]
        assert any(d.startswith("ni:") for d in second.callback_data())


async def _replies_to(tg: FakeTelegram, user: dict, count: int) -> list[Call]:
    for _ in range(100):
        found = [c for c in tg.calls_to("sendMessage") if to(user["id"])(c)]
        if len(found) >= count:
            return found[:count]
        await asyncio.sleep(0.1)
    raise AssertionError(f"{user['username']} got {len(found)} of {count} replies")


async def test_user_text_cannot_mention_anyone(world):
    async with running_bot(world) as (tg, _core):
        lu = tg.user("lu_mention")
        tg.push_command("/rate @lu_admin everyone 9", lu, chat_id=GROUP - 2)
        sent = await tg.wait_for_call("sendMessage", where=to(GROUP - 2))
        assert "@lu_admin" not in sent.params["text"]
        assert "@\u2060lu_admin" in sent.params["text"]


async def test_compat_twin_and_less_like_this_in_a_group(world):
    """/compat @name and /twin in a group (sharing respected), and the "Less like this" button."""
    async with running_bot(world) as (tg, _core):
        jo, kim = tg.user("jo_compat"), tg.user("kim_compat")
        mecha = world.anime_by_genre["Mecha"]
        for anime in mecha[:3]:
            tg.push_command(f"/rate {title(world, anime)} 10", jo, chat_id=GROUP - 2)
        tg.push_command(f"/rate {title(world, mecha[0])} 9", kim, chat_id=GROUP - 2)
        await tg.wait_for_calls("sendMessage", 4)
        mark = len(tg.calls)
        tg.push_command("/compat @kim_compat", jo, chat_id=GROUP - 2)
        denied = await tg.wait_for_call("sendMessage", since=mark)
        assert "doesn't share their taste" in denied.params["text"]
        mark = len(tg.calls)
        tg.push_command("/settings share on", kim, chat_id=GROUP - 2)
        await tg.wait_for_call("sendMessage", since=mark)
        mark = len(tg.calls)
        tg.push_command("/compat @kim_compat", jo, chat_id=GROUP - 2)
        shown = await tg.wait_for_call("sendMessage", since=mark)
        assert "% compatible" in shown.params["text"]
        assert f"Both loved: {title(world, mecha[0])}" in shown.params["text"]
        mark = len(tg.calls)
        tg.push_command("/twin", jo, chat_id=GROUP - 2)
        twin = await tg.wait_for_call("sendMessage", since=mark)
        assert "Your taste twin here: kim_compat" in twin.params["text"]

        mark = len(tg.calls)
        tg.push_command("/recommend 3", jo)
        sent = await tg.wait_for_call("sendMessage", since=mark, where=to(jo["id"]))
        less = sent.buttons()[0][2]
        assert less["text"] == "1. Less like this" and less["callback_data"].startswith("ll:")
        mark = len(tg.calls)
        tg.push_callback(jo, sent.result, less["callback_data"])
        toast = await tg.wait_for_call("answerCallbackQuery", since=mark)
        assert "less like" in toast.params["text"]
        user = world.store.users.find("telegram", jo["id"])
        steer = user.settings["less"]
        assert steer["titles"] or steer["genres"]


@contextlib.asynccontextmanager
async def bot_on(world, fake: FakeTelegram) -> AsyncIterator[Core]:
    """One bot process on an existing fake Telegram (start it again to model a restart)."""
    settings = Settings(_env_file=None, telegram_token=TOKEN, database=world.db_path)
    recommender = Recommender(world.store, world.checkpoint)
    core = Core(world.store, recommender, settings, rate_limited=False)
    service = TelegramService(
        AppContext(settings, world.store, recommender, core), fake.base_url, fake.base_file_url
    )
    await service.start()
    try:
        yield core
    finally:
        await service.stop()


def labels(call: Call) -> list[str]:
    return [b["text"] for row in call.buttons() for b in row]


async def test_night_survives_restarts_counts_poll_votes_and_closes_the_poll(world):
    group = GROUP - 4
    async with FakeTelegram() as tg:
        oli, pia = tg.user("oli_night"), tg.user("pia_night")
        async with bot_on(world, tg):
            for user, genre in ((oli, "Mecha"), (pia, "Comedy")):
                for anime in world.anime_by_genre[genre][:2]:
                    tg.push_command(f"/rate {title(world, anime)} 9", user)
            await tg.wait_for_calls("sendMessage", 4)
            mark = len(tg.calls)
            tg.push_command("/night a movie", oli, chat_id=group)
            lobby = await tg.wait_for_call("sendMessage", since=mark, where=to(group))
            assert "time budget: a movie" in lobby.params["text"]
        join, pick = (b["callback_data"] for b in lobby.buttons()[0])
        async with bot_on(world, tg):  # a restart: the lobby is still there
            mark = len(tg.calls)
            tg.push_callback(pia, lobby.result, join)
            edited = await tg.wait_for_call("editMessageText", since=mark)
            assert "oli_night, pia_night" in edited.params["text"]
            mark = len(tg.calls)
            tg.push_callback(oli, lobby.result, pick)
            picks = await tg.wait_for_call("sendMessage", since=mark, where=to(group))
            poll = await tg.wait_for_call("sendPoll", since=mark)
        text = picks.params["text"]
        movies = {a.title for a in world.anime if a.type == "Movie"}
        options = [o if isinstance(o, str) else o["text"] for o in poll.params["options"]]
        assert options and set(options) <= movies  # the budget: movies only
        assert "for oli_night: you liked" in text and "for pia_night: you liked" in text
        assert labels(picks)[-1] == "Decide"
        assert all(label.endswith("Veto") for label in labels(picks)[:-1])
        async with bot_on(world, tg):  # another restart: poll answers still count
            tg.push_poll_answer(oli, poll.result, [1])
            tg.push_poll_answer(pia, poll.result, [1])
            tg.push_poll_answer(pia, poll.result, [])  # a retracted vote changes nothing
            for _ in range(50):
                lobby_id = pick.split(":")[1]
                found = world.store.lobbies.get(lobby_id)
                if found and len(found.state["votes"]) == 2:
                    break
                await asyncio.sleep(0.1)
            mark = len(tg.calls)
            decide = next(d for d in picks.callback_data() if d.startswith("nd:"))
            tg.push_callback(pia, picks.result, decide)
            result = await tg.wait_for_call("sendMessage", since=mark, where=to(group))
            stopped = await tg.wait_for_call("stopPoll", since=mark)
        assert f"Tonight: {options[1]} (2 votes)" in result.params["text"]
        assert int(stopped.params["message_id"]) == poll.result["message_id"]
        assert tg.messages[(group, poll.result["message_id"])]["poll"]["is_closed"]


async def test_night_veto_replaces_the_pick(world):
    group = GROUP - 5
    async with running_bot(world) as (tg, _core):
        quinn, ray = tg.user("quinn_veto"), tg.user("ray_veto")
        for user, genre in ((quinn, "Horror"), (ray, "Sports")):
            for anime in world.anime_by_genre[genre][6:8]:
                tg.push_command(f"/rate {title(world, anime)} 9", user)
        await tg.wait_for_calls("sendMessage", 4)
        mark = len(tg.calls)
        tg.push_command("/night ray_veto", quinn, chat_id=group)
        picks = await tg.wait_for_call("sendMessage", since=mark, where=to(group))
        first_poll = await tg.wait_for_call("sendPoll", since=mark)
        before = [o if isinstance(o, str) else o["text"] for o in first_poll.params["options"]]
        veto = picks.buttons()[0][0]["callback_data"]
        assert veto.startswith("nx:")
        mark = len(tg.calls)
        tg.push_callback(tg.user("stranger_veto"), picks.result, veto)  # not in this night
        toast = await tg.wait_for_call("answerCallbackQuery", since=mark)
        assert "Only people in this anime night" in toast.params["text"]
        mark = len(tg.calls)
        tg.push_callback(ray, picks.result, veto)
        edited = await tg.wait_for_call("editMessageText", since=mark)
        second_poll = await tg.wait_for_call("sendPoll", since=mark)
        await tg.wait_for_call("stopPoll", since=mark)  # the old poll is over
        after = [o if isinstance(o, str) else o["text"] for o in second_poll.params["options"]]
        assert before[0] not in after and before[0] not in edited.params["text"]
        assert before[1:] == after[: len(before) - 1]  # the rest moved up, the next best joined


async def test_fans_in_a_group_lists_only_members_who_share(world):
    group, loved = GROUP - 6, world.anime_by_genre["Comedy"][12]
    async with running_bot(world) as (tg, _core):
        fan, shy, low, asker = (
            tg.user(n) for n in ("fan_fans", "shy_fans", "low_fans", "ask_fans")
        )
        for user, score in ((fan, 9), (shy, 10), (low, 3), (asker, 8)):
            tg.push_command(f"/rate {title(world, loved)} {score}", user, chat_id=group)
        await tg.wait_for_calls("sendMessage", 4)
        for user in (fan, low):  # shy_fans never turns sharing on
            tg.push_command("/settings share on", user, chat_id=group)
        await tg.wait_for_calls("sendMessage", 6)
        mark = len(tg.calls)
        tg.push_command(f"/fans {title(world, loved)}", asker, chat_id=group)
        sent = await tg.wait_for_call("sendMessage", since=mark, where=to(group))
        text = sent.params["text"]
        assert f"Fans of {title(world, loved)} here:" in text
        assert "- fan_fans: 9/10" in text
        assert "shy_fans" not in text and "low_fans" not in text and "ask_fans" not in text
        mark = len(tg.calls)
        tg.push_command(f"/fans {title(world, loved)}", asker)  # in a private chat: no
        sent = await tg.wait_for_call("sendMessage", since=mark, where=to(asker["id"]))
        assert "in a group" in sent.params["text"] and "fan_fans" not in sent.params["text"]


async def test_start_offers_the_quick_start_deck(world):
    async with running_bot(world) as (tg, _core):
        newbie = tg.user("newbie_deck")
        tg.push_command("/start", newbie)
        hello = await tg.wait_for_call("sendMessage", where=to(newbie["id"]))
        assert labels(hello) == ["Quick start: rate 10 titles"]
        assert ratings_of(world, newbie) == {}  # a greeting writes nothing
        mark = len(tg.calls)
        tg.push_callback(newbie, hello.result, hello.callback_data()[0])
        card = await tg.wait_for_call("sendMessage", since=mark, where=to(newbie["id"]))
        assert "Quick start 1/10: how would you rate " in card.params["text"]
        assert [[b["text"] for b in row] for row in card.buttons()] == [
            ["1", "2", "3", "4", "5"],
            ["6", "7", "8", "9", "10"],
            ["Haven't seen it"],
        ]
        shown = _deck_title(world, card.params["text"])
        mark = len(tg.calls)
        tg.push_callback(newbie, card.result, card.buttons()[1][1]["callback_data"])  # 7
        rated = await tg.wait_for_call("editMessageText", since=mark)
        assert int(rated.params["message_id"]) == card.result["message_id"]
        assert f"Rated {title(world, shown)}: 7/10." in rated.params["text"]
        assert "Quick start 2/10" in rated.params["text"]
        assert ratings_of(world, newbie) == {shown: (7, None, "chat")}
        second = _deck_title(world, rated.params["text"])
        assert second != shown
        skip = rated.params["reply_markup"]["inline_keyboard"][2][0]
        assert skip["text"] == "Haven't seen it"
        mark = len(tg.calls)
        tg.push_callback(newbie, card.result, skip["callback_data"])
        skipped = await tg.wait_for_call("editMessageText", since=mark)
        assert "Quick start 3/10" in skipped.params["text"]
        assert ratings_of(world, newbie) == {shown: (7, None, "chat")}  # a skip stores nothing


def _deck_title(world, text: str) -> int:
    """The anime a deck card asks about."""
    asked = text.split("how would you rate ", 1)[1].rsplit("? (1 = awful", 1)[0]
    return next(a.anime_id for a in world.anime if a.title == asked)


async def test_title_language_setting_shows_english_titles(world):
    aid = world.anime_by_genre["Sports"][14]
    romaji, english = title(world, aid), "The Last Dragon King of the Sky"
    world.store.catalog.add_aliases([(english, aid), ("LDKS", aid)], "import")
    async with running_bot(world) as (tg, _core):
        uma = tg.user("uma_titles")
        tg.push_command(f"/rate {romaji} 6", uma)
        sent = await tg.wait_for_call("sendMessage", where=to(uma["id"]))
        assert f"Rated {romaji}: 6/10" in sent.params["text"]
        mark = len(tg.calls)
        tg.push_command("/settings titles english", uma)
        await tg.wait_for_call("sendMessage", since=mark)
        assert world.store.users.find("telegram", uma["id"]).settings["titles"] == "english"
        mark = len(tg.calls)
        tg.push_command(f"/rate #{aid} 9", uma)
        sent = await tg.wait_for_call("sendMessage", since=mark)
        assert f"{english}: 9/10" in sent.params["text"] and romaji not in sent.params["text"]
        mark = len(tg.calls)
        tg.push_inline(uma, "dragon king")
        found = await tg.wait_for_call("answerInlineQuery", since=mark)
        assert found.params["results"][0]["title"] == english
        mark = len(tg.calls)
        tg.push_inline(tg.user("vic_titles"), "dragon king")  # on romaji: the catalog's title
        found = await tg.wait_for_call("answerInlineQuery", since=mark)
        assert found.params["results"][0]["title"] == romaji
        mark = len(tg.calls)
        tg.push_command("/settings titles romaji", uma)
        await tg.wait_for_call("sendMessage", since=mark)
        mark = len(tg.calls)
        tg.push_command(f"/rate #{aid} 8", uma)
        sent = await tg.wait_for_call("sendMessage", since=mark)
        assert f"{romaji}: 8/10" in sent.params["text"] and english not in sent.params["text"]
