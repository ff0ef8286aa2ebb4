"""Anime-night parts below the adapters: the time budget and lobbies kept in SQLite."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from bot.core import Caller, parse_line
from bot.core.budget import Budget, from_code, split_budget
from bot.core.night import LOBBY_TTL_S, Lobbies
from bot.core.parsing import UsageError
from storage.repository import Store

GROUP = Caller("telegram", "1", "ann", chat_id="-5", is_group=True)


@pytest.mark.parametrize(
    ("text", "budget", "rest"),
    [
        ("a movie ann bob", Budget(movie=True), "ann bob"),
        ("<= 12 episodes", Budget(max_episodes=12), ""),
        ("ann ≤12 ep", Budget(max_episodes=12), "ann"),
        ("up to 3 hours bob", Budget(max_minutes=180), "bob"),
        ("90 min", Budget(max_minutes=90), ""),
        ("Moviegoer Ann", None, "Moviegoer Ann"),
    ],
)
def test_budgets_are_read_from_the_night_line(text, budget, rest):
    assert split_budget(text) == (budget, rest)
    if budget is not None:
        assert from_code(budget.code) == budget


def test_budget_filters_by_type_and_length():
    assert Budget(movie=True).allows("Movie", 1) and not Budget(movie=True).allows("TV", 1)
    twelve = Budget(max_episodes=12)
    assert twelve.allows("TV", 12) and not twelve.allows("TV", 13)
    assert not twelve.allows("TV", None)  # unknown length never fits a budget
    three_hours = Budget(max_minutes=180)
    assert three_hours.allows("TV", 7) and not three_hours.allows("TV", 8)  # 24 min each
    assert three_hours.allows("Movie", 1)


def test_night_parser_carries_the_budget_and_refuses_silly_ones():
    request = parse_line(GROUP, "/night a movie ann bob")
    assert request is not None and request.budget == "movie" and request.names == ("ann", "bob")
    with pytest.raises(UsageError, match="/night"):
        parse_line(GROUP, "/night 0 episodes")
    with pytest.raises(UsageError, match="/night"):
        parse_line(GROUP, "/night 99999 hours")


def test_lobbies_survive_a_new_store_and_expire(tmp_path: Path):
    now = [1_000_000.0]
    with Store(tmp_path / "a.db") as store:
        lobby = Lobbies(store, clock=lambda: now[0]).open("telegram", "-5", 1, {1: "ann"}, "e12")
    with Store(tmp_path / "a.db") as store:  # another process, after a restart
        lobbies = Lobbies(store, clock=lambda: now[0])
        again = lobbies.get(lobby.id)
        assert again is not None and again.members == {1: "ann"} and again.budget == "e12"
        now[0] += LOBBY_TTL_S + 1
        assert lobbies.get(lobby.id) is None


def test_concurrent_joins_are_never_lost(tmp_path: Path):
    with Store(tmp_path / "a.db") as store:
        lobbies = Lobbies(store)
        lobby = lobbies.open("discord", "9", 1, {1: "host"})

        def join(uid: int) -> None:
            def add(current) -> bool:
                current.members[uid] = f"user{uid}"
                return True

            lobbies.change(lobby.id, add)

        threads = [threading.Thread(target=join, args=(uid,)) for uid in range(2, 12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        found = lobbies.get(lobby.id)
        assert found is not None and set(found.members) == set(range(1, 12))
