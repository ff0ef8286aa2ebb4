"""`anirec run` end to end: one process hosts the bot on both platforms against both fake
servers (Telegram Bot API and Discord REST + gateway on 127.0.0.1), over a real SQLite file and
a small really trained serving checkpoint. Plus `anirec run` as a real subprocess: no token,
and a graceful SIGTERM."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bot.adapters.resilience import PlatformAuthError
from bot.app import serve
from bot.serving import serving_checkpoint_path
from bot.settings import Settings
from storage.repository import Store
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.telegram_api import TOKEN, FakeTelegram
from tests.fixtures_model import build_small_world

# Any ERROR logged while the bot runs fails the test (see tests/conftest.py).
pytestmark = pytest.mark.usefixtures("no_error_logs")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    w = build_small_world(root)
    yield w, root
    w.close()


def settings_for(world, root: Path, **tokens) -> Settings:
    w = world
    settings = Settings(_env_file=None, database=w.db_path, model_dir=root / "models", **tokens)
    target = serving_checkpoint_path(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        shutil.copy(w.checkpoint, target)
    return settings


async def test_anirec_run_serves_telegram_and_discord_in_one_loop(world):
    w, root = world
    titles = {a.anime_id: a.title for a in w.anime}
    async with FakeTelegram() as tg, FakeDiscord() as dc:
        names = ("alice", "bob", "cara")
        members = {n: dc.add_member(n, in_voice=True) for n in names}
        settings = settings_for(w, root, telegram_token=TOKEN, discord_token=dc.token)
        stop = asyncio.Event()
        bot = asyncio.create_task(
            serve(
                settings,
                stop=stop,
                telegram_base_url=tg.base_url,
                telegram_base_file_url=tg.base_file_url,
            )
        )
        try:
            await tg.wait_for_call("setMyCommands", timeout=60)
            await dc.wait_ready(timeout=60)
            await dc.wait_for_call("PUT", rf"/applications/{dc.APP_ID}/commands", timeout=30)

            # Telegram: a user rates five anime, then asks for picks.
            tina = tg.user("tina")
            rated = w.anime_by_genre["Horror"][:3] + w.anime_by_genre["Sports"][:2]
            for anime_id in rated:
                tg.push_command(f"/rate {titles[anime_id]} 9", tina)
            replies = await tg.wait_for_calls("sendMessage", 5, timeout=60)
            assert all(r.params["text"].startswith("Rated ") for r in replies)
            mark = len(tg.calls)
            tg.push_command("/recommend 5", tina)
            picks = await tg.wait_for_call("sendMessage", since=mark, timeout=60)
            picked = {int(d.split(":")[1]) for d in picks.callback_data() if d.startswith("ni:")}
            assert len(picked) == 5 and not picked & set(rated)

            # Discord: three users in a voice channel, each has seen something; a night pick.
            seen = {
                "alice": w.anime_by_genre["Mecha"][:2],
                "bob": w.anime_by_genre["Comedy"][:2],
                "cara": w.anime_by_genre["Romance"][:2],
            }
            for name, ids in seen.items():
                for anime_id in ids:
                    pushed = await dc.push_slash(
                        "rate", {"title": f"#{anime_id}", "score": 9}, user=members[name]
                    )
                    await dc.response(pushed)
            pushed = await dc.push_slash("night", {"voice": True}, user=members["alice"])
            body = await dc.response(pushed, timeout=30)
            embeds = body["data"]["embeds"]
            night = {int(e["url"].rsplit("/", 1)[1]) for e in embeds}
            everyone_seen = {a for ids in seen.values() for a in ids}
            assert night and not night & everyone_seen
        finally:
            stop.set()
            await asyncio.wait_for(bot, 30)  # graceful: both platforms stop, no error
    assert bot.exception() is None
    with Store(w.db_path) as store:
        tina_row = store.users.find("telegram", tina["id"])
        assert {r.anime_id: r.score for r in store.ratings.of_user(tina_row.id)} == {
            a: 9 for a in rated
        }
        for name, ids in seen.items():
            user = store.users.find("discord", members[name].id)
            assert {r.anime_id for r in store.ratings.of_user(user.id)} == set(ids)


def run_cli(env: dict[str, str], root: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "run"],
        env=env,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def base_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANIREC_")}
    env.update(
        ANIREC_DATABASE=str(settings.database),
        ANIREC_MODEL_DIR=str(settings.model_dir),
        ANIREC_LOG_LEVEL="INFO",
    )
    return env


def test_run_without_a_token_points_to_chat(world, tmp_path: Path):
    w, root = world
    proc = run_cli(base_env(settings_for(w, root)), tmp_path)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "no chat token configured" in err and "anirec chat" in err


async def test_run_subprocess_stops_gracefully_on_sigterm(world, tmp_path: Path):
    w, root = world
    async with FakeTelegram() as tg:
        env = base_env(settings_for(w, root))
        env.update(
            ANIREC_TELEGRAM_TOKEN=TOKEN, ANIREC_TELEGRAM_API_ROOT=f"http://127.0.0.1:{tg.port}"
        )
        proc = run_cli(env, tmp_path)
        try:
            await tg.wait_for_call("setMyCommands", timeout=120)
            uma = tg.user("uma")
            anime_id = w.anime_by_genre["Sports"][3]
            tg.push_command(f"/rate #{anime_id} 6", uma)
            sent = await tg.wait_for_call("sendMessage", timeout=60)
            assert sent.params["text"].startswith("Rated ")
            await stop_process(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped" in err and TOKEN not in err and TOKEN.split(":")[1] not in out + err
    with Store(w.db_path) as store:
        user = store.users.find("telegram", uma["id"])
        assert {r.anime_id: r.score for r in store.ratings.of_user(user.id)} == {anime_id: 6}


def run_cli_logged(env: dict[str, str], cwd: Path, log_dir: Path) -> subprocess.Popen:
    """`anirec run` writing stdout and stderr to real files (read back whole afterwards)."""
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "run"],
        env=env,
        cwd=cwd,
        stdout=(log_dir / "stdout.log").open("w"),
        stderr=(log_dir / "stderr.log").open("w"),
        text=True,
    )


def everything_written(log_dir: Path) -> str:
    return (log_dir / "stdout.log").read_text() + (log_dir / "stderr.log").read_text()


async def stop_process(proc: subprocess.Popen, grace_s: float = 60) -> int:
    """SIGTERM, then the exit code (killed if it does not stop within ``grace_s``)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return await asyncio.to_thread(proc.wait, grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_debug_log_never_contains_the_token(world, tmp_path: Path):
    """DEBUG logging of the real process (every library's debug lines, request URLs included):
    the token appears nowhere in anything it writes."""
    w, root = world
    async with FakeTelegram() as tg:
        env = base_env(settings_for(w, root))
        env.update(
            ANIREC_TELEGRAM_TOKEN=TOKEN,
            ANIREC_TELEGRAM_API_ROOT=f"http://127.0.0.1:{tg.port}",
            ANIREC_LOG_LEVEL="DEBUG",
        )
        proc = run_cli_logged(env, tmp_path, tmp_path)
        try:
            await tg.wait_for_call("setMyCommands", timeout=120)
            tg.push_command(f"/rate #{w.anime_by_genre['Sports'][4]} 7", tg.user("vic"))
            await tg.wait_for_call("sendMessage", timeout=60)
        finally:
            code = await stop_process(proc)
    written = everything_written(tmp_path)
    assert code == 0, written[-2000:]
    assert "DEBUG" in written and "getUpdates" in written  # the library's debug lines are there
    secret = TOKEN.split(":")[1]
    assert TOKEN not in written and secret not in written
    assert "bot***" in written  # the URLs were logged, masked


async def test_run_rides_out_a_telegram_outage(world, tmp_path: Path):
    """Started while the Bot API is unreachable, the bot keeps retrying (one log line), comes
    up when it appears, survives it going away and back, and stops cleanly."""
    w, root = world
    port = free_port()
    env = base_env(settings_for(w, root))
    env.update(ANIREC_TELEGRAM_TOKEN=TOKEN, ANIREC_TELEGRAM_API_ROOT=f"http://127.0.0.1:{port}")
    proc = run_cli_logged(env, tmp_path, tmp_path)
    tg = FakeTelegram(port=port)
    try:
        await wait_for_text(tmp_path, "telegram: cannot reach the platform", proc)
        await asyncio.sleep(3)  # several failed retries: still running, still one line
        assert proc.poll() is None
        await tg.start()
        await tg.wait_for_call("setMyCommands", timeout=60)
        wes = tg.user("wes")
        tg.push_command("/help", wes)
        await tg.wait_for_call("sendMessage", timeout=30)
        await tg.stop()  # the platform goes away under the running bot
        await asyncio.sleep(3)
        assert proc.poll() is None
        await tg.start()
        mark = len(tg.calls)
        tg.push_command("/help", wes)
        await tg.wait_for_call("sendMessage", since=mark, timeout=60)
    finally:
        code = await stop_process(proc)
        await tg.stop()
    written = everything_written(tmp_path)
    assert code == 0, written[-3000:]
    assert written.count("telegram: cannot reach the platform") == 2, written[-3000:]
    assert written.count("telegram: connected again") == 2
    assert "Traceback" not in written


async def test_run_ends_when_the_token_is_refused(world, tmp_path: Path):
    w, root = world
    async with FakeTelegram(token="999:another-token-entirely") as tg:
        env = base_env(settings_for(w, root))
        env.update(
            ANIREC_TELEGRAM_TOKEN=TOKEN, ANIREC_TELEGRAM_API_ROOT=f"http://127.0.0.1:{tg.port}"
        )
        proc = run_cli_logged(env, tmp_path, tmp_path)
        try:
            code = await asyncio.to_thread(proc.wait, 120)
        finally:
            if proc.poll() is None:
                proc.kill()
    written = everything_written(tmp_path)
    assert code != 0
    assert "error: telegram: the bot token was refused" in written
    assert "ANIREC_TELEGRAM_TOKEN" in written and "Traceback" not in written


async def wait_for_text(log_dir: Path, text: str, proc: subprocess.Popen) -> None:
    """Wait (up to 2 minutes) until the process has written ``text``; fail if it exits."""
    for _ in range(600):
        if text in everything_written(log_dir):
            return
        if proc.poll() is not None:
            break
        await asyncio.sleep(0.2)
    raise AssertionError(f"no {text!r}; wrote: {everything_written(log_dir)[-2000:]}")


async def test_discord_outage_keeps_telegram_running(world, caplog):
    """Discord goes away under the running bot: Telegram keeps answering, Discord reconnects
    when it is back, and the outage is one log line, not a traceback per retry."""
    w, root = world
    async with FakeTelegram() as tg, FakeDiscord() as dc:
        ann = dc.add_member("ann")
        settings = settings_for(w, root, telegram_token=TOKEN, discord_token=dc.token)
        stop = asyncio.Event()
        bot = asyncio.create_task(
            serve(
                settings,
                stop=stop,
                telegram_base_url=tg.base_url,
                telegram_base_file_url=tg.base_file_url,
            )
        )
        try:
            await tg.wait_for_call("setMyCommands", timeout=60)
            await dc.wait_ready(timeout=60)
            await dc.stop()
            await asyncio.sleep(2)  # a few failed reconnects
            tg.push_command("/help", tg.user("xan"))
            await tg.wait_for_call("sendMessage", timeout=30)
            await dc.start()
            await dc.wait_online(2, timeout=60)  # resumed (or identified afresh)
            pushed = await dc.push_slash("help", {}, user=ann)
            assert await dc.answer(pushed)
            assert not bot.done()
        finally:
            stop.set()
            await asyncio.wait_for(bot, 30)
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.network"]
    assert sum("discord: cannot reach the platform" in m for m in lines) == 1, lines
    assert sum("discord: connected again" in m for m in lines) == 1, lines
    assert not [r for r in caplog.records if r.name.startswith("discord") and r.exc_info]


async def test_serve_ends_when_discord_refuses_the_token(world):
    w, root = world
    async with FakeDiscord():
        settings = settings_for(w, root, discord_token="not-the-right-token")
        with pytest.raises(PlatformAuthError, match="discord: the bot token was refused"):
            await asyncio.wait_for(serve(settings), 60)


async def test_discord_started_while_unreachable_connects_later(world, caplog):
    w, root = world
    async with FakeDiscord() as dc:
        await dc.stop()  # the port is known; nothing answers on it yet
        bea = dc.add_member("bea")
        settings = settings_for(w, root, discord_token=dc.token)
        stop = asyncio.Event()
        bot = asyncio.create_task(serve(settings, stop=stop))
        try:
            await asyncio.sleep(2.5)  # login fails, again and again
            assert not bot.done()
            await dc.start()
            await dc.wait_ready(timeout=60)
            pushed = await dc.push_slash("help", {}, user=bea)
            assert await dc.answer(pushed)
        finally:
            stop.set()
            await asyncio.wait_for(bot, 30)
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.network"]
    assert sum("discord: cannot reach the platform" in m for m in lines) == 1, lines
