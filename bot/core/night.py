"""Anime-night lobbies: who joined, the picks, the votes and vetoes, kept in SQLite.

A lobby lives in ``store.lobbies`` so its buttons and its poll keep working after a restart.
Each change is one atomic read-modify-write (:meth:`Lobbies.change`), so two members pressing
at the same moment never lose each other's join, vote or veto.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from storage.lobbies import LobbyRow
from storage.repository import Store

LOBBY_TTL_S = 6 * 3600
MAX_MEMBERS = 12


@dataclass
class Lobby:
    id: str
    platform: str
    chat_id: str | None
    host: int  # internal user id
    members: dict[int, str]  # internal user id -> display name, in join order
    created: float  # unix seconds
    picks: dict[int, str] = field(default_factory=dict)  # anime id -> title, once started
    votes: dict[int, int] = field(default_factory=dict)  # voter's user id -> anime id
    vetoed: list[int] = field(default_factory=list)  # anime ids a member turned down
    budget: str | None = None  # Budget.code
    round: int = 0  # bumped whenever the picks change (its poll is then a new one)
    closed: bool = False  # decided: no more votes or vetoes

    def tally(self) -> list[tuple[str, int]]:
        counts = Counter(self.votes.values())
        return [(self.picks.get(aid, str(aid)), n) for aid, n in counts.most_common()]

    def winner(self) -> int | None:
        """Most votes; a tie (or no votes) goes to the pick listed first (the group's best)."""
        if not self.picks:
            return None
        counts = Counter(a for a in self.votes.values() if a in self.picks)
        order = list(self.picks)
        return max(order, key=lambda aid: (counts[aid], -order.index(aid)))

    def state(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "members": [[uid, name] for uid, name in self.members.items()],
            "picks": [[aid, title] for aid, title in self.picks.items()],
            "votes": {str(uid): aid for uid, aid in self.votes.items()},
            "vetoed": self.vetoed,
            "budget": self.budget,
            "round": self.round,
            "closed": self.closed,
        }

    @classmethod
    def from_row(cls, row: LobbyRow) -> Lobby:
        s = row.state
        return cls(
            id=row.id,
            platform=row.platform,
            chat_id=row.chat_id,
            host=int(s.get("host", 0)),
            members={int(uid): str(name) for uid, name in s.get("members", [])},
            created=row.created_at,
            picks={int(aid): str(title) for aid, title in s.get("picks", [])},
            votes={int(uid): int(aid) for uid, aid in s.get("votes", {}).items()},
            vetoed=[int(a) for a in s.get("vetoed", [])],
            budget=s.get("budget"),
            round=int(s.get("round", 0)),
            closed=bool(s.get("closed", False)),
        )


class Lobbies:
    """Open lobbies by id. Ids are random so a stale button never lands in someone else's.

    Blocking (SQLite): handlers call these through ``asyncio.to_thread``.
    """

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def open(
        self,
        platform: str,
        chat_id: str | None,
        host: int,
        members: dict[int, str],
        budget: str | None = None,
    ) -> Lobby:
        now = self.clock()
        self.store.lobbies.expire(now - LOBBY_TTL_S)
        lobby = Lobby(secrets.token_hex(4), platform, chat_id, host, dict(members), now)
        lobby.budget = budget
        self.store.lobbies.create(lobby.id, platform, chat_id, now, lobby.state())
        return lobby

    def get(self, lobby_id: str) -> Lobby | None:
        row = self.store.lobbies.get(lobby_id, newer_than=self.clock() - LOBBY_TTL_S)
        return Lobby.from_row(row) if row is not None else None

    def change(self, lobby_id: str, edit: Callable[[Lobby], bool]) -> Lobby | None:
        """Apply ``edit`` (it returns whether it changed anything) atomically; the lobby as it
        is afterwards, or None when it does not exist (or has expired)."""
        if self.get(lobby_id) is None:
            return None
        changed: list[Lobby] = []

        def apply(row: LobbyRow) -> dict[str, Any] | None:
            lobby = Lobby.from_row(row)
            changed.append(lobby)
            return lobby.state() if edit(lobby) else None

        return changed[-1] if self.store.lobbies.update(lobby_id, apply) is not None else None
