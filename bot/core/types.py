"""Neutral requests and replies: what adapters hand the core and what they render.

Nothing here knows Discord, Telegram or a terminal. Adapters translate platform events into a
:class:`Request` (or a button press into ``Core.press``) and render the :class:`Reply` they get
back: text, optional fields, rows of buttons with compact action ids, an optional poll and a
list of :class:`AnimeCard` for rich rendering (embeds, numbered lists).

Action ids are short ASCII strings such as ``rt:1535:9:42`` (``kind:arg:arg:...``). Every id the
core makes is at most :data:`MAX_ACTION_LEN` bytes, so it fits Telegram's 64-byte
``callback_data`` and Discord's 100-character ``custom_id`` unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot.identity import identity_key

#: Telegram's callback_data limit (bytes); Discord's custom_id allows 100 characters.
MAX_ACTION_LEN = 64

Platform = Literal["console", "telegram", "discord"]
Command = Literal[
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
    "start",
    "compat",
    "twin",
    "fans",
    "status",
    "ptw",
    "season",
]
ButtonStyle = Literal["primary", "secondary", "success", "danger"]
ReplyKind = Literal["ok", "error", "cooldown", "denied", "did_you_mean", "no_model", "lobby"]


@dataclass(frozen=True)
class Caller:
    """Who is asking, and where. ``user_id`` is the platform's own id as a string.

    ``is_admin`` is what the platform knows (a Discord admin role); the core also grants admin
    to identities listed in ``Settings.admins``. ``chat_admin`` means the person may change the
    chat's settings (Telegram group admin, Discord Manage Server); in private chats it is moot.
    """

    platform: Platform
    user_id: str
    display_name: str | None = None
    chat_id: str | None = None  # where it was said (a DM or a group); None on the console
    chat_title: str | None = None
    is_group: bool = False  # a group chat / a server channel: /night lobbies, chat settings
    is_admin: bool = False
    chat_admin: bool = False

    @property
    def key(self) -> str:
        """``platform:user_id``, the form used in ``Settings.admins`` and in the audit log."""
        return identity_key(self.platform, self.user_id)


@dataclass(frozen=True)
class Member:
    """A person named by the adapter (a Discord voice-channel member, a mentioned user)."""

    user_id: str
    display_name: str | None = None


@dataclass(frozen=True)
class Request:
    """One command. Only the fields a command uses are read; the rest stay at their defaults.

    - rate: ``title``, ``score`` (None: answer with 1-10 buttons)
    - unrate / similar: ``title``
    - recommend: ``k`` (None: the default page size)
    - night: ``members`` (platform identities) and/or ``names`` (display names on the caller's
      platform); neither, in a group chat: open a lobby with a Join button; ``budget``
      optionally limits the picks ("a movie", "12 episodes", "3 hours")
    - import: ``data`` (the MyAnimeList XML bytes) and ``filename``
    - settings: ``setting`` ("nsfw") and ``value`` (True/False, None: show the settings);
      ``scope`` "chat" changes the chat (group admins), "user" the caller (default)
    - settings also: ``setting`` "share" with ``value``; ``setting`` "titles" with ``option``
      ("english" or "romaji")
    - compat: ``members`` (a platform identity) or ``names`` (a display name); fans: ``title``
    - status: ``title`` and ``option`` (a stored status name; None: show the title's status)
    - ptw: ``setting`` "add" or "remove" with ``title``; neither: picks from the list
    - season: ``option`` "now" or "next"
    - profile, help, model, twin: nothing; retrain: nothing
    """

    command: Command
    caller: Caller
    title: str | None = None
    score: int | None = None
    k: int | None = None
    members: tuple[Member, ...] = ()
    names: tuple[str, ...] = ()
    data: bytes | None = None
    filename: str | None = None
    setting: str | None = None
    value: bool | None = None
    scope: Literal["user", "chat"] | None = None
    option: str | None = None
    budget: str | None = None  # night: how much to watch ("a movie", "12 episodes", "3 hours")
    text: str = ""  # the raw argument text, for messages


@dataclass(frozen=True)
class Button:
    """A button. ``action`` goes back to ``Core.press`` unchanged when it is pressed.

    ``owner`` is the platform user id of the only person whose press counts (None: anyone);
    the core enforces it, adapters may use it to hide or grey the button.
    """

    label: str
    action: str
    style: ButtonStyle = "secondary"
    owner: str | None = None


@dataclass(frozen=True)
class Choice:
    """One option of a select menu, an autocomplete list or a poll."""

    label: str
    value: str
    description: str = ""


@dataclass(frozen=True)
class Poll:
    """A vote. Telegram sends a native poll with ``question`` and the choices' labels; Discord
    shows a select menu whose custom_id is ``action`` (the chosen ``Choice.value`` is passed to
    ``Core.press(caller, action, value)``); the console prints the choices."""

    question: str
    choices: tuple[Choice, ...]
    action: str


@dataclass(frozen=True)
class Field:
    name: str
    value: str
    inline: bool = False


@dataclass(frozen=True)
class AnimeCard:
    """One anime for rich rendering (an embed, an inline-query result, a numbered line)."""

    anime_id: int
    title: str
    genres: tuple[str, ...] = ()
    type: str | None = None
    episodes: int | None = None
    mal_score: float | None = None
    predicted_score: float | None = None  # 1-10, this user's (or the group's) predicted score
    similarity: float | None = None  # for /similar, -1..1
    reason: str = ""  # "because you liked X and Y"
    member_scores: tuple[tuple[str, float], ...] = ()  # (display name, predicted 1-10), /night
    buttons: tuple[Button, ...] = ()  # per-card actions: "seen it / rate", "not interested"
    picture: str | None = None  # an https URL of its poster, when the catalog knows one

    @property
    def url(self) -> str:
        return f"https://myanimelist.net/anime/{self.anime_id}"


@dataclass(frozen=True)
class Reply:
    """What to show. ``text`` is plain text (no markup) and always enough on its own.

    - ``buttons``: rows of buttons (besides the per-card ones in ``picks``)
    - ``ephemeral``: only the caller should see it (Discord ephemeral; on Telegram a press's
      answer becomes the callback toast)
    - ``edit``: for a button press, replace the message the button was on instead of sending
      a new one
    - ``kind``: what sort of answer this is, for adapters and tests
    - ``closes_poll``: the ``Poll.action`` of an earlier vote that is over now (Telegram stops
      that native poll)
    """

    text: str
    title: str | None = None
    fields: tuple[Field, ...] = ()
    buttons: tuple[tuple[Button, ...], ...] = ()
    picks: tuple[AnimeCard, ...] = ()
    poll: Poll | None = None
    ephemeral: bool = False
    edit: bool = False
    kind: ReplyKind = "ok"
    closes_poll: str | None = None

    def all_buttons(self) -> list[Button]:
        """Every button, per-card ones first, in display order (the console numbers these)."""
        found = [b for card in self.picks for b in card.buttons]
        found += [b for row in self.buttons for b in row]
        return found


@dataclass(frozen=True)
class CommandInfo:
    """A command for menus (Telegram setMyCommands, /help)."""

    name: str
    description: str
    usage: str
    admin: bool = False
