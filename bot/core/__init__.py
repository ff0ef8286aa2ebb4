"""The platform-free command core. Adapters import from here only.

core = Core(store, recommender, settings)
reply = await core.handle(Request("rate", caller, title="Cowboy Bebop", score=9))
reply = await core.press(caller, button.action)        # a button press
reply = await core.press(caller, poll.action, "1535")  # a select-menu vote
"""

from bot.core.commands import COMMAND_INFO, COMMANDS, parse_line
from bot.core.core import Core
from bot.core.limiter import RateLimiter
from bot.core.parsing import UsageError, split_command
from bot.core.ports import Notify, RetrainControl, RetrainStatus, RetrainTicket
from bot.core.senders import Sender
from bot.core.types import (
    MAX_ACTION_LEN,
    AnimeCard,
    Button,
    Caller,
    Choice,
    CommandInfo,
    Field,
    Member,
    Poll,
    Reply,
    Request,
)

__all__ = [
    "COMMANDS",
    "COMMAND_INFO",
    "MAX_ACTION_LEN",
    "AnimeCard",
    "Button",
    "Caller",
    "Choice",
    "CommandInfo",
    "Core",
    "Field",
    "Member",
    "Notify",
    "Poll",
    "RateLimiter",
    "Reply",
    "Request",
    "RetrainControl",
    "RetrainStatus",
    "RetrainTicket",
    "Sender",
    "UsageError",
    "parse_line",
    "split_command",
]
