"""The command table is the one source: dispatch, parsing, /help, Telegram and Discord menus.
And no text a person can type makes the parser or the core raise."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core import COMMAND_INFO, COMMANDS, Caller, Core, Reply, parse_line
from bot.core import actions as act
from bot.core.limits import MAX_K
from bot.core.parsing import UsageError, read_int
from bot.core.types import Command
from bot.settings import Settings
from recommender import Recommender
from storage.repository import Store
from storage.rows import Anime

ALICE = Caller("console", "alice", "alice")
CATALOG = [
    Anime(1, "Cowboy Bebop", ("Action", "Sci-Fi"), "TV", 26, 8.8, 900_000, False),
    Anime(20, "Naruto", ("Action", "Comedy"), "TV", 220, 7.8, 1_000_000, False),
]


def test_table_matches_the_command_type_and_the_menus():
    names = [c.name for c in COMMANDS]
    assert len(names) == len(set(names))
    assert set(names) == set(get_args(Command))
    assert [c.name for c in COMMAND_INFO] == [c.name for c in COMMANDS if c.menu]
    assert "start" not in {c.name for c in COMMAND_INFO}
    assert all(len(c.description) <= 100 for c in COMMANDS)  # Telegram and Discord limits


def test_discord_tree_is_the_table():
    """Slash commands, their descriptions and option names are the table's."""
    from bot.adapters.discord_bot import AnirecDiscord

    client = AnirecDiscord(object(), Settings(_env_file=None))  # type: ignore[arg-type]
    tree = {c.name: c for c in client.tree.get_commands()}
    menu = {c.name: c for c in COMMANDS if c.menu}
    assert set(tree) == set(menu)
    for name, spec in menu.items():
        assert tree[name].description == spec.description[:100]
        assert [p.name for p in tree[name].parameters] == [a.name for a in spec.args]
        described = {p.name: p.description for p in tree[name].parameters}
        assert described == {a.name: a.description for a in spec.args}


@pytest.mark.parametrize(
    "line",
    ["/recommend ²", "/recommend " + "9" * 5000, "/recommend 0", f"/recommend {MAX_K + 1}"],
)
def test_bad_counts_get_the_usage_line(line: str):
    with pytest.raises(UsageError, match="/recommend"):
        parse_line(ALICE, line)


def test_unicode_digits_and_huge_scores():
    assert parse_line(ALICE, "/recommend \u0667").k == 7  # Arabic-Indic seven is a decimal digit
    assert parse_line(ALICE, "/rate Naruto ²").title == "Naruto ²"  # not a digit: a title
    with pytest.raises(UsageError, match="/rate TITLE SCORE"):
        parse_line(ALICE, "/rate Naruto " + "9" * 5000)
    assert read_int("²") is None and read_int("9" * 5000) is None and read_int("-3") is None
    assert read_int("-3", signed=True) == -3


@pytest.fixture
def core(tmp_path: Path) -> Core:
    store = Store(tmp_path / "anirec.db")
    store.catalog.upsert(CATALOG)
    settings = Settings(_env_file=None, database=store.path)
    yield Core(store, Recommender(store, None), settings, rate_limited=False)
    store.close()


async def test_unicode_and_huge_numbers_reach_the_user_as_usage(core: Core):
    for line in ("/recommend ²", "/rate Naruto " + "9" * 5000):
        reply = await core.handle_text(ALICE, line)
        assert reply is not None and reply.kind == "error" and "/" in reply.text
    reply = await core.press(ALICE, act.encode(act.NIGHT_VOTE, "nolobby"), "²")
    assert reply.kind == "error"
    reply = await core.handle_text(ALICE, "/rate #²")
    assert reply is not None and reply.kind in ("did_you_mean", "ok")


LINES = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda name, rest: f"/{name} {rest}",
        st.sampled_from([c.name for c in COMMANDS] + ["nope"]),
        st.text(max_size=60),
    ),
    st.builds(lambda d: f"/rate Naruto {d}", st.text("0123456789²³¹٣+-", max_size=6000)),
)
BUDGET = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@BUDGET
@given(LINES)
def test_parser_never_raises_anything_but_usage(line: str):
    with contextlib.suppress(UsageError):
        parse_line(ALICE, line)


@BUDGET
@given(line=LINES)
def test_handle_text_always_answers(core: Core, line: str):
    reply = asyncio.run(core.handle_text(ALICE, line))
    assert reply is None or isinstance(reply, Reply)
    if line.strip().startswith("/") and len(line.strip()) > 1:
        assert isinstance(reply, Reply)


ACTIONS = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda kind, parts: ":".join([kind, *parts]),
        st.sampled_from(sorted(act.KINDS)),
        st.lists(st.text("0123456789-²x", max_size=30), max_size=4),
    ),
)


@BUDGET
@given(action=ACTIONS, value=st.none() | st.text(max_size=20))
def test_press_always_answers(core: Core, action: str, value: str | None):
    assert isinstance(asyncio.run(core.press(ALICE, action, value)), Reply)
