"""Discord's slash commands: one registration function per feature, each command building the
core Request it stands for. Names, descriptions and options match the core's command table
(tests/test_commands.py checks it)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import discord
from discord import app_commands

from bot.adapters.discord_night import night_request
from bot.core import COMMAND_INFO, Caller, Member, Reply, Request
from bot.core.limits import MAX_K, MAX_SCORE, MIN_SCORE
from bot.core.statuses import read_status
from storage.importers import MAX_XML_BYTES

if TYPE_CHECKING:
    from bot.core import Core

log = logging.getLogger(__name__)

DESCRIPTIONS = {c.name: c.description[:100] for c in COMMAND_INFO}
Title = app_commands.Range[str, 1, 100]


class SlashHost(Protocol):
    """What a command needs from the client it runs in (the client itself, at run time)."""

    core: Core

    def caller(self, interaction: discord.Interaction) -> Caller: ...

    async def run_command(
        self,
        interaction: discord.Interaction,
        build: Callable[[Caller], Awaitable[Request | Reply]],
    ) -> None: ...


def _client(interaction: discord.Interaction) -> SlashHost:
    return interaction.client  # type: ignore[return-value]


async def _titles(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    """Title autocomplete: fuzzy catalog search; the value ``#ID`` resolves exactly."""
    bot = _client(interaction)
    found = await bot.core.autocomplete(bot.caller(interaction), current, 25)
    return [app_commands.Choice(name=c.label[:100] or c.value, value=c.value[:100]) for c in found]


def register_commands(tree: app_commands.CommandTree) -> None:
    """Declare every command with typed, ranged options; each builds one core Request."""
    _register_rating(tree)
    _register_picks(tree)
    _register_profile(tree)
    _register_settings(tree)
    _register_admin(tree)
    _register_social(tree)
    _register_lists(tree)


def _request(command: str, **fields: Any) -> Callable[[Caller], Awaitable[Request]]:
    """A builder of the core Request for ``command`` with fixed ``fields``."""

    async def build(caller: Caller) -> Request:
        return Request(command, caller, **fields)  # type: ignore[arg-type]

    return build


def _register_rating(tree: app_commands.CommandTree) -> None:
    """/rate and /unrate."""

    @tree.command(name="rate", description=DESCRIPTIONS["rate"])
    @app_commands.describe(
        title="The anime (start typing to search)",
        score="Your score from 1 to 10 (leave it out to get buttons)",
    )
    @app_commands.autocomplete(title=_titles)
    async def rate(
        interaction: discord.Interaction,
        title: Title,
        score: app_commands.Range[int, MIN_SCORE, MAX_SCORE] | None = None,
    ) -> None:
        await _client(interaction).run_command(
            interaction, _request("rate", title=title, score=score, text=title)
        )

    @tree.command(name="unrate", description=DESCRIPTIONS["unrate"])
    @app_commands.describe(title="The anime to take off your list")
    @app_commands.autocomplete(title=_titles)
    async def unrate(interaction: discord.Interaction, title: Title) -> None:
        await _client(interaction).run_command(
            interaction, _request("unrate", title=title, text=title)
        )


def _register_picks(tree: app_commands.CommandTree) -> None:
    """/recommend, /similar, /next and /night."""

    @tree.command(name="recommend", description=DESCRIPTIONS["recommend"])
    @app_commands.describe(count="How many picks (1-25)")
    async def recommend(
        interaction: discord.Interaction, count: app_commands.Range[int, 1, MAX_K] | None = None
    ) -> None:
        await _client(interaction).run_command(interaction, _request("recommend", k=count))

    @tree.command(name="similar", description=DESCRIPTIONS["similar"])
    @app_commands.describe(title="The anime you want more of")
    @app_commands.autocomplete(title=_titles)
    async def similar(interaction: discord.Interaction, title: Title) -> None:
        await _client(interaction).run_command(
            interaction, _request("similar", title=title, text=title)
        )

    @tree.command(name="next", description=DESCRIPTIONS["next"])
    async def next_(interaction: discord.Interaction) -> None:
        await _client(interaction).run_command(interaction, _request("next"))

    @tree.command(name="night", description=DESCRIPTIONS["night"])
    @app_commands.describe(
        voice="Use the people in my voice channel (default: yes, if I'm in one)",
        member1="Someone watching with you",
        member2="Someone else",
        member3="And someone else",
        budget="How much to watch: a movie, 12 episodes, 3 hours",
    )
    async def night(
        interaction: discord.Interaction,
        voice: bool | None = None,
        member1: discord.User | None = None,
        member2: discord.User | None = None,
        member3: discord.User | None = None,
        budget: app_commands.Range[str, 1, 40] | None = None,
    ) -> None:
        named = [m for m in (member1, member2, member3) if m is not None]
        await _client(interaction).run_command(
            interaction, night_request(interaction, voice, named, budget)
        )


def _register_profile(tree: app_commands.CommandTree) -> None:
    """/profile, /import and /help."""

    @tree.command(name="profile", description=DESCRIPTIONS["profile"])
    async def profile(interaction: discord.Interaction) -> None:
        await _client(interaction).run_command(interaction, _request("profile"))

    @tree.command(name="import", description=DESCRIPTIONS["import"])
    @app_commands.describe(file="Your animelist_*.xml export from myanimelist.net")
    async def import_(interaction: discord.Interaction, file: discord.Attachment) -> None:
        async def build(caller: Caller) -> Request | Reply:
            if file.size > MAX_XML_BYTES:
                return Reply(
                    f"That file is too big (limit {MAX_XML_BYTES // 2**20} MB).",
                    kind="error",
                    ephemeral=True,
                )
            try:
                data = await file.read()
            except discord.HTTPException as exc:  # Discord's side: say so, import nothing
                log.warning("discord: could not download an attachment: %s", exc)
                return Reply(
                    "Sorry, I couldn't download that file from Discord; please send it again.",
                    kind="error",
                    ephemeral=True,
                )
            return Request("import", caller, data=data, filename=file.filename, text=file.filename)

        await _client(interaction).run_command(interaction, build)

    @tree.command(name="help", description=DESCRIPTIONS["help"])
    async def help_(interaction: discord.Interaction) -> None:
        await _client(interaction).run_command(interaction, _request("help"))


def _register_settings(tree: app_commands.CommandTree) -> None:
    """/settings: NSFW, sharing and title language, for the person or the channel."""

    @tree.command(name="settings", description=DESCRIPTIONS["settings"])
    @app_commands.describe(
        nsfw="Show adult titles (leave out to see the current settings)",
        scope="For you, or for this channel (server managers)",
        share="Let people in your groups see your taste (/twin, /fans, /compat)",
        titles="Show titles in English (where known) or romaji",
        radar="Seasonal radar: weekly season picks, a DM when a planned title airs",
    )
    @app_commands.choices(
        scope=[
            app_commands.Choice(name="just me", value="user"),
            app_commands.Choice(name="this channel", value="chat"),
        ],
        titles=[
            app_commands.Choice(name="English", value="english"),
            app_commands.Choice(name="romaji", value="romaji"),
        ],
    )
    async def settings(
        interaction: discord.Interaction,
        nsfw: bool | None = None,
        scope: app_commands.Choice[str] | None = None,
        share: bool | None = None,
        titles: app_commands.Choice[str] | None = None,
        radar: bool | None = None,
    ) -> None:
        where = scope.value if scope is not None else "user"
        fields: dict[str, Any] = {"setting": "nsfw", "value": nsfw, "scope": where}
        if radar is not None:  # one change per command: radar, sharing, titles, then nsfw
            fields = {"setting": "radar", "value": radar, "scope": where}
        elif share is not None:  # one change per command: sharing, then titles, then nsfw
            fields = {"setting": "share", "value": share, "scope": "user"}
        elif titles is not None:
            fields = {"setting": "titles", "option": titles.value, "scope": "user"}
        await _client(interaction).run_command(interaction, _request("settings", **fields))


def _register_admin(tree: app_commands.CommandTree) -> None:
    """/retrain and /model: shown only to members who may manage the server (a server can
    grant them to others in its Integrations settings); the core checks again."""

    @tree.command(name="retrain", description=DESCRIPTIONS["retrain"])
    @app_commands.default_permissions(manage_guild=True)
    async def retrain(interaction: discord.Interaction) -> None:
        await _client(interaction).run_command(interaction, _request("retrain"))

    @tree.command(name="model", description=DESCRIPTIONS["model"])
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.describe(action="reload: load the serving model again (after fixing a file)")
    @app_commands.choices(action=[app_commands.Choice(name="reload", value="reload")])
    async def model(
        interaction: discord.Interaction, action: app_commands.Choice[str] | None = None
    ) -> None:
        text = action.value if action is not None else ""
        await _client(interaction).run_command(interaction, _request("model", text=text))


def _register_social(tree: app_commands.CommandTree) -> None:
    """/compat, /twin and /fans."""

    @tree.command(name="compat", description=DESCRIPTIONS["compat"])
    @app_commands.describe(member="The person to compare with (they must share their taste)")
    async def compat(interaction: discord.Interaction, member: discord.User) -> None:
        person = Member(str(member.id), member.display_name)
        await _client(interaction).run_command(
            interaction, _request("compat", members=(person,), text=member.display_name)
        )

    @tree.command(name="twin", description=DESCRIPTIONS["twin"])
    async def twin(interaction: discord.Interaction) -> None:
        await _client(interaction).run_command(interaction, _request("twin"))

    @tree.command(name="fans", description=DESCRIPTIONS["fans"])
    @app_commands.describe(title="The anime (start typing to search)")
    @app_commands.autocomplete(title=_titles)
    async def fans(interaction: discord.Interaction, title: Title) -> None:
        await _client(interaction).run_command(
            interaction, _request("fans", title=title, text=title)
        )


STATUS_CHOICES = [
    app_commands.Choice(name=n, value=n)
    for n in ("watching", "completed", "on hold", "dropped", "plan to watch")
]


def _register_lists(tree: app_commands.CommandTree) -> None:
    """/status, /ptw and /season."""

    @tree.command(name="status", description=DESCRIPTIONS["status"])
    @app_commands.describe(
        title="The anime (start typing to search)",
        status="watching, completed, on hold, dropped or plan to watch",
    )
    @app_commands.choices(status=STATUS_CHOICES)
    @app_commands.autocomplete(title=_titles)
    async def status(
        interaction: discord.Interaction,
        title: Title,
        status: app_commands.Choice[str] | None = None,
    ) -> None:
        wanted = read_status(status.value) if status is not None else None
        await _client(interaction).run_command(
            interaction, _request("status", title=title, option=wanted, text=title)
        )

    @tree.command(name="ptw", description=DESCRIPTIONS["ptw"])
    @app_commands.describe(
        add="An anime to add to your plan-to-watch list",
        remove="An anime to take off your plan-to-watch list",
    )
    @app_commands.autocomplete(add=_titles, remove=_titles)
    async def ptw(
        interaction: discord.Interaction, add: Title | None = None, remove: Title | None = None
    ) -> None:
        fields: dict[str, Any] = {}
        if add is not None:
            fields = {"setting": "add", "title": add, "text": add}
        elif remove is not None:
            fields = {"setting": "remove", "title": remove, "text": remove}
        await _client(interaction).run_command(interaction, _request("ptw", **fields))

    @tree.command(name="season", description=DESCRIPTIONS["season"])
    @app_commands.describe(which="now (this season) or next")
    @app_commands.choices(
        which=[
            app_commands.Choice(name="this season", value="now"),
            app_commands.Choice(name="next season", value="next"),
        ]
    )
    async def season(
        interaction: discord.Interaction, which: app_commands.Choice[str] | None = None
    ) -> None:
        option = which.value if which is not None else "now"
        await _client(interaction).run_command(interaction, _request("season", option=option))
