"""The command table: every command and button the core answers, declared once.

:data:`COMMANDS` is the single source for dispatch, text parsing, ``/help``, Telegram's
``setMyCommands`` and Discord's slash commands (its descriptions and option names; a test holds
the Discord tree to it). :data:`PRESSES` maps each button kind to its handler. Handlers live in
one module per feature and are plain functions of ``(context, request)``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from bot.core import actions as act
from bot.core import parsing
from bot.core.commands import (
    admin,
    importing,
    lists,
    night,
    onboarding,
    picks,
    profile,
    rating,
    season,
    series,
    social,
    steering,
)
from bot.core.context import Context
from bot.core.parsing import ArgumentError, UsageError, split_command
from bot.core.types import Caller, Command, CommandInfo, Reply, Request

Handler = Callable[[Context, Request], Awaitable[Reply]]
Parser = Callable[[Command, Caller, str], Request]
PressHandler = Callable[[Context, Caller, list[str], str | None], Awaitable[Reply]]


@dataclass(frozen=True)
class Arg:
    """One argument, as Discord shows it as an option (text commands use the usage line)."""

    name: str
    description: str


@dataclass(frozen=True)
class CommandSpec:
    """One command: its name, arguments, help text, usage, who may call it and its code.

    ``menu`` False keeps it out of menus and /help (``/start``, Telegram's greeting).
    """

    name: Command
    description: str
    usage: str
    handler: Handler
    parse: Parser = parsing.plain
    args: tuple[Arg, ...] = ()
    admin: bool = False
    menu: bool = True

    @property
    def info(self) -> CommandInfo:
        return CommandInfo(self.name, self.description, self.usage, self.admin)


_TITLE = Arg("title", "The anime (start typing to search)")

COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec(
        "rate",
        "Rate an anime from 1 to 10",
        "/rate TITLE SCORE  (score 1-10; leave it out to get buttons)",
        rating.rate,
        parsing.rate,
        (_TITLE, Arg("score", "Your score from 1 to 10 (leave it out to get buttons)")),
    ),
    CommandSpec(
        "unrate",
        "Remove one of your ratings",
        "/unrate TITLE",
        rating.unrate,
        parsing.title,
        (Arg("title", "The anime to take off your list"),),
    ),
    CommandSpec(
        "recommend",
        "Personal picks from your ratings",
        "/recommend [HOW_MANY]",
        picks.recommend,
        parsing.recommend,
        (Arg("count", "How many picks (1-25)"),),
    ),
    CommandSpec(
        "similar",
        "Anime like a given one",
        "/similar TITLE",
        picks.similar,
        parsing.title,
        (Arg("title", "The anime you want more of"),),
    ),
    CommandSpec(
        "next",
        "Continue the series: the next entry of what you're watching",
        "/next",
        series.next_,
    ),
    CommandSpec(
        "night",
        "Group anime night: picks nobody has seen",
        "/night [a movie | N episodes | N hours] [NAME NAME ...]  (in a group, no names: "
        "open a lobby to join)",
        night.night,
        parsing.night,
        (
            Arg("voice", "Use the people in my voice channel (default: yes, if I'm in one)"),
            Arg("member1", "Someone watching with you"),
            Arg("member2", "Someone else"),
            Arg("member3", "And someone else"),
            Arg("budget", "How much to watch: a movie, 12 episodes, 3 hours"),
        ),
    ),
    CommandSpec("profile", "Your ratings and favourite genres", "/profile", profile.profile),
    CommandSpec(
        "status",
        "Set an anime's list status (watching, completed, on hold, dropped, plan to watch)",
        "/status TITLE watching|completed|on hold|dropped|plan to watch  (no status: show it)",
        lists.status,
        lists.parse_status,
        (
            _TITLE,
            Arg("status", "watching, completed, on hold, dropped or plan to watch"),
        ),
    ),
    CommandSpec(
        "ptw",
        "What to watch tonight: your plan-to-watch list, best first",
        "/ptw [HOW_MANY]  |  /ptw add TITLE  |  /ptw remove TITLE",
        lists.ptw,
        lists.parse_ptw,
        (
            Arg("add", "An anime to add to your plan-to-watch list"),
            Arg("remove", "An anime to take off your plan-to-watch list"),
        ),
    ),
    CommandSpec(
        "season",
        "This season's (or next season's) anime, ranked for you",
        "/season [now|next]",
        season.season,
        season.parse_season,
        (Arg("which", "now (this season) or next"),),
    ),
    CommandSpec(
        "import",
        "Import your MyAnimeList XML export",
        "/import  (send your MyAnimeList XML export with it)",
        importing.import_,
        parsing.import_,
        (Arg("file", "Your animelist_*.xml export from myanimelist.net"),),
    ),
    CommandSpec(
        "settings",
        "Your settings (NSFW, sharing, title language, less-like-this) or this chat's",
        "/settings [chat] nsfw on|off  |  /settings [chat] radar on|off  |  "
        "/settings share on|off  |  /settings titles english|romaji",
        profile.settings,
        parsing.settings,
        (
            Arg("nsfw", "Show adult titles (leave out to see the current settings)"),
            Arg("scope", "For you, or for this channel (server managers)"),
            Arg("share", "Let people in your groups see your taste (/twin, /fans, /compat)"),
            Arg("titles", "Show titles in English (where known) or romaji"),
            Arg("radar", "Seasonal radar: weekly season picks, a DM when a planned title airs"),
        ),
    ),
    CommandSpec(
        "compat",
        "How well your taste matches someone's",
        "/compat @NAME",
        social.compat,
        parsing.someone,
        (Arg("member", "The person to compare with (they must share their taste)"),),
    ),
    CommandSpec(
        "twin",
        "Your taste twin among the people here",
        "/twin  (in a group)",
        social.twin,
    ),
    CommandSpec(
        "fans",
        "Who here loved an anime",
        "/fans TITLE  (in a group)",
        social.fans,
        parsing.title,
        (Arg("title", "The anime (start typing to search)"),),
    ),
    CommandSpec("help", "What I can do", "/help", profile.help_),
    CommandSpec(
        "retrain", "Retrain the model now", "/retrain  (admins)", admin.retrain, admin=True
    ),
    CommandSpec(
        "model",
        "The serving model, its metrics and the next retrain",
        admin.MODEL_USAGE,
        admin.model,
        args=(Arg("action", "reload: load the serving model again (after fixing a file)"),),
        admin=True,
    ),
    CommandSpec("start", "Say hello", "/start", profile.start, menu=False),
)

BY_NAME: Mapping[str, CommandSpec] = {c.name: c for c in COMMANDS}
#: What menus and /help list (Telegram setMyCommands, Discord descriptions).
COMMAND_INFO: tuple[CommandInfo, ...] = tuple(c.info for c in COMMANDS if c.menu)
USAGE: Mapping[str, str] = {c.name: c.usage for c in COMMANDS}

PRESSES: Mapping[str, PressHandler] = {
    act.RATE: rating.press_rate,
    act.RATE_ASK: rating.press_ask,
    act.NOT_INTERESTED: rating.press_not_interested,
    act.UNRATE: rating.press_unrate,
    act.MORE: picks.press_more,
    act.RECOMMEND: picks.press_recommend,
    act.SIMILAR: picks.press_similar,
    act.NIGHT_JOIN: night.press_join,
    act.NIGHT_GO: night.press_go,
    act.NIGHT_VOTE: night.press_vote,
    act.LESS: steering.press_less,
    act.LESS_UNDO: steering.press_undo,
    act.DECK: onboarding.press_deck,
    act.DECK_RATE: onboarding.press_rate,
    act.NIGHT_VETO: night.press_veto,
    act.NIGHT_DECIDE: night.press_decide,
    act.STATUS: lists.press_status,
    act.RADAR_OFF: season.press_radar_off,
}


def with_usage(exc: ArgumentError, command: str) -> UsageError:
    """The hint completed with the command's usage line."""
    spec = BY_NAME.get(command)
    return UsageError(f"{exc} {spec.usage}" if spec else str(exc))


def parse_line(caller: Caller, line: str) -> Request | None:
    """The Request a command line asks for; None when the line is not a command at all.

    Raises :class:`UsageError` (with the usage line) when it is a command written wrong.
    """
    split = split_command(line)
    if split is None:
        return None
    name, rest = split
    spec = BY_NAME.get(name)
    if spec is None:
        raise UsageError(f"I don't know /{name}. Try /help for the list of commands.")
    try:
        return spec.parse(spec.name, caller, rest)
    except ArgumentError as exc:
        raise with_usage(exc, spec.name) from None


__all__ = [
    "BY_NAME",
    "COMMANDS",
    "COMMAND_INFO",
    "PRESSES",
    "USAGE",
    "Arg",
    "CommandSpec",
    "parse_line",
    "with_usage",
]
