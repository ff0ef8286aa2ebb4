"""A fake Discord: REST API + gateway on 127.0.0.1 that the real discord.py client talks to.

Why: the Discord adapter is tested with the real discord.py over real HTTP and a real websocket,
so the only fake part is Discord itself. Nothing here talks to any other address.

Usage (inside one asyncio loop)::

    async with FakeDiscord() as fake:          # starts the server, patches discord.py to it
        alice = fake.add_member("alice")       # guild members (before the client connects)
        client = build_discord_client(core, settings)
        task = asyncio.create_task(client.start(FakeDiscord.TOKEN))
        await fake.wait_ready()                # IDENTIFY seen, READY + GUILD_CREATE sent
        await fake.wait_synced()               # the slash commands were published
        sent = await fake.push_slash("recommend", {"count": 3}, user=alice)
        reply = await fake.response(sent)      # the interaction callback body (dict)
        final = await fake.answer(sent)        # the final message, even if it was deferred
        fup = await fake.wait_for_call("POST", rf"/webhooks/\\d+/{sent.token}")  # a follow-up
        msg = fake.message_for(sent)           # the stored answer, as edited since
        ids = fake.custom_ids(msg)             # e.g. "ar|<alice id>|ni:12:3" (Anirec's form)
        await fake.push_button(ids[1], user=alice)  # finds the message carrying that id
        await client.close(); await task

API (everything a test needs):
- ``start()`` / ``stop()`` (or ``async with``), ``patch()`` (context manager; ``async with``
  does it) pointing ``discord.http.Route.BASE`` and ``DiscordWebSocket.DEFAULT_GATEWAY`` here.
- ``add_member(name, roles=(), in_voice=False, manage_guild=False)`` -> ``FakeUser``;
  ``add_role(name)`` -> id;
  ``join_voice(user)`` (dispatches VOICE_STATE_UPDATE when connected); ``upload(name, bytes)``.
- ``push_slash(command, options, user, dm=False, validate=True)``,
  ``push_autocomplete(command, options, focused, user)``,
  ``push_button(custom_id, user, message=None)``, ``push_select(custom_id, values, user)``,
  ``push_interaction(payload)`` (raw), ``dispatch(event, data)`` (raw gateway DISPATCH).
  Each push returns ``Pushed(id, token, payload)``. ``command`` may name a subcommand:
  ``"settings nsfw"``. Option types come from the synced command schema, as on real Discord.
- ``calls`` (every REST call, in order, as ``Call``), ``wait_for_call(method, path_pattern,
  timeout=10, since=0, where=None)``, ``wait_synced()``, ``response(pushed)`` (the callback
  JSON), ``answer(pushed)`` (the final message data, deferred or not),
  ``followups(pushed)``, ``commands`` (the last synced global schema), ``guild_commands``,
  ``messages`` (id -> stored message), ``message_for(pushed)``, ``message_with(custom_id)``,
  ``custom_ids(message)``, ``dm_channels`` (user id -> DM channel id),
  ``identify`` (the IDENTIFY payload, token removed).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self

from aiohttp import WSMsgType, web

JSON = dict[str, Any]

OPTION_STRING, OPTION_INTEGER, OPTION_BOOLEAN, OPTION_USER = 3, 4, 5, 6
OPTION_NUMBER, OPTION_ATTACHMENT = 10, 11
SUBCOMMAND, SUBCOMMAND_GROUP = 1, 2
EPHEMERAL, LOADING = 64, 128
MANAGE_GUILD = 1 << 5


@dataclass(frozen=True)
class FakeUser:
    id: int
    name: str
    roles: tuple[int, ...] = ()
    bot: bool = False
    permissions: int = 104324673  # everyday member permissions (no Manage Server)

    def payload(self) -> JSON:
        return {
            "id": str(self.id),
            "username": self.name,
            "global_name": self.name.title(),
            "discriminator": "0",
            "avatar": None,
            "bot": self.bot,
        }


@dataclass
class Call:
    """One REST request the client made (path relative to the API base, query as a dict)."""

    method: str
    path: str
    query: dict[str, str]
    json: Any = None
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    status: int = 200
    response: Any = None


@dataclass(frozen=True)
class Pushed:
    """An interaction the test pushed through the gateway."""

    id: int
    token: str
    payload: JSON


@dataclass(frozen=True)
class Upload:
    """An attachment a user uploads with a slash command (served back over HTTP)."""

    id: int
    filename: str
    data: bytes


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _json_response(body: Any, status: int = 200) -> web.Response:
    # exactly "application/json": discord.py compares the header verbatim (no charset)
    return web.Response(
        body=json.dumps(body).encode(), status=status, headers={"Content-Type": "application/json"}
    )


_APP_IDS = itertools.count(1300000000000000001)


class FakeDiscord:
    """One guild, one text and one voice channel, a bot user, and members the test adds."""

    TOKEN = "fake-bot-token"
    APP_ID = 1100000000000000001
    BOT_ID = 1100000000000000002
    GUILD_ID = 1100000000000000003
    TEXT_CHANNEL_ID = 1100000000000000004
    VOICE_CHANNEL_ID = 1100000000000000005
    OWNER_ID = 1100000000000000006
    HEARTBEAT_MS = 41250

    def __init__(self, *, token: str = TOKEN, app_id: int | None = None) -> None:
        self.token = token
        # Each fake is its own application unless told otherwise, as two bots would be: a
        # client that remembers "already synced" for one app must still publish to another.
        self.APP_ID = app_id if app_id is not None else next(_APP_IDS)
        self.port = 0
        self.bot = FakeUser(self.BOT_ID, "Anirec", bot=True)
        self.members: dict[int, FakeUser] = {}
        self.roles: dict[int, str] = {self.GUILD_ID: "@everyone"}
        self.voice: set[int] = set()
        self.uploads: dict[int, Upload] = {}
        self.calls: list[Call] = []
        self.commands: list[JSON] = []
        self.guild_commands: dict[int, list[JSON]] = {}
        self.messages: dict[int, JSON] = {}
        self.dm_channels: dict[int, int] = {}  # user id -> DM channel id
        self.identify: JSON | None = None
        self.heartbeats = 0
        self._originals: dict[str, int] = {}  # interaction token -> original message id
        self._pushed: dict[int, Pushed] = {}
        self._acked: set[int] = set()
        self._ids = itertools.count(1200000000000000000)
        self._seq = 0
        self._ws: web.WebSocketResponse | None = None
        self._ready = asyncio.Event()
        self.sessions = 0  # READY payloads sent (a reconnecting or restarted client adds one)
        self.resumes = 0  # RESUMED payloads sent (a client that reconnected and resumed)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._patch: contextlib.ExitStack | None = None

    # ----- lifecycle ---------------------------------------------------------------------------
    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.base}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway/"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway/", self._gateway)
        app.router.add_get("/cdn/attachments/{id}/{name}", self._cdn)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        # a restarted fake keeps its port, so a running client can reconnect to it
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @contextlib.contextmanager
    def patch(self) -> Iterator[None]:
        """Point discord.py at this server (REST base and the gateway) for the block's duration."""
        import discord.gateway
        import discord.http
        import yarl

        route, gateway = discord.http.Route, discord.gateway.DiscordWebSocket
        old_base, old_gateway = route.BASE, gateway.DEFAULT_GATEWAY
        route.BASE = self.api_base
        gateway.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield
        finally:
            route.BASE, gateway.DEFAULT_GATEWAY = old_base, old_gateway

    async def __aenter__(self) -> Self:
        await self.start()
        self._patch = contextlib.ExitStack()
        self._patch.enter_context(self.patch())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._patch is not None:
            self._patch.close()
        await self.stop()

    # ----- guild state -------------------------------------------------------------------------
    def add_role(self, name: str) -> int:
        role_id = next(self._ids)
        self.roles[role_id] = name
        return role_id

    def add_member(
        self,
        name: str,
        *,
        roles: tuple[int, ...] = (),
        in_voice: bool = False,
        manage_guild: bool = False,
        user_id: int | None = None,
    ) -> FakeUser:
        """A guild member; ``user_id`` pins the id (ids are otherwise handed out in order, so
        the same position gets the same id in every fake)."""
        perms = FakeUser.permissions | (MANAGE_GUILD if manage_guild else 0)
        uid = next(self._ids) if user_id is None else user_id
        user = FakeUser(uid, name, tuple(roles), permissions=perms)
        self.members[user.id] = user
        if in_voice:
            self.voice.add(user.id)
        return user

    async def join_voice(self, user: FakeUser) -> None:
        self.voice.add(user.id)
        if self._ready.is_set():
            await self.dispatch("VOICE_STATE_UPDATE", self._voice_state(user))

    def upload(self, filename: str, data: bytes) -> Upload:
        item = Upload(next(self._ids), filename, data)
        self.uploads[item.id] = item
        return item

    def _member(self, user: FakeUser) -> JSON:
        return {
            "user": user.payload(),
            "roles": [str(r) for r in user.roles],
            "joined_at": _now(),
            "deaf": False,
            "mute": False,
            "flags": 0,
            "nick": None,
        }

    def _voice_state(self, user: FakeUser) -> JSON:
        return {
            "guild_id": str(self.GUILD_ID),
            "channel_id": str(self.VOICE_CHANNEL_ID),
            "user_id": str(user.id),
            "member": self._member(user),
            "session_id": f"voice-{user.id}",
            "deaf": False,
            "mute": False,
            "self_deaf": False,
            "self_mute": False,
            "self_video": False,
            "suppress": False,
            "request_to_speak_timestamp": None,
        }

    def _channels(self) -> list[JSON]:
        common = {"guild_id": str(self.GUILD_ID), "permission_overwrites": [], "parent_id": None}
        return [
            {
                **common,
                "id": str(self.TEXT_CHANNEL_ID),
                "type": 0,
                "name": "general",
                "position": 0,
                "nsfw": False,
                "topic": None,
                "rate_limit_per_user": 0,
            },
            {
                **common,
                "id": str(self.VOICE_CHANNEL_ID),
                "type": 2,
                "name": "Anime Night",
                "position": 1,
                "bitrate": 64000,
                "user_limit": 0,
                "rtc_region": None,
            },
        ]

    def _guild(self) -> JSON:
        members = [self.bot, *self.members.values()]
        return {
            "id": str(self.GUILD_ID),
            "name": "Anime Club",
            "icon": None,
            "owner_id": str(self.OWNER_ID),
            "unavailable": False,
            "large": False,
            "member_count": len(members),
            "features": [],
            "emojis": [],
            "stickers": [],
            "roles": [
                {
                    "id": str(rid),
                    "name": name,
                    "color": 0,
                    "hoist": False,
                    "position": i,
                    "permissions": "104324673",
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                }
                for i, (rid, name) in enumerate(self.roles.items())
            ],
            "channels": self._channels(),
            "members": [self._member(u) for u in members],
            "voice_states": [self._voice_state(self.members[uid]) for uid in sorted(self.voice)],
            "presences": [],
            "threads": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "joined_at": _now(),
            "premium_tier": 0,
            "preferred_locale": "en-US",
        }

    # ----- gateway -----------------------------------------------------------------------------
    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._ws = ws
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": self.HEARTBEAT_MS}}))
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            op = frame.get("op")
            if op == 1:
                self.heartbeats += 1
                await ws.send_str(json.dumps({"op": 11}))
            elif op == 2:
                await self._on_identify(frame["d"])
            elif op == 6:
                await self.dispatch("RESUMED", {})
                async with self._changed:
                    self.resumes += 1
                    self._changed.notify_all()
        return ws

    async def _on_identify(self, data: JSON) -> None:
        if data.get("token") != self.token:
            assert self._ws is not None
            await self._ws.close(code=4004, message=b"Authentication failed.")
            return
        self.identify = {k: v for k, v in data.items() if k != "token"}
        self._seq = 0
        await self.dispatch(
            "READY",
            {
                "v": 10,
                "user": {**self.bot.payload(), "verified": True, "mfa_enabled": False},
                "guilds": [{"id": str(self.GUILD_ID), "unavailable": True}],
                "session_id": "fake-session",
                "resume_gateway_url": self.gateway_url,
                "application": {"id": str(self.APP_ID), "flags": 0},
            },
        )
        await self.dispatch("GUILD_CREATE", self._guild())
        self._ready.set()
        async with self._changed:
            self.sessions += 1
            self._changed.notify_all()

    async def dispatch(self, event: str, data: Any) -> None:
        """Send one DISPATCH frame (a JSON text frame, no compression) to the client."""
        if self._ws is None or self._ws.closed:
            raise RuntimeError("no client is connected to the fake gateway")
        self._seq += 1
        await self._ws.send_str(json.dumps({"op": 0, "t": event, "s": self._seq, "d": data}))

    async def wait_ready(self, timeout: float = 10.0, *, sessions: int = 1) -> None:
        """Wait until READY + GUILD_CREATE went out ``sessions`` times in all (2: a restart)."""

        async def wait() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: self.sessions >= sessions)

        await asyncio.wait_for(wait(), timeout)

    async def wait_online(self, connections: int, timeout: float = 30.0) -> None:
        """Wait until READY or RESUMED went out ``connections`` times in all."""

        async def wait() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: self.sessions + self.resumes >= connections)

        await asyncio.wait_for(wait(), timeout)

    # ----- pushing interactions ----------------------------------------------------------------
    def _base_interaction(self, kind: int, user: FakeUser, *, dm: bool = False) -> JSON:
        iid = next(self._ids)
        payload: JSON = {
            "id": str(iid),
            "application_id": str(self.APP_ID),
            "type": kind,
            "token": f"itoken-{iid}",
            "version": 1,
            "locale": "en-US",
            "app_permissions": "2248473465835073",
            "entitlements": [],
            "attachment_size_limit": 26214400,
        }
        if dm:
            channel = {"id": str(next(self._ids)), "type": 1, "recipients": [user.payload()]}
            payload.update(
                channel=channel,
                channel_id=channel["id"],
                user=user.payload(),
                context=1,
                authorizing_integration_owners={"1": str(user.id)},
            )
        else:
            member = {**self._member(user), "permissions": str(user.permissions)}
            payload.update(
                guild_id=str(self.GUILD_ID),
                guild_locale="en-US",
                member=member,
                context=0,
                channel=self._channels()[0],
                channel_id=str(self.TEXT_CHANNEL_ID),
                guild={"id": str(self.GUILD_ID), "locale": "en-US", "features": []},
                authorizing_integration_owners={"0": str(self.GUILD_ID)},
            )
        return payload

    async def push_interaction(self, payload: JSON) -> Pushed:
        pushed = Pushed(int(payload["id"]), payload["token"], payload)
        self._pushed[pushed.id] = pushed
        await self.dispatch("INTERACTION_CREATE", payload)
        return pushed

    def _find_command(self, path: str) -> tuple[JSON, list[JSON], list[str]]:
        """The synced top-level command, the option schemas at the leaf, and the subcommands."""
        head, *subs = path.split()
        for cmd in [*self.commands, *itertools.chain(*self.guild_commands.values())]:
            if cmd["name"] == head:
                break
        else:
            raise LookupError(f"command /{head} was never synced (have {self.command_names()})")
        options = cmd.get("options", [])
        for sub in subs:
            found = [o for o in options if o["name"] == sub and o["type"] in (1, 2)]
            if not found:
                raise LookupError(f"/{head} has no subcommand {sub!r}")
            options = found[0].get("options", [])
        return cmd, options, subs

    def command_names(self) -> list[str]:
        return sorted(c["name"] for c in self.commands)

    def _build_options(
        self,
        schema: list[JSON],
        values: dict[str, Any],
        resolved: JSON,
        *,
        validate: bool,
        focused: str | None = None,
    ) -> list[JSON]:
        by_name = {o["name"]: o for o in schema}
        out: list[JSON] = []
        for name, value in values.items():
            if name not in by_name:
                raise LookupError(f"option {name!r} is not in the schema ({sorted(by_name)})")
            spec = by_name[name]
            kind = spec["type"]
            option: JSON = {"name": name, "type": kind}
            if name == focused:
                option.update(value=str(value), focused=True)
            elif kind == OPTION_ATTACHMENT:
                assert isinstance(value, Upload), f"{name}: pass fake.upload(...)"
                resolved.setdefault("attachments", {})[str(value.id)] = self._attachment(value)
                option["value"] = str(value.id)
            elif kind == OPTION_USER:
                assert isinstance(value, FakeUser), f"{name}: pass a FakeUser"
                resolved.setdefault("users", {})[str(value.id)] = value.payload()
                member = {k: v for k, v in self._member(value).items() if k != "user"}
                resolved.setdefault("members", {})[str(value.id)] = member
                option["value"] = str(value.id)
            else:
                if validate:
                    self._check_value(spec, value)
                option["value"] = value
            out.append(option)
        if validate and focused is None:
            missing = [o["name"] for o in schema if o.get("required") and o["name"] not in values]
            if missing:
                raise ValueError(f"a Discord client would not send this: missing {missing}")
        return out

    @staticmethod
    def _check_value(spec: JSON, value: Any) -> None:
        """What the real Discord client enforces before a command is ever sent."""
        kind, name = spec["type"], spec["name"]
        expected = {
            OPTION_STRING: str,
            OPTION_INTEGER: int,
            OPTION_BOOLEAN: bool,
            OPTION_NUMBER: (int, float),
        }.get(kind)
        if expected is not None and not isinstance(value, expected):
            raise ValueError(f"{name}: {value!r} is not of option type {kind}")
        if "min_value" in spec and value < spec["min_value"]:
            raise ValueError(f"{name}: {value} < min_value {spec['min_value']}")
        if "max_value" in spec and value > spec["max_value"]:
            raise ValueError(f"{name}: {value} > max_value {spec['max_value']}")
        choices = spec.get("choices")
        if choices and value not in [c["value"] for c in choices]:
            raise ValueError(f"{name}: {value!r} is not one of the choices")

    def _attachment(self, item: Upload) -> JSON:
        url = f"{self.base}/cdn/attachments/{item.id}/{item.filename}"
        return {
            "id": str(item.id),
            "filename": item.filename,
            "size": len(item.data),
            "url": url,
            "proxy_url": url,
            "content_type": "application/xml",
        }

    def _command_data(
        self, command: str, options: dict[str, Any], *, validate: bool, focused: str | None
    ) -> JSON:
        cmd, schema, subs = self._find_command(command)
        resolved: JSON = {}
        leaf = self._build_options(schema, options, resolved, validate=validate, focused=focused)
        for sub in reversed(subs):  # wrap the leaf options in their subcommand (group) options
            cmd_schema = self._find_command(command.split()[0])[1]
            kind = next((o["type"] for o in cmd_schema if o["name"] == sub), SUBCOMMAND)
            leaf = [{"name": sub, "type": kind, "options": leaf}]
        data: JSON = {"id": cmd["id"], "name": cmd["name"], "type": 1, "options": leaf}
        if cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        if resolved:
            data["resolved"] = resolved
        return data

    async def push_slash(
        self,
        command: str,
        options: dict[str, Any] | None = None,
        *,
        user: FakeUser,
        dm: bool = False,
        validate: bool = True,
    ) -> Pushed:
        """A user runs ``/command`` (``"group sub"`` for subcommands) with these option values."""
        payload = self._base_interaction(2, user, dm=dm)
        payload["data"] = self._command_data(
            command, options or {}, validate=validate, focused=None
        )
        return await self.push_interaction(payload)

    async def push_autocomplete(
        self, command: str, options: dict[str, Any], focused: str, *, user: FakeUser, dm=False
    ) -> Pushed:
        """The user is typing into option ``focused`` (its partial text is in ``options``)."""
        payload = self._base_interaction(4, user, dm=dm)
        payload["data"] = self._command_data(command, options, validate=False, focused=focused)
        return await self.push_interaction(payload)

    def message_with(self, custom_id: str) -> JSON:
        """The newest stored message that carries a component with this custom_id."""
        for message in reversed(list(self.messages.values())):
            if custom_id in self.custom_ids(message):
                return message
        raise LookupError(f"no message carries a component {custom_id!r}")

    @staticmethod
    def custom_ids(message: JSON) -> list[str]:
        out: list[str] = []

        def walk(components: list[JSON]) -> None:
            for c in components:
                if "custom_id" in c:
                    out.append(c["custom_id"])
                walk(c.get("components", []))

        walk(message.get("components", []))
        return out

    async def _push_component(
        self, custom_id: str, user: FakeUser, message: JSON | None, data: JSON
    ) -> Pushed:
        message = message or self.message_with(custom_id)
        dm = message.get("_dm", False)
        payload = self._base_interaction(3, user, dm=dm)
        if dm:
            payload["channel"]["id"] = payload["channel_id"] = message["channel_id"]
        payload["message"] = {k: v for k, v in message.items() if not k.startswith("_")}
        payload["data"] = {"custom_id": custom_id, **data}
        return await self.push_interaction(payload)

    async def push_button(
        self, custom_id: str, *, user: FakeUser, message: JSON | None = None
    ) -> Pushed:
        return await self._push_component(custom_id, user, message, {"component_type": 2})

    async def push_select(
        self, custom_id: str, values: list[str], *, user: FakeUser, message: JSON | None = None
    ) -> Pushed:
        return await self._push_component(
            custom_id, user, message, {"component_type": 3, "values": list(values)}
        )

    # ----- observing what the client did -------------------------------------------------------
    async def _record(self, call: Call) -> None:
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()

    async def wait_for_call(
        self,
        method: str,
        path_pattern: str,
        timeout: float = 10.0,
        *,
        since: int = 0,
        where: Callable[[Call], bool] | None = None,
    ) -> Call:
        """The first call at index >= ``since`` whose path fully matches ``path_pattern``.

        ``method`` is matched as a regular expression too (``"PATCH|POST"``).
        """
        regex = re.compile(path_pattern)

        def find() -> Call | None:
            for call in self.calls[since:]:
                matches = re.fullmatch(method, call.method) and regex.fullmatch(call.path)
                if matches and (where is None or where(call)):
                    return call
            return None

        async def wait() -> Call:
            async with self._changed:
                while (found := find()) is None:
                    await self._changed.wait()
                return found

        try:
            return await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            seen = [f"{c.method} {c.path}" for c in self.calls[since:]]
            raise AssertionError(
                f"no {method} {path_pattern} within {timeout}s; saw {seen}"
            ) from None

    async def response(self, pushed: Pushed, timeout: float = 10.0) -> JSON:
        """The body of the interaction callback the client sent for ``pushed``."""
        path = rf"/interactions/{pushed.id}/{re.escape(pushed.token)}/callback"
        return (await self.wait_for_call("POST", path, timeout)).json

    async def answer(self, pushed: Pushed, timeout: float = 30.0) -> JSON:
        """What finally answered ``pushed`` (content, embeds, components, flags), whether it
        was sent at once (callback type 4 or 7) or deferred (type 5 or 6) and then edited in
        or followed up. Use it where the bot may take longer than its defer threshold."""
        body = await self.response(pushed, timeout)
        if body.get("type") in (4, 7):
            return body.get("data") or {}
        if body.get("type") not in (5, 6):
            raise AssertionError(f"interaction {pushed.id} was answered with {body}")
        prefix = rf"/webhooks/{self.APP_ID}/{re.escape(pushed.token)}"
        call = await self.wait_for_call("PATCH|POST", rf"{prefix}(/messages/@original)?", timeout)
        return call.json or {}

    async def wait_synced(self, timeout: float = 10.0) -> list[JSON]:
        """Wait until the client has published its global slash commands; returns them."""
        await self.wait_for_call("PUT", rf"/applications/{self.APP_ID}/commands", timeout)
        return self.commands

    def followups(self, pushed: Pushed) -> list[JSON]:
        """Follow-up messages and edits of the original response sent so far for ``pushed``."""
        prefix = f"/webhooks/{self.APP_ID}/{pushed.token}"
        return [c.json for c in self.calls if c.path.startswith(prefix) and c.json is not None]

    def message_for(self, pushed: Pushed) -> JSON:
        """The message that answered ``pushed`` (the original response, as edited since)."""
        return self.messages[self._originals[pushed.token]]

    # ----- REST ------------------------------------------------------------------------------
    async def _cdn(self, request: web.Request) -> web.Response:
        item = self.uploads.get(int(request.match_info["id"]))
        if item is None:
            return web.Response(status=404)
        return web.Response(body=item.data, headers={"Content-Type": "application/octet-stream"})

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        call = Call(request.method, path, dict(request.query))
        if request.content_type == "multipart/form-data":
            form = await request.post()
            for key, value in form.items():
                if key == "payload_json":
                    call.json = json.loads(str(value))
                elif hasattr(value, "file"):
                    call.files[key] = (value.filename, value.file.read())
        elif request.can_read_body:
            raw = await request.read()
            call.json = json.loads(raw) if raw else None
        is_webhook = path.startswith(("/webhooks/", "/interactions/"))
        if not is_webhook and request.headers.get("Authorization") != f"Bot {self.token}":
            call.status, call.response = 401, {"message": "401: Unauthorized", "code": 0}
        else:
            call.status, call.response = self._route(call)
        await self._record(call)
        if call.status == 204:
            return web.Response(status=204)
        return _json_response(call.response, call.status)

    def _route(self, call: Call) -> tuple[int, Any]:
        m, p = call.method, call.path
        app = str(self.APP_ID)
        routes: list[tuple[str, str, Callable[..., tuple[int, Any]]]] = [
            ("GET", r"/gateway", lambda: (200, {"url": self.gateway_url})),
            ("GET", r"/gateway/bot", self._gateway_bot),
            ("GET", r"/users/@me", lambda: (200, self.bot.payload())),
            ("GET", r"/users/(\d+)", self._user),
            ("GET", r"/oauth2/applications/@me", self._app_info),
            ("POST", r"/auth/logout", lambda: (204, None)),
            ("PUT", rf"/applications/{app}/commands", lambda: self._sync(call, None)),
            ("GET", rf"/applications/{app}/commands", lambda: (200, self.commands)),
            ("PUT", rf"/applications/{app}/guilds/(\d+)/commands", lambda g: self._sync(call, g)),
            ("POST", r"/interactions/(\d+)/([^/]+)/callback", lambda i, t: self._callback(call, i)),
            ("POST", r"/webhooks/(\d+)/([^/]+)", lambda a, t: self._followup(call, t)),
            (
                "GET",
                r"/webhooks/(\d+)/([^/]+)/messages/([^/]+)",
                lambda a, t, mid: self._get(t, mid),
            ),
            (
                "PATCH",
                r"/webhooks/(\d+)/([^/]+)/messages/([^/]+)",
                lambda a, t, mid: self._edit(call, t, mid),
            ),
            (
                "DELETE",
                r"/webhooks/(\d+)/([^/]+)/messages/([^/]+)",
                lambda a, t, mid: self._delete(t, mid),
            ),
            ("POST", r"/channels/(\d+)/messages", lambda c: self._post_message(call, int(c))),
            (
                "PATCH",
                r"/channels/(\d+)/messages/(\d+)",
                lambda c, mid: self._edit(call, None, mid),
            ),
            ("GET", r"/channels/(\d+)", lambda c: self._channel(int(c))),
            ("POST", r"/users/@me/channels", lambda: self._dm_channel(call)),
        ]
        for method, pattern, handler in routes:
            match = re.fullmatch(pattern, p)
            if match and method == m:
                return handler(*match.groups())
        return 404, {"message": f"404: Not Found ({m} {p})", "code": 0}

    def _gateway_bot(self) -> tuple[int, Any]:
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return 200, {"url": self.gateway_url, "shards": 1, "session_start_limit": limit}

    def _app_info(self) -> tuple[int, Any]:
        owner = FakeUser(self.OWNER_ID, "owner").payload()
        return 200, {
            "id": str(self.APP_ID),
            "name": "Anirec",
            "icon": None,
            "description": "",
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": owner,
            "verify_key": "0" * 64,
            "flags": 0,
            "team": None,
        }

    def _sync(self, call: Call, guild_id: str | None) -> tuple[int, Any]:
        synced = []
        for cmd in call.json or []:
            full = {**cmd, "id": str(next(self._ids)), "application_id": str(self.APP_ID)}
            full.setdefault("version", "1")
            full.setdefault("type", 1)
            full.setdefault("description", "")
            if guild_id is not None:
                full["guild_id"] = guild_id
            synced.append(full)
        if guild_id is None:
            self.commands = synced
        else:
            self.guild_commands[int(guild_id)] = synced
        return 200, synced

    def _channel(self, channel_id: int) -> tuple[int, Any]:
        for channel in self._channels():
            if int(channel["id"]) == channel_id:
                return 200, channel
        return 404, {"message": "Unknown Channel", "code": 10003}

    def _user(self, user_id: str) -> tuple[int, Any]:
        user = self.members.get(int(user_id))
        if user is None:
            return 404, {"message": "Unknown User", "code": 10013}
        return 200, user.payload()

    def _dm_channel(self, call: Call) -> tuple[int, Any]:
        recipient = int((call.json or {})["recipient_id"])
        user = self.members.get(recipient, FakeUser(recipient, f"user{recipient}"))
        channel_id = self.dm_channels.setdefault(recipient, next(self._ids))
        return 200, {"id": str(channel_id), "type": 1, "recipients": [user.payload()]}

    def _post_message(self, call: Call, channel_id: int) -> tuple[int, Any]:
        known = {self.TEXT_CHANNEL_ID, self.VOICE_CHANNEL_ID, *self.dm_channels.values()}
        if channel_id not in known:
            return 404, {"message": "Unknown Channel", "code": 10003}
        dm = channel_id in self.dm_channels.values()
        return 200, self._store(channel_id, call.json or {}, dm=dm)

    def _store(self, channel_id: int, data: JSON, *, token: str | None = None, dm=False) -> JSON:
        mid = next(self._ids)
        message = {
            "id": str(mid),
            "channel_id": str(channel_id),
            "type": 0 if token is None else 20,
            "content": data.get("content") or "",
            "embeds": data.get("embeds") or [],
            "components": data.get("components") or [],
            "attachments": [],
            "mentions": [],
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": False,
            "timestamp": _now(),
            "edited_timestamp": None,
            "flags": int(data.get("flags") or 0),
            "author": self.bot.payload(),
            "application_id": str(self.APP_ID),
            "_dm": dm,
        }
        if token is not None:
            message["webhook_id"] = str(self.APP_ID)
        self.messages[mid] = message
        return {k: v for k, v in message.items() if not k.startswith("_")}

    def _callback(self, call: Call, interaction_id: str) -> tuple[int, Any]:
        iid = int(interaction_id)
        pushed = self._pushed.get(iid)
        if pushed is None:
            return 404, {"message": "Unknown interaction", "code": 10062}
        if iid in self._acked:
            return 400, {"message": "Interaction has already been acknowledged.", "code": 40060}
        self._acked.add(iid)
        body = call.json or {}
        kind, data = body.get("type"), body.get("data") or {}
        info: JSON = {"id": str(iid), "type": pushed.payload["type"]}
        result: JSON = {"interaction": info}
        channel_id = int(pushed.payload["channel_id"])
        dm = "guild_id" not in pushed.payload
        if kind in (4, 5):
            if kind == 5:
                data = {**data, "flags": int(data.get("flags") or 0) | LOADING}
            message = self._store(channel_id, data, token=pushed.token, dm=dm)
            self._originals[pushed.token] = int(message["id"])
            info.update(
                response_message_id=message["id"],
                response_message_loading=kind == 5,
                response_message_ephemeral=bool(message["flags"] & EPHEMERAL),
            )
            result["resource"] = {"type": kind, "message": message}
        elif kind == 7 and "message" in pushed.payload:
            mid = int(pushed.payload["message"]["id"])
            result["resource"] = {"type": 7, "message": self._apply_edit(mid, data)}
            info["response_message_id"] = str(mid)
        elif kind == 6 and "message" in pushed.payload:
            self._originals[pushed.token] = int(pushed.payload["message"]["id"])
        return 200, result

    def _followup(self, call: Call, token: str) -> tuple[int, Any]:
        pushed = next((p for p in self._pushed.values() if p.token == token), None)
        if pushed is None:
            return 404, {"message": "Unknown Webhook", "code": 10015}
        dm = "guild_id" not in pushed.payload
        message = self._store(
            int(pushed.payload["channel_id"]), call.json or {}, token=token, dm=dm
        )
        return 200, message

    def _resolve(self, token: str | None, message_id: str) -> int | None:
        if message_id == "@original":
            return self._originals.get(token or "")
        return int(message_id) if int(message_id) in self.messages else None

    def _apply_edit(self, mid: int, data: JSON) -> JSON:
        message = self.messages[mid]
        for key in ("content", "embeds", "components"):
            if key in data:
                message[key] = (
                    data[key] if data[key] is not None else ([] if key != "content" else "")
                )
        flags = int(data.get("flags", message["flags"]) or 0)
        message["flags"] = flags & ~LOADING
        message["edited_timestamp"] = _now()
        return {k: v for k, v in message.items() if not k.startswith("_")}

    def _edit(self, call: Call, token: str | None, message_id: str) -> tuple[int, Any]:
        mid = self._resolve(token, message_id)
        if mid is None:
            return 404, {"message": "Unknown Message", "code": 10008}
        return 200, self._apply_edit(mid, call.json or {})

    def _get(self, token: str, message_id: str) -> tuple[int, Any]:
        mid = self._resolve(token, message_id)
        if mid is None:
            return 404, {"message": "Unknown Message", "code": 10008}
        return 200, {k: v for k, v in self.messages[mid].items() if not k.startswith("_")}

    def _delete(self, token: str, message_id: str) -> tuple[int, Any]:
        mid = self._resolve(token, message_id)
        if mid is None:
            return 404, {"message": "Unknown Message", "code": 10008}
        del self.messages[mid]
        return 204, None
