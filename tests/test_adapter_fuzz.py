"""Hostile text into every adapter's entry point: whatever arrives, the person gets a reply.

Property-based (Hypothesis, a fixed modest budget): the console's line handler, Telegram
commands, text and button presses through the real python-telegram-bot against the fake Bot
API, and Discord slash commands and button presses through the real discord.py against the
fake Discord. The bots run on an event loop in a helper thread so that Hypothesis, which drives
plain functions, can hand each example to them and wait for the answer.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Awaitable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.adapters.console import ConsoleChat
from bot.adapters.discord_bot import build_discord_client
from bot.app import AppContext, TelegramService
from bot.core import Core, RateLimiter, Reply
from bot.settings import Settings
from recommender import Recommender
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.telegram_api import TOKEN, FakeTelegram
from tests.fixtures_model import build_small_world

T = TypeVar("T")
BUDGET = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
COMMANDS = ["rate", "unrate", "recommend", "similar", "night", "profile", "settings", "help"]
NUMBERS = st.one_of(
    st.from_regex(r"\A[0-9]{1,6000}\Z"),  # huge numbers (past int()'s 4,300-digit limit)
    st.from_regex(r"\A[²³¹⁰-⁹٠-٩０-９𝟎-𝟗]{1,8}\Z"),  # Unicode digits of every kind
    st.integers().map(str),
)
ARGUMENT = st.one_of(st.text(max_size=120), NUMBERS, st.sampled_from(["@everyone", "\x1b[2J"]))
COMMAND_LINE = st.builds(
    lambda name, args: f"/{name} {' '.join(args)}".rstrip(),
    st.one_of(st.sampled_from(COMMANDS), st.from_regex(r"\A[a-z_]{1,12}\Z")),
    st.lists(ARGUMENT, max_size=3),
)
ANY_LINE = st.one_of(COMMAND_LINE, NUMBERS, st.text(min_size=1, max_size=200))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = build_small_world(tmp_path_factory.mktemp("fuzz"))
    yield w
    w.close()


class LoopThread:
    """An asyncio loop in a daemon thread; ``call`` runs a coroutine there and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, work: Awaitable[T], timeout: float = 60) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(_wrap(work), self.loop)
        return future.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


async def _wrap(work: Awaitable[T]) -> T:
    return await work


def _core(world, **options: Any) -> Core:
    settings = Settings(_env_file=None, telegram_token=TOKEN, database=world.db_path)
    return Core(world.store, Recommender(world.store, world.checkpoint), settings, **options)


# -- console ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def console(world) -> Iterator[tuple[ConsoleChat, io.StringIO, asyncio.AbstractEventLoop]]:
    out = io.StringIO()
    chat = ConsoleChat(_core(world, rate_limited=False), "fuzzer", stdin=io.StringIO(), stdout=out)
    loop = asyncio.new_event_loop()
    yield chat, out, loop
    loop.close()


@BUDGET
@given(line=ANY_LINE)
def test_console_answers_any_line(console, line: str) -> None:
    chat, out, loop = console
    line = line.strip()
    if not line or line.lower() in ("/quit", "/exit", "/q") or line.startswith("/import"):
        return
    reply = loop.run_until_complete(chat.answer(line))
    assert isinstance(reply, Reply) and reply.text.strip()
    out.seek(0)
    out.truncate()
    chat.show(reply)
    shown = out.getvalue()
    assert shown.strip() and "\x1b" not in shown and "\x9b" not in shown


# -- Telegram --------------------------------------------------------------------------------
class TelegramRig:
    def __init__(self, world) -> None:
        self.thread = LoopThread()
        self.tg = FakeTelegram()
        core = _core(world, rate_limited=False)

        async def start() -> TelegramService:
            await self.tg.start()
            ctx = AppContext(core.ctx.settings, world.store, core.recommender, core)
            service = TelegramService(ctx, self.tg.base_url, self.tg.base_file_url)
            await service.start()
            await self.tg.wait_for_call("setMyCommands", timeout=60)
            return service

        self.service = self.thread.call(start())
        self.user = self.tg.user("fuzz_tg")

    def ask(self, push, method: str = "sendMessage"):
        async def go():
            mark = len(self.tg.calls)
            push()
            return await self.tg.wait_for_call(method, since=mark, timeout=30)

        return self.thread.call(go())

    def close(self) -> None:
        async def stop() -> None:
            await self.service.stop()
            await self.tg.stop()

        self.thread.call(stop())
        self.thread.close()


@pytest.fixture(scope="module")
def telegram(world) -> Iterator[TelegramRig]:
    rig = TelegramRig(world)
    yield rig
    rig.close()


@BUDGET
@given(line=COMMAND_LINE)
def test_telegram_answers_any_command(telegram: TelegramRig, line: str) -> None:
    sent = telegram.ask(lambda: telegram.tg.push_command(line, telegram.user))
    assert sent.params["text"].strip()
    assert "@everyone" not in sent.params["text"]


@BUDGET
@given(data=st.text(min_size=1, max_size=64).filter(lambda d: len(d.encode()) <= 64))
def test_telegram_answers_any_button_press(telegram: TelegramRig, data: str) -> None:
    message = telegram.ask(lambda: telegram.tg.push_command("/help", telegram.user)).result
    answered = telegram.ask(
        lambda: telegram.tg.push_callback(telegram.user, message, data), "answerCallbackQuery"
    )
    assert answered.params["callback_query_id"]


# -- Discord ---------------------------------------------------------------------------------
class DiscordRig:
    def __init__(self, world) -> None:
        self.thread = LoopThread()
        self.fake = FakeDiscord()
        core = _core(world, limiter=RateLimiter(capacity=100_000))

        async def start() -> Any:
            await self.fake.start()
            self._patch = self.fake.patch()
            self._patch.__enter__()
            self.user = self.fake.add_member("fuzz_dc")
            client = build_discord_client(core, core.ctx.settings, guild_ready_timeout=0.2)
            self.task = asyncio.create_task(client.start(self.fake.token))
            await self.fake.wait_ready(timeout=60)
            await self.fake.wait_synced(timeout=60)
            return client

        self.client = self.thread.call(start())

    def ask(self, push) -> dict:
        async def go() -> dict:
            return await self.fake.answer(await push(), timeout=30)

        return self.thread.call(go())

    def close(self) -> None:
        async def stop() -> None:
            await self.client.close()
            await asyncio.wait_for(self.task, 10)
            self._patch.__exit__(None, None, None)
            await self.fake.stop()

        self.thread.call(stop())
        self.thread.close()


@pytest.fixture(scope="module")
def discord_rig(world) -> Iterator[DiscordRig]:
    rig = DiscordRig(world)
    yield rig
    rig.close()


TITLE = st.one_of(st.text(min_size=1, max_size=100), NUMBERS.map(lambda n: n[:100])).filter(
    lambda t: t.strip()
)


@BUDGET
@given(command=st.sampled_from(["rate", "similar", "unrate"]), title=TITLE)
def test_discord_answers_any_title(discord_rig: DiscordRig, command: str, title: str) -> None:
    rig = discord_rig
    answer = rig.ask(lambda: rig.fake.push_slash(command, {"title": title}, user=rig.user))
    assert answer.get("content") or answer.get("embeds")
    assert "@everyone" not in str(answer.get("content"))


@BUDGET
@given(action=st.from_regex(r"\A[!-~]{1,64}\Z"))
def test_discord_answers_any_button(discord_rig: DiscordRig, action: str) -> None:
    rig = discord_rig
    if not rig.fake.messages:
        rig.ask(lambda: rig.fake.push_slash("help", {}, user=rig.user))
    # a message of ours carrying a button with this action (as an older version might have
    # sent it): Discord only ever sends presses of buttons that are on the message
    custom_id = f"ar||{action}"
    button = {"type": 2, "style": 2, "label": "x", "custom_id": custom_id}
    message = {
        **next(iter(rig.fake.messages.values())),
        "components": [{"type": 1, "components": [button]}],
    }
    answer = rig.ask(lambda: rig.fake.push_button(custom_id, user=rig.user, message=message))
    assert answer.get("content") or answer.get("embeds") or answer.get("components")
