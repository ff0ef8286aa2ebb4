"""Anime-night lobbies: who joined, the picks, and the select-menu votes (in memory)."""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

LOBBY_TTL_S = 6 * 3600
MAX_MEMBERS = 12


@dataclass
class Lobby:
    id: str
    platform: str
    chat_id: str | None
    host: int  # internal user id
    members: dict[int, str]  # internal user id -> display name, in join order
    created: float
    picks: dict[int, str] = field(default_factory=dict)  # anime id -> title, once started
    votes: dict[int, int] = field(default_factory=dict)  # voter's user id -> anime id

    def tally(self) -> list[tuple[str, int]]:
        counts = Counter(self.votes.values())
        return [(self.picks.get(aid, str(aid)), n) for aid, n in counts.most_common()]


class Lobbies:
    """Open lobbies by id. Ids are random so a stale button never lands in someone else's."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._open: dict[str, Lobby] = {}

    def open(self, platform: str, chat_id: str | None, host: int, host_name: str) -> Lobby:
        self._expire()
        lobby = Lobby(
            secrets.token_hex(4), platform, chat_id, host, {host: host_name}, self.clock()
        )
        self._open[lobby.id] = lobby
        return lobby

    def get(self, lobby_id: str) -> Lobby | None:
        self._expire()
        return self._open.get(lobby_id)

    def _expire(self) -> None:
        cutoff = self.clock() - LOBBY_TTL_S
        for key in [k for k, v in self._open.items() if v.created < cutoff]:
            del self._open[key]
