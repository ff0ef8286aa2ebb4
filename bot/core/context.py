"""What every command handler gets: the store, the recommender and the core's helpers.

One :class:`Context` per :class:`~bot.core.core.Core`; handlers are plain functions of
``(context, request)`` so they can be found, read and tested one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot.core.night import Lobbies
from bot.core.ports import RetrainControl
from bot.core.senders import Senders
from bot.core.types import Caller, CommandInfo
from bot.core.users import Users
from storage.repository import Store

if TYPE_CHECKING:
    from bot.settings import Settings
    from recommender import Recommender


@dataclass
class Context:
    """Shared by every handler. ``retrain`` is plugged in later by the retraining service."""

    store: Store
    recommender: Recommender
    settings: Settings | None
    lobbies: Lobbies
    page_size: int
    retrain: RetrainControl | None = None
    users: Users = field(init=False)
    senders: Senders = field(default_factory=Senders)
    commands: Sequence[CommandInfo] = ()
    #: The wall clock (what season it is); tests put a fixed date here.
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        self.users = Users(self.store)

    def is_admin(self, caller: Caller) -> bool:
        """Admin by the platform (a Discord role) or by ``Settings.admins``."""
        return caller.is_admin or bool(
            self.settings and self.settings.is_admin(caller.platform, caller.user_id)
        )
