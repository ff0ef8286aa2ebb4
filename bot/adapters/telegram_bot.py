"""The Telegram adapter (python-telegram-bot 22): updates -> core requests -> Bot API calls.

Commands arrive as messages with a ``bot_command`` entity and are parsed by the core; buttons
are inline keyboards whose ``callback_data`` is the core's action id; ``@bot title`` inline
queries answer with matching titles to share; ``/night`` in a group opens a lobby with a Join
button and ends in the picks plus a native poll; a MyAnimeList XML document sent with the
caption ``/import`` (or replied to with ``/import``) is downloaded (size-capped) and imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeChat,
    CallbackQuery,
    Chat,
    Document,
    LinkPreviewOptions,
    Message,
    ReplyParameters,
    Update,
    User,
)
from telegram.constants import ChatAction, ChatMemberStatus, ChatType
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    InlineQueryHandler,
    MessageHandler,
    PollAnswerHandler,
    filters,
)

from bot.adapters import telegram_polls
from bot.adapters.resilience import Outage
from bot.adapters.telegram_render import (
    inline_result,
    keyboard,
    label,
    placement,
    text,
    topic_of,
)
from bot.adapters.telegram_transport import InOrderPerUser, WatchedRequest
from bot.core import Caller, Core, Reply, Request
from bot.core.senders import DM_PREFIX
from bot.settings import Settings
from storage.importers import MAX_XML_BYTES

log = logging.getLogger(__name__)

MAX_TEXT = 4096
MAX_TOAST = 200
MAX_POLL_OPTIONS = 10
FLOOD_RETRIES = 3
SEND_RETRIES = 3
UNREADABLE = "Sorry, I couldn't read that command. Send /help to see what I can do."
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
_IMPORT_CAPTION = re.compile(r"^/import(@\w+)?(\s|$)", re.IGNORECASE)
INLINE_PAGE = 10
INLINE_MAX = 50  # Telegram shows at most 50 results per answer; past that, nothing more
TYPING_EVERY_S = 4.0  # Telegram shows "typing..." for 5 s per chat action
#: Commands (and button kinds) that may take a while: the chat sees "typing..." meanwhile.
SLOW_COMMANDS = frozenset({"recommend", "similar", "night", "import"})
SLOW_PRESSES = ("mo:", "rc:", "sm:", "ng:", "nx:")
DESCRIPTION = (
    "I recommend anime from your ratings. Rate a few titles you have seen (/rate TITLE 9, or "
    "/import your MyAnimeList export), then ask /recommend. In a group, /night finds "
    "something nobody has seen yet."
)
SHORT_DESCRIPTION = "Anime picks from your ratings, and group anime nights."


def build_telegram_application(
    core: Core,
    settings: Settings | None = None,
    *,
    token: str | None = None,
    base_url: str | None = None,
    base_file_url: str | None = None,
    max_document_bytes: int = MAX_XML_BYTES,
    concurrency: int = 64,
    pool_size: int = 16,
    outage: Outage | None = None,
) -> Application[Any, Any, Any, Any, Any, Any]:
    """A ready-to-start Application for ``core``; ``base_url`` points it at another Bot API
    server (a local ``telegram-bot-api``, or the test fake). ``outage`` hears of every failed
    and successful Bot API request (network trouble, a refused token)."""
    if token is None:
        if settings is None or settings.telegram_token is None:
            raise ValueError("no Telegram token: set ANIREC_TELEGRAM_TOKEN")
        token = settings.telegram_token.get_secret_value()
    adapter = TelegramAdapter(core, max_document_bytes, settings)
    # A modest pool: httpcore's pool bookkeeping grows with connections x waiting requests,
    # and Telegram allows ~30 messages/s anyway. Waiting for a free connection is fine (the
    # rating is already saved); failing after PTB's default 1 s pool timeout would drop a reply.
    outage = outage or Outage("telegram")
    builder = (
        ApplicationBuilder()
        .token(token)
        .concurrent_updates(InOrderPerUser(concurrency))
        .request(WatchedRequest(outage, connection_pool_size=pool_size, pool_timeout=30.0))
        .get_updates_request(WatchedRequest(outage, connection_pool_size=1))
    )
    if base_url:
        builder = builder.base_url(base_url)
    if base_file_url:
        builder = builder.base_file_url(base_file_url)
    app = builder.post_init(adapter.post_init).build()
    adapter.install(app)
    return app


class TelegramAdapter:
    """The handlers; one instance per Application."""

    def __init__(
        self, core: Core, max_document_bytes: int = MAX_XML_BYTES, settings: Settings | None = None
    ) -> None:
        self.core = core
        self.max_document_bytes = max_document_bytes
        self.settings = settings
        self.polls = telegram_polls.PollBook(core)
        self.bot: Bot | None = None

    def install(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        import_doc = filters.Document.ALL & filters.CaptionRegex(_IMPORT_CAPTION)
        app.add_handler(MessageHandler(import_doc, self.on_document))
        app.add_handler(MessageHandler(filters.COMMAND, self.on_command))
        app.add_handler(CallbackQueryHandler(self.on_callback))
        app.add_handler(InlineQueryHandler(self.on_inline))
        app.add_handler(PollAnswerHandler(self.on_poll_answer))
        app.add_handler(MessageHandler(filters.TEXT & filters.ChatType.PRIVATE, self.on_text))
        app.add_error_handler(self.on_error)

    async def post_init(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        """Publish the menus and the bot's profile texts; let the core post into chats."""
        self.bot = app.bot
        await app.bot.set_my_commands(
            [BotCommand(c.name, c.description) for c in self.core.commands()]
        )
        admin_menu = [BotCommand(c.name, c.description) for c in self.core.commands(admin=True)]
        for chat_id in self.admin_chats():
            try:  # a chat the bot has never seen is refused; the others still get theirs
                await app.bot.set_my_commands(admin_menu, scope=BotCommandScopeChat(chat_id))
            except TelegramError as exc:
                log.warning("telegram: no admin menu for chat %s: %s", chat_id, exc)
        try:
            await app.bot.set_my_description(DESCRIPTION)
            await app.bot.set_my_short_description(SHORT_DESCRIPTION)
        except TelegramError as exc:
            log.warning("telegram: could not set the bot's description: %s", exc)
        self.core.register_sender("telegram", self.send_to)

    def admin_chats(self) -> list[int]:
        """Private chats of the configured Telegram admins, and the admin chat, if any."""
        if self.settings is None:
            return []
        keys = sorted(self.settings.admins) + [self.settings.admin_chat or ""]
        found: list[int] = []
        for key in keys:
            platform, _, raw = key.partition(":")
            ok = platform == "telegram" and re.fullmatch(r"-?\d{1,20}", raw)
            if ok and int(raw) not in found:
                found.append(int(raw))
        return found

    # -- who is asking -------------------------------------------------------------------------
    @staticmethod
    def caller(user: User, chat: Chat | None, chat_admin: bool = False) -> Caller:
        is_group = chat is not None and chat.type in (ChatType.GROUP, ChatType.SUPERGROUP)
        return Caller(
            platform="telegram",
            user_id=str(user.id),
            display_name=user.username or user.full_name,
            chat_id=str(chat.id) if chat is not None else None,
            chat_title=chat.title if chat is not None else None,
            is_group=is_group,
            chat_admin=chat_admin,
        )

    async def _is_chat_admin(self, bot: Bot, chat: Chat, user: User) -> bool:
        try:
            member = await bot.get_chat_member(chat.id, user.id)
        except TelegramError:
            return False
        return member.status in (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR)

    # -- handlers ------------------------------------------------------------------------------
    async def on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        user = update.effective_user
        if message is None or user is None or not message.text:
            return
        mention = message.text.split(" ", 1)[0].partition("@")[2]
        if mention and mention.lower() != (context.bot.username or "").lower():
            return  # a command for another bot in the same group
        caller = self.caller(user, message.chat)
        try:
            parsed = self.core.parse(caller, message.text)
        except Exception:  # a parser bug must still get an answer
            log.exception("telegram: could not parse a command")
            parsed = Reply(UNREADABLE, kind="error")
        if parsed is None:
            return
        place = placement(message)
        if isinstance(parsed, Reply):
            await self._send(context.bot, message.chat_id, parsed, **place)
            return
        if parsed.command == "import":
            replied = message.reply_to_message
            if replied is not None and replied.document is not None:
                await self._import(context.bot, message, replied.document, caller)
                return
        if parsed.command == "settings" and parsed.scope == "chat" and caller.is_group:
            admin = await self._is_chat_admin(context.bot, message.chat, user)
            parsed = Request(
                **{**parsed.__dict__, "caller": self.caller(user, message.chat, admin)}
            )
        async with self._typing(context.bot, message, parsed.command in SLOW_COMMANDS):
            reply = await self.core.handle(parsed)
        await self._send(context.bot, message.chat_id, reply, **place)

    async def on_document(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        user = update.effective_user
        if message is None or user is None or message.document is None:
            return
        await self._import(context.bot, message, message.document, self.caller(user, message.chat))

    async def _import(self, bot: Bot, message: Message, document: Document, caller: Caller) -> None:
        async with self._typing(bot, message):
            reply = await self._read_and_import(bot, document, caller)
        await self._send(bot, message.chat_id, reply, **placement(message))

    async def _read_and_import(self, bot: Bot, document: Document, caller: Caller) -> Reply:
        cap_mb = self.max_document_bytes // 2**20
        too_big = Reply(f"That file is too big for me (limit {cap_mb} MB).", kind="error")
        if document.file_size is not None and document.file_size > self.max_document_bytes:
            return too_big
        try:
            file = await bot.get_file(document.file_id)
            data = bytes(await file.download_as_bytearray())
        except TelegramError as exc:
            log.warning("telegram: could not download a document: %s", exc)
            return Reply(
                "I couldn't download that file from Telegram; please send it again.", kind="error"
            )
        if len(data) > self.max_document_bytes:
            return too_big
        return await self.core.handle(
            Request("import", caller, data=data, filename=document.file_name or "upload.xml")
        )

    async def on_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query: CallbackQuery | None = update.callback_query
        if query is None or query.data is None:
            return
        chat = query.message.chat if query.message is not None else None
        pressed = query.message if isinstance(query.message, Message) else None
        slow = query.data.startswith(SLOW_PRESSES)
        async with self._typing(context.bot, pressed, slow):
            reply = await self.core.press(self.caller(query.from_user, chat), query.data)
        if reply.closes_poll:
            await telegram_polls.stop(context.bot, self.polls, reply.closes_poll)
        if reply.ephemeral and not reply.edit:
            await query.answer(reply.text[:MAX_TOAST], show_alert=len(reply.text) > 60)
            return
        await query.answer()
        if chat is None:
            return
        thread = topic_of(pressed)
        if reply.edit and query.message is not None:
            try:
                await query.edit_message_text(text(reply), reply_markup=keyboard(reply))
            except BadRequest as exc:  # "message is not modified" and the like
                log.info("telegram: edit failed (%s); sending instead", exc)
                await self._send(context.bot, chat.id, reply, thread=thread)
            if reply.poll is not None:
                await self._poll(context.bot, chat.id, reply, thread=thread)
            return
        await self._send(context.bot, chat.id, reply, thread=thread)

    async def on_inline(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.inline_query
        if query is None:
            return
        caller = self.caller(query.from_user, None)
        start = int(query.offset) if query.offset.isdecimal() and len(query.offset) < 4 else 0
        start = min(start, INLINE_MAX)
        end = min(start + INLINE_PAGE, INLINE_MAX)
        found = await self.core.search_titles(caller, query.query, limit=end + 1)
        results = [inline_result(anime) for anime in found[start:end]]
        more = len(found) > end and end < INLINE_MAX
        await query.answer(
            results, cache_time=30, is_personal=True, next_offset=str(end) if more else ""
        )

    async def on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is not None and message.text and not message.text.startswith("/"):
            await message.reply_text("Send /help to see what I can do, or /rate TITLE SCORE.")

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram: error while handling an update", exc_info=context.error)

    @contextlib.asynccontextmanager
    async def _typing(
        self, bot: Bot, message: Message | None, slow: bool = True
    ) -> AsyncIterator[None]:
        """Show "typing..." in ``message``'s chat (and topic) while the block runs."""
        if not slow or message is None:
            yield
            return

        async def keep_typing() -> None:
            while True:
                with contextlib.suppress(TelegramError):
                    await bot.send_chat_action(
                        message.chat_id, ChatAction.TYPING, message_thread_id=topic_of(message)
                    )
                await asyncio.sleep(TYPING_EVERY_S)

        task = asyncio.create_task(keep_typing())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _send(
        self,
        bot: Bot,
        chat_id: int | str,
        reply: Reply,
        *,
        thread: int | None = None,
        reply_to: int | None = None,
    ) -> None:
        """Send ``reply`` (and its poll) into a chat, inside forum topic ``thread`` and as an
        answer to message ``reply_to`` when given."""
        answer_to = (
            ReplyParameters(reply_to, allow_sending_without_reply=True) if reply_to else None
        )
        for attempt in range(max(FLOOD_RETRIES, SEND_RETRIES) + 1):
            try:
                await bot.send_message(
                    chat_id,
                    text(reply),
                    reply_markup=keyboard(reply),
                    link_preview_options=NO_PREVIEW,
                    message_thread_id=thread,
                    reply_parameters=answer_to,
                )
                break
            except RetryAfter as exc:  # Telegram's flood control: wait as told, then resend
                if attempt >= FLOOD_RETRIES:
                    raise
                wait = exc.retry_after
                await asyncio.sleep(
                    wait.total_seconds() if hasattr(wait, "total_seconds") else float(wait)
                )
            except TimedOut:  # it may have been delivered: never send twice
                raise
            except NetworkError:  # not delivered (no connection, 5xx): try again shortly
                if attempt >= SEND_RETRIES:
                    raise
                await asyncio.sleep(2.0**attempt)
        if reply.poll is not None:
            await self._poll(bot, chat_id, reply, thread=thread)

    async def _poll(
        self, bot: Bot, chat_id: int | str, reply: Reply, *, thread: int | None = None
    ) -> None:
        assert reply.poll is not None
        options = [label(c.label)[:100] for c in reply.poll.choices][:MAX_POLL_OPTIONS]
        if len(options) >= 2:
            question = label(reply.poll.question)[:300]
            sent = await bot.send_poll(
                chat_id, question, options, is_anonymous=False, message_thread_id=thread
            )
            if sent.poll is not None:
                await self.polls.opened(
                    sent.poll.id, reply.poll, len(options), sent.chat_id, sent.message_id
                )

    async def on_poll_answer(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A vote in a /night poll counts like a vote in Discord's menu."""
        if update.poll_answer is not None:
            await telegram_polls.count_answer(self.core, self.polls, update.poll_answer)

    async def send_to(self, chat_id: str, reply: Reply) -> None:
        """The core's Sender: post a reply into a chat (retrain notifications)."""
        if self.bot is None:
            raise RuntimeError("the Telegram bot is not started")
        await self._send(self.bot, chat_id.removeprefix(DM_PREFIX), reply)
