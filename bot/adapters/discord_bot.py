"""The Discord adapter: slash commands, buttons and selects <-> the platform-free command core.

Thin by design: each slash command builds a :class:`~bot.core.types.Request`, each press calls
``Core.press``, and every :class:`~bot.core.types.Reply` is drawn by
:mod:`bot.adapters.discord_render`. What is Discord-specific lives here: typed and ranged
options, title autocomplete, who is an admin (configured ids or a role), the caller's voice
channel for /night, attachments for /import, and answering within Discord's 3-second window
(slow work is deferred, then the original response is edited).

``build_discord_client(core, settings)`` returns a :class:`discord.Client`; ``anirec run`` awaits
``client.start(token)`` in its one event loop next to Telegram and ``client.close()`` on exit.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.adapters.discord_commands import register_commands
from bot.adapters.discord_render import NO_PINGS, CoreButton, CoreSelect, render
from bot.adapters.ordering import KeyedLocks
from bot.adapters.resilience import Outage
from bot.core import Caller, Reply, Request
from bot.core.senders import DM_PREFIX
from bot.text_safety import defuse_mentions, printable

if TYPE_CHECKING:
    from bot.core import Core
    from bot.settings import Settings

log = logging.getLogger(__name__)

#: Answer this fast (seconds) or defer and edit later; Discord allows 3 s for the first answer.
DEFER_AFTER_S = 2.0
#: The store's kv key (plus ``:APPLICATION_ID``) holding the hash of the last synced commands.
SYNC_KEY = "discord:commands"


class AnirecDiscord(discord.Client):
    """A discord.py client whose command tree forwards everything to the core."""

    def __init__(
        self, core: Core, settings: Settings, *, defer_after: float = DEFER_AFTER_S, **options: Any
    ) -> None:
        intents = discord.Intents.none()
        intents.guilds = True  # channels and roles (admin role check)
        intents.voice_states = True  # who is in the caller's voice channel, for /night
        options.setdefault("allowed_mentions", NO_PINGS)  # no message of ours ever pings
        super().__init__(intents=intents, **options)
        self.core, self.settings, self.defer_after = core, settings, defer_after
        self.order = KeyedLocks()  # one person's interactions run in the order they came
        self.outage: Outage | None = None  # told when the gateway is back
        self.tree = app_commands.CommandTree(self)
        self.tree.error(self._on_tree_error)
        register_commands(self.tree)
        self.add_dynamic_items(CoreButton, CoreSelect)

    async def setup_hook(self) -> None:
        """Runs once after login: publish the slash commands, let the core post into chats."""
        await self.sync_commands()
        self.core.register_sender("discord", self.send_to)

    async def close(self) -> None:
        """Stop. discord.py waits ``guild_ready_timeout`` after the last guild before it
        dispatches ``ready``; a bot stopped within that wait would dispatch on a closed client
        (an AttributeError, logged at ERROR by asyncio), so the wait is cancelled first."""
        ready = self._connection._ready_task
        if ready is not None and not ready.done():
            ready.cancel()
        await super().close()

    async def sync_commands(self) -> bool:
        """Publish the slash commands unless this application already has exactly these.

        Why: Discord rate-limits command updates and every client refetches the list after
        one, so a restart with an unchanged table must not publish again. The hash of the
        tree's JSON payload is kept in the store per application id. True when it synced.
        """
        payload = [c.to_dict(self.tree) for c in self.tree.get_commands()]
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        key = f"{SYNC_KEY}:{self.application_id}"
        kv = self.core.store.kv
        if await asyncio.to_thread(kv.get, key) == digest:
            log.info("discord: slash commands unchanged, not synced")
            return False
        await self.tree.sync()
        await asyncio.to_thread(kv.set, key, digest)
        return True

    async def on_ready(self) -> None:
        if self.outage is not None:
            self.outage.ok()

    async def on_resumed(self) -> None:
        if self.outage is not None:
            self.outage.ok()

    # -- who is asking ------------------------------------------------------------------------
    def caller(self, interaction: discord.Interaction) -> Caller:
        user = interaction.user
        in_guild = interaction.guild_id is not None
        role = self.settings.admin_role
        has_role = (
            bool(role)
            and isinstance(user, discord.Member)
            and any(r.name == role for r in user.roles)
        )
        channel = interaction.channel
        title = None
        if in_guild and interaction.guild is not None:
            name = getattr(channel, "name", None)
            title = interaction.guild.name + (f" #{name}" if name else "")
        return Caller(
            platform="discord",
            user_id=str(user.id),
            display_name=user.display_name,
            chat_id=str(interaction.channel_id) if in_guild else None,
            chat_title=title,
            is_group=in_guild,
            is_admin=has_role,
            chat_admin=in_guild and interaction.permissions.manage_guild,
        )

    # -- answering ----------------------------------------------------------------------------
    async def run_command(
        self,
        interaction: discord.Interaction,
        build: Callable[[Caller], Awaitable[Request | Reply]],
    ) -> None:
        """Build the request (may download an attachment), run it in the core, answer."""

        async def work() -> Reply:
            request = await build(self.caller(interaction))
            if isinstance(request, Reply):
                return request
            return await self.core.handle(request)

        await self._answer(interaction, work(), press=False)

    async def on_press(
        self, interaction: discord.Interaction, action: str, value: str | None
    ) -> None:
        """A CoreButton / CoreSelect was used (its owner check already passed)."""
        await self._answer(
            interaction, self.core.press(self.caller(interaction), action, value), press=True
        )

    async def _answer(
        self, interaction: discord.Interaction, work: Awaitable[Reply], *, press: bool
    ) -> None:
        keys = [f"user:{interaction.user.id}"]
        if press and interaction.message is not None:
            keys.append(f"message:{interaction.message.id}")
        task = asyncio.ensure_future(self.order.run(tuple(keys), work))
        deferred = False
        try:
            if self.defer_after > 0:
                await asyncio.wait({task}, timeout=self.defer_after)
            if not task.done():
                deferred = True
                await interaction.response.defer(thinking=not press)
            reply = await task
            await self._deliver(interaction, reply, deferred=deferred, press=press)
        except Exception:
            log.exception("could not answer a Discord interaction")
            task.cancel()
            await self._apologise(interaction)

    async def _deliver(
        self, interaction: discord.Interaction, reply: Reply, *, deferred: bool, press: bool
    ) -> None:
        drawn = render(reply)
        if press and reply.edit:
            if deferred:  # after a deferred update, @original is the message pressed on
                await interaction.edit_original_response(**drawn.kwargs(for_edit=True))
            else:
                await interaction.response.edit_message(**drawn.kwargs(for_edit=True))
        elif not deferred:
            await interaction.response.send_message(**drawn.kwargs(), ephemeral=reply.ephemeral)
        elif press:
            await interaction.followup.send(**drawn.kwargs(), ephemeral=reply.ephemeral)
        elif reply.ephemeral:  # the public "thinking..." can't turn private: replace it
            await interaction.delete_original_response()
            await interaction.followup.send(**drawn.kwargs(), ephemeral=True)
        else:
            await interaction.edit_original_response(**drawn.kwargs(for_edit=True))

    async def _apologise(self, interaction: discord.Interaction) -> None:
        text = "Sorry, something went wrong on my side. Please try again."
        try:
            if interaction.response.is_done():
                await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS)
            else:
                await interaction.response.send_message(
                    text, ephemeral=True, allowed_mentions=NO_PINGS
                )
        except discord.HTTPException:
            log.warning("could not tell the user about the failure either")

    async def _on_tree_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        if isinstance(error, app_commands.TransformerError):
            shown = defuse_mentions(printable(repr(error.value), keep_newlines=False))[:200]
            text = f"I couldn't use {shown} there. Please check that option."
            try:
                if not interaction.response.is_done():
                    await interaction.response.send_message(
                        text, ephemeral=True, allowed_mentions=NO_PINGS
                    )
            except discord.HTTPException:
                pass
            return
        log.error("slash command failed", exc_info=error)
        await self._apologise(interaction)

    # -- posting into a chat (retrain notifications) -------------------------------------------
    async def send_to(self, chat_id: str, reply: Reply) -> None:
        """Post a reply into a channel, or as a DM when ``chat_id`` is ``user:ID`` (opened
        directly) or a bare id that turns out to be a user's."""
        drawn = render(reply).kwargs()
        if chat_id.startswith(DM_PREFIX):
            dm = await self.create_dm(discord.Object(int(chat_id[len(DM_PREFIX) :])))
            await dm.send(**drawn)
            return
        target_id = int(chat_id)
        channel = self.get_channel(target_id)
        if channel is not None and isinstance(channel, discord.abc.Messageable):
            await channel.send(**drawn)
            return
        try:
            await self.get_partial_messageable(target_id).send(**drawn)
        except (discord.NotFound, discord.Forbidden):
            user = await self.fetch_user(target_id)
            await user.send(**drawn)


def build_discord_client(core: Core, settings: Settings, **options: Any) -> AnirecDiscord:
    """The Discord client for ``anirec run``: ``await client.start(token)`` / ``client.close()``.

    ``options`` go to :class:`discord.Client` (plus ``defer_after``, seconds before deferring).
    """
    return AnirecDiscord(core, settings, **options)
