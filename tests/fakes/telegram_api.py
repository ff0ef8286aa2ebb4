"""A fake Telegram Bot API on 127.0.0.1 that the real python-telegram-bot talks to over HTTP.

Why: the Telegram adapter is tested with the real PTB ``Application`` (built with ``base_url``
and ``base_file_url`` pointing here), so the only fake part is Telegram. Nothing here talks to
any other address.

Usage (inside one asyncio loop)::

    async with FakeTelegram() as tg:
        app = build_telegram_application(core, settings, base_url=tg.base_url,
                                         base_file_url=tg.base_file_url)
        ...start app and polling...
        alice = tg.user("alice")
        tg.push_command("/rate Cowboy Bebop 9", alice)          # private chat with alice
        call = await tg.wait_for_call("sendMessage")
        tg.push_callback(alice, call.result, "rt:1:9:3")         # press a button on that message
        await tg.wait_for_call("answerCallbackQuery")

Every call is recorded as :class:`Call` (method, params decoded from form or JSON, and the
result the fake answered). Unknown methods answer 404 like Telegram, and are recorded too.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

TOKEN = "123456:TEST-not-a-real-token"
BOT_ID = 123456
BOT_USERNAME = "AnirecTestBot"
_DECODE_JSON = {
    "reply_markup",
    "results",
    "options",
    "commands",
    "entities",
    "allowed_updates",
    "caption_entities",
    "link_preview_options",
    "reply_parameters",
    "scope",
    "question_entities",
    "button",
}


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    result: Any = None
    at: float = field(default_factory=time.monotonic)

    def buttons(self) -> list[list[dict[str, Any]]]:
        """The inline keyboard sent with this call (rows of {text, callback_data})."""
        markup = self.params.get("reply_markup") or {}
        return markup.get("inline_keyboard", [])

    def callback_data(self) -> list[str]:
        return [b.get("callback_data", "") for row in self.buttons() for b in row]


class FakeTelegram:
    """Bot API methods over aiohttp; tests push Updates, the bot polls them with getUpdates."""

    def __init__(self, token: str = TOKEN, port: int = 0) -> None:
        self.token = token
        self.wanted_port = port  # 0: any free port; a fixed one lets a test restart the server
        self.calls: list[Call] = []
        self.updates: list[dict[str, Any]] = []
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}  # (chat id, msg id) -> message
        self.files: dict[str, bytes] = {}
        self.chat_admins: set[tuple[int, int]] = set()  # (chat id, user id)
        self.polls: dict[str, tuple[int, int]] = {}  # poll id -> (chat id, message id)
        self._users: dict[int, dict[str, Any]] = {}
        self.counts: Counter[str] = Counter()  # calls per method, for cheap waits on many calls
        self._update_ids = itertools.count(1)
        self._confirmed = 0  # the highest update id the bot has confirmed (by its offset)
        self._message_ids = itertools.count(1000)
        self._ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.answers: dict[str, Callable[[dict[str, Any]], Any]] = {
            "getMe": lambda p: self.bot_user(),
            "deleteWebhook": lambda p: True,
            "setMyCommands": lambda p: True,
            "deleteMyCommands": lambda p: True,
            "getMyCommands": lambda p: [],
            "setChatMenuButton": lambda p: True,
            "setMyDescription": lambda p: True,
            "setMyShortDescription": lambda p: True,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_text,
            "editMessageReplyMarkup": self._edit_markup,
            "answerCallbackQuery": lambda p: True,
            "answerInlineQuery": lambda p: True,
            "sendPoll": self._send_poll,
            "stopPoll": self._stop_poll,
            "getFile": self._get_file,
            "getChatMember": self._chat_member,
            "sendChatAction": lambda p: True,
            "close": lambda p: True,
            "logOut": lambda p: True,
        }

    # -- server lifecycle -------------------------------------------------------------------
    async def start(self) -> Self:
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port or self.wanted_port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        async with self._changed:
            self._changed.notify_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """For ``ApplicationBuilder.base_url``: PTB appends the token."""
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    # -- the Bot API -------------------------------------------------------------------------
    async def _handle_method(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        method = request.match_info["method"]
        params = await self._params(request)
        if method == "getUpdates":
            result: Any = await self._get_updates(params)
            self._record(Call(method, params, result))
            return web.json_response({"ok": True, "result": result})
        answer = self.answers.get(method)
        if answer is None:
            self._record(Call(method, params, None))
            return web.json_response(
                {"ok": False, "error_code": 404, "description": f"Not Found: {method} (fake)"},
                status=404,
            )
        result = answer(params)
        self._record(Call(method, params, result))
        return web.json_response({"ok": True, "result": result})

    async def _params(self, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            return await request.json()
        if request.method == "GET":
            form = dict(request.query)
        else:
            form = {}
            posted = await request.post()
            for key, value in posted.items():
                form[key] = value.file.read() if hasattr(value, "file") else value
        params: dict[str, Any] = {}
        for key, value in form.items():
            if isinstance(value, str) and (key in _DECODE_JSON or value[:1] in "[{"):
                with contextlib.suppress(ValueError):
                    value = json.loads(value)
            params[key] = value
        return params

    def _record(self, call: Call) -> None:
        self.calls.append(call)
        self.counts[call.method] += 1
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        # As Telegram does, an offset confirms every earlier update: a restarted bot (which
        # asks without one) gets only what was never confirmed, not the whole history again.
        self._confirmed = max(self._confirmed, offset - 1)
        timeout = min(float(params.get("timeout") or 0), 1.0)
        limit = int(params.get("limit") or 100)
        deadline = time.monotonic() + timeout
        while True:
            pending = [u for u in self.updates if u["update_id"] > self._confirmed][:limit]
            left = deadline - time.monotonic()
            if pending or left <= 0 or self._runner is None:
                return pending
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), left)

    def bot_user(self) -> dict[str, Any]:
        return {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "Anirec",
            "username": BOT_USERNAME,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": True,
        }

    def _store_message(self, chat_id: Any, **fields: Any) -> dict[str, Any]:
        chat_id = int(chat_id)
        message = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": self.chat(chat_id),
            "from": self.bot_user(),
            **fields,
        }
        self.messages[(chat_id, message["message_id"])] = message
        return message

    @staticmethod
    def _placed(p: dict[str, Any]) -> dict[str, Any]:
        """A sent message's forum topic, as Telegram reports it back."""
        thread = p.get("message_thread_id")
        return {"message_thread_id": int(thread), "is_topic_message": True} if thread else {}

    def _send_message(self, p: dict[str, Any]) -> dict[str, Any]:
        extra = {"reply_markup": p["reply_markup"]} if p.get("reply_markup") else {}
        return self._store_message(p["chat_id"], text=p.get("text", ""), **extra, **self._placed(p))

    def _edit(self, p: dict[str, Any], **changes: Any) -> dict[str, Any] | bool:
        if "inline_message_id" in p:
            return True
        key = (int(p["chat_id"]), int(p["message_id"]))
        message = self.messages.get(key)
        if message is None:
            raise web.HTTPBadRequest(
                text=json.dumps(
                    {
                        "ok": False,
                        "error_code": 400,
                        "description": "Bad Request: message to edit not found",
                    }
                ),
                content_type="application/json",
            )
        message.update(changes)
        if not p.get("reply_markup"):
            message.pop("reply_markup", None)
        message["edit_date"] = int(time.time())
        return message

    def _edit_text(self, p: dict[str, Any]) -> dict[str, Any] | bool:
        changes: dict[str, Any] = {"text": p.get("text", "")}
        if p.get("reply_markup"):
            changes["reply_markup"] = p["reply_markup"]
        return self._edit(p, **changes)

    def _edit_markup(self, p: dict[str, Any]) -> dict[str, Any] | bool:
        changes = {"reply_markup": p["reply_markup"]} if p.get("reply_markup") else {}
        return self._edit(p, **changes)

    def _send_poll(self, p: dict[str, Any]) -> dict[str, Any]:
        options = [o if isinstance(o, str) else o.get("text", "") for o in p.get("options", [])]
        poll = {
            "id": str(next(self._ids)),
            "question": p.get("question", ""),
            "options": [
                {"text": o, "voter_count": 0, "persistent_id": f"opt{i}"}
                for i, o in enumerate(options)
            ],
            "total_voter_count": 0,
            "allows_revoting": str(p.get("allows_revoting", "false")).lower() == "true",
            "members_only": str(p.get("members_only", "false")).lower() == "true",
            "is_closed": False,
            "is_anonymous": str(p.get("is_anonymous", "true")).lower() != "false",
            "type": p.get("type", "regular"),
            "allows_multiple_answers": str(p.get("allows_multiple_answers")).lower() == "true",
        }
        self.polls[poll["id"]] = (int(p["chat_id"]), 0)
        message = self._store_message(p["chat_id"], poll=poll, **self._placed(p))
        self.polls[poll["id"]] = (int(p["chat_id"]), message["message_id"])
        return message

    def _stop_poll(self, p: dict[str, Any]) -> dict[str, Any]:
        message = self.messages[(int(p["chat_id"]), int(p["message_id"]))]
        message["poll"]["is_closed"] = True
        return message["poll"]

    def _get_file(self, p: dict[str, Any]) -> dict[str, Any]:
        file_id = p["file_id"]
        data = self.files.get(file_id)
        if data is None:
            raise web.HTTPBadRequest(
                text=json.dumps(
                    {"ok": False, "error_code": 400, "description": "Bad Request: invalid file_id"}
                ),
                content_type="application/json",
            )
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": len(data),
            "file_path": f"documents/{file_id}.xml",
        }

    def _chat_member(self, p: dict[str, Any]) -> dict[str, Any]:
        chat_id, user_id = int(p["chat_id"]), int(p["user_id"])
        status = "administrator" if (chat_id, user_id) in self.chat_admins else "member"
        member: dict[str, Any] = {"status": status, "user": self.user_by_id(user_id)}
        if status == "administrator":
            member.update(
                {
                    k: True
                    for k in (
                        "can_be_edited",
                        "is_anonymous",
                        "can_manage_chat",
                        "can_delete_messages",
                        "can_manage_video_chats",
                        "can_restrict_members",
                        "can_promote_members",
                        "can_change_info",
                        "can_invite_users",
                        "can_post_stories",
                        "can_edit_stories",
                        "can_delete_stories",
                    )
                }
            )
        return member

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        match = re.fullmatch(r"documents/(.+)\.xml", request.match_info["path"])
        data = self.files.get(match.group(1)) if match else None
        self._record(Call("download", {"path": request.match_info["path"]}, len(data or b"")))
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="application/octet-stream")

    # -- building updates --------------------------------------------------------------------
    def user(self, name: str, user_id: int | None = None) -> dict[str, Any]:
        """A Telegram user (stable id per name unless given)."""
        uid = user_id or 10_000 + sum(ord(c) * 31**i for i, c in enumerate(name)) % 900_000
        user = {"id": uid, "is_bot": False, "first_name": name.title(), "username": name}
        self._users[uid] = user
        return user

    def user_by_id(self, user_id: int) -> dict[str, Any]:
        return self._users.get(user_id, {"id": user_id, "is_bot": False, "first_name": "x"})

    @staticmethod
    def chat(chat_id: int, title: str = "Anime club") -> dict[str, Any]:
        """Positive ids are private chats (with that user), negative ones groups."""
        if chat_id < 0:
            return {"id": chat_id, "type": "supergroup", "title": title}
        return {"id": chat_id, "type": "private", "first_name": "someone"}

    def push(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": next(self._update_ids), kind: payload}
        self.updates.append(update)
        asyncio.get_running_loop().create_task(self._notify())
        return update

    def _message(self, user: dict[str, Any], chat_id: int | None, **fields: Any) -> dict[str, Any]:
        chat_id = user["id"] if chat_id is None else chat_id
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": self.chat(chat_id),
            "from": user,
            **fields,
        }

    def push_command(
        self, text: str, user: dict[str, Any], chat_id: int | None = None, **extra: Any
    ) -> dict[str, Any]:
        """A message whose text starts with a command (with its ``bot_command`` entity)."""
        command = text.split(" ", 1)[0]
        entities = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return self.push(
            "message", self._message(user, chat_id, text=text, entities=entities, **extra)
        )

    def push_text(self, text: str, user: dict[str, Any], chat_id: int | None = None):
        return self.push("message", self._message(user, chat_id, text=text))

    def push_document(
        self,
        user: dict[str, Any],
        filename: str,
        data: bytes,
        caption: str | None = "/import",
        chat_id: int | None = None,
        file_size: int | None = None,
    ) -> dict[str, Any]:
        """A document upload (``file_size`` may claim another size, as a big file would)."""
        file_id = f"doc{next(self._ids)}"
        self.files[file_id] = data
        document = {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_name": filename,
            "mime_type": "application/xml",
            "file_size": len(data) if file_size is None else file_size,
        }
        fields: dict[str, Any] = {"document": document}
        if caption:
            fields["caption"] = caption
            command = caption.split(" ", 1)[0]
            if command.startswith("/"):
                fields["caption_entities"] = [
                    {"type": "bot_command", "offset": 0, "length": len(command)}
                ]
        return self.push("message", self._message(user, chat_id, **fields))

    def push_callback(
        self, user: dict[str, Any], message: dict[str, Any], data: str
    ) -> dict[str, Any]:
        """A press of an inline button on ``message`` (a message the bot sent)."""
        stored = self.messages.get((message["chat"]["id"], message["message_id"]), message)
        return self.push(
            "callback_query",
            {
                "id": str(next(self._ids)),
                "from": user,
                "chat_instance": "ci",
                "message": stored,
                "data": data,
            },
        )

    def push_inline(self, user: dict[str, Any], query: str, offset: str = "") -> dict[str, Any]:
        """An inline query; ``offset`` is the ``next_offset`` of the previous answer."""
        return self.push(
            "inline_query",
            {"id": str(next(self._ids)), "from": user, "query": query, "offset": offset},
        )

    def push_poll_answer(
        self, user: dict[str, Any], poll_message: dict[str, Any], option_ids: list[int]
    ) -> dict[str, Any]:
        """``user`` votes in the poll the bot sent as ``poll_message`` (a sendPoll result)."""
        poll = poll_message["poll"]
        persistent = [poll["options"][i]["persistent_id"] for i in option_ids]
        return self.push(
            "poll_answer",
            {
                "poll_id": poll["id"],
                "user": user,
                "option_ids": option_ids,
                "option_persistent_ids": persistent,  # required since Bot API 9.6
            },
        )

    # -- assertions --------------------------------------------------------------------------
    def calls_to(self, method: str, since: int = 0) -> list[Call]:
        return [c for c in self.calls[since:] if c.method == method]

    async def wait_for_call(
        self,
        method: str,
        timeout: float = 10.0,
        since: int = 0,
        where: Callable[[Call], bool] | None = None,
    ) -> Call:
        """The first call to ``method`` (after index ``since``) matching ``where``."""
        deadline = time.monotonic() + timeout
        while True:
            for call in self.calls[since:]:
                if call.method == method and (where is None or where(call)):
                    return call
            left = deadline - time.monotonic()
            if left <= 0:
                seen = [c.method for c in self.calls[since:] if c.method != "getUpdates"]
                raise AssertionError(f"no {method} call within {timeout}s; calls: {seen}")
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), min(left, 0.5))

    async def wait_for_calls(
        self, method: str, count: int, timeout: float = 30.0, since: int = 0
    ) -> list[Call]:
        deadline = time.monotonic() + timeout
        while True:
            if since == 0 and self.counts[method] < count:
                found: list[Call] = []  # not there yet: skip the scan of every call
            else:
                found = self.calls_to(method, since)
                if len(found) >= count:
                    return found
            left = deadline - time.monotonic()
            if left <= 0:
                have = self.counts[method] if since == 0 else len(found)
                raise AssertionError(f"only {have} of {count} {method} calls in {timeout}s")
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), min(left, 0.5))
