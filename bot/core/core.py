"""The command core: every chat command and button press, for every platform.

Adapters build a :class:`~bot.core.types.Request` (or parse a text line with
:meth:`Core.parse`), await :meth:`Core.handle` and render the :class:`~bot.core.types.Reply`.
Button presses come back through :meth:`Core.press` with the button's action id. Store and
recommender calls run in worker threads (``asyncio.to_thread``) so the event loop never stalls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.core import actions as act
from bot.core import cards
from bot.core.limiter import RateLimiter
from bot.core.night import MAX_MEMBERS, Lobbies, Lobby
from bot.core.parsing import MAX_K, USAGE, UsageError, parse_line
from bot.core.ports import Notify, RetrainControl, RetrainStatus
from bot.core.types import (
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
from recommender.errors import NoModelError, UnknownTitleError
from recommender.types import Filters
from storage.db import DatabaseBusyError
from storage.importers import MAX_XML_BYTES, ImportFileError, import_mal_xml
from storage.repository import Store
from storage.rows import Anime, Rating, ScoreError, User

if TYPE_CHECKING:
    from bot.settings import Settings
    from recommender import Recommender

log = logging.getLogger(__name__)

#: Sends a reply into a chat on one platform (registered by each running adapter).
Sender = Callable[[str, Reply], Awaitable[None]]

COMMAND_INFO: tuple[CommandInfo, ...] = (
    CommandInfo("rate", "Rate an anime from 1 to 10", USAGE["rate"]),
    CommandInfo("unrate", "Remove one of your ratings", USAGE["unrate"]),
    CommandInfo("recommend", "Personal picks from your ratings", USAGE["recommend"]),
    CommandInfo("similar", "Anime like a given one", USAGE["similar"]),
    CommandInfo("night", "Group anime night: picks nobody has seen", USAGE["night"]),
    CommandInfo("profile", "Your ratings and favourite genres", USAGE["profile"]),
    CommandInfo("import", "Import your MyAnimeList XML export", USAGE["import"]),
    CommandInfo("settings", "NSFW opt-in for you or this chat", USAGE["settings"]),
    CommandInfo("help", "What I can do", USAGE["help"]),
    CommandInfo("retrain", "Retrain the model now", USAGE["retrain"], admin=True),
    CommandInfo(
        "model", "The serving model, its metrics and the next retrain", USAGE["model"], admin=True
    ),
)
SAVE_ATTEMPTS = 4  # on top of the store's own retries: a rating is never dropped for a busy db
SCORE_LABELS = tuple(str(s) for s in range(1, 11))


@dataclass(frozen=True)
class _Who:
    """A caller resolved to the internal user."""

    user: User
    name: str


class Core:
    """The platform-free bot. One instance per process, shared by every adapter.

    ``recommender`` is a Contract-B ``Recommender`` (not ready = no model trained yet).
    ``retrain`` is plugged in by the retraining service (see :mod:`bot.core.ports`).
    ``limiter`` replaces the default per-user limit; ``rate_limited=False`` turns it off (the
    console has one local user). ``page_size`` is the default number
    of picks per /recommend page.
    """

    def __init__(
        self,
        store: Store,
        recommender: Recommender,
        settings: Settings | None = None,
        *,
        retrain: RetrainControl | None = None,
        limiter: RateLimiter | None = None,
        rate_limited: bool = True,
        page_size: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.recommender = recommender
        self.settings = settings
        self.retrain = retrain
        self.limiter = (limiter or RateLimiter(clock=clock)) if rate_limited else None
        self.page_size = page_size
        self.lobbies = Lobbies(clock)
        self._senders: dict[str, Sender] = {}
        self._users: dict[str, User] = {}

    # -- public API for adapters ---------------------------------------------------------------
    def parse(self, caller: Caller, line: str) -> Request | Reply | None:
        """A text line -> a Request; a friendly error Reply when malformed; None if no command."""
        try:
            return parse_line(caller, line)
        except UsageError as exc:
            return Reply(str(exc), kind="error", ephemeral=True)

    async def handle_text(self, caller: Caller, line: str) -> Reply | None:
        """Parse and handle a text line (console, Telegram); None when it is not a command."""
        parsed = self.parse(caller, line)
        if parsed is None or isinstance(parsed, Reply):
            return parsed
        return await self.handle(parsed)

    async def handle(self, request: Request) -> Reply:
        """Run one command. Never raises for anything a user can cause."""
        wait = self._limited(request.caller)
        if wait:
            return wait
        handler = getattr(self, f"_cmd_{request.command}", None)
        if handler is None:
            return Reply(f"I don't know /{request.command}. Try /help.", kind="error")
        return await self._guard(handler(request))

    async def press(self, caller: Caller, action: str, value: str | None = None) -> Reply:
        """A button press (or select-menu choice ``value``) with an action id the core made."""
        wait = self._limited(caller)
        if wait:
            return wait
        try:
            kind, parts = act.decode(action)
        except act.BadAction:
            return Reply(
                "That button has expired. Please run the command again.",
                kind="error",
                ephemeral=True,
            )
        return await self._guard(self._press(caller, kind, parts, value))

    async def search_titles(self, caller: Caller, text: str, limit: int = 10) -> list[AnimeCard]:
        """Matching titles for inline mode / autocomplete (no model needed, not rate limited)."""
        text = text.strip()
        if not text:
            return []
        nsfw = await self._nsfw(caller)
        matches = await asyncio.to_thread(self.recommender.search, text, limit, nsfw)
        return [cards.card(m.anime) for m in matches]

    async def autocomplete(self, caller: Caller, text: str, limit: int = 25) -> list[Choice]:
        """Title choices; the value ``#ID`` resolves exactly wherever a title is accepted."""
        found = await self.search_titles(caller, text, limit)
        return [Choice(c.title[:100], f"#{c.anime_id}", c.type or "") for c in found]

    def commands(self, admin: bool = False) -> list[CommandInfo]:
        """The command list for menus (Telegram setMyCommands) and /help."""
        return [c for c in COMMAND_INFO if admin or not c.admin]

    def is_admin(self, caller: Caller) -> bool:
        return caller.is_admin or bool(
            self.settings and self.settings.is_admin(caller.platform, caller.user_id)
        )

    def register_sender(self, platform: str, sender: Sender) -> None:
        """An adapter registers how to post into its chats (for retrain notifications)."""
        self._senders[platform] = sender

    async def notify(self, platform: str, chat_id: str, text: str) -> bool:
        """Post ``text`` into a chat; False when no adapter for that platform is running."""
        sender = self._senders.get(platform)
        if sender is None:
            return False
        try:
            await sender(chat_id, Reply(text))
        except Exception:  # a failed notification must not break a retrain
            log.exception("could not notify %s chat %s", platform, chat_id)
            return False
        return True

    def set_retrain_control(self, control: RetrainControl | None) -> None:
        self.retrain = control

    # -- plumbing ------------------------------------------------------------------------------
    def _limited(self, caller: Caller) -> Reply | None:
        if self.limiter is None:
            return None
        wait = self.limiter.take(caller.key)
        if not wait:
            return None
        seconds = max(1, round(wait))
        return Reply(
            f"Easy there! Too many requests - try again in {seconds} second"
            f"{'s' if seconds != 1 else ''}.",
            kind="cooldown",
            ephemeral=True,
        )

    async def _guard(self, work: Awaitable[Reply]) -> Reply:
        try:
            return await work
        except NoModelError:
            return self._no_model()
        except UsageError as exc:
            return Reply(str(exc), kind="error", ephemeral=True)
        except ScoreError:
            return Reply(
                "Scores go from 1 to 10, e.g. /rate Cowboy Bebop 9.", kind="error", ephemeral=True
            )
        except DatabaseBusyError:
            return Reply(
                "The database is very busy right now; please try again in a moment.",
                kind="error",
                ephemeral=True,
            )
        except Exception:  # log it, answer kindly, keep the bot alive
            log.exception("command failed")
            return Reply(
                "Sorry, something went wrong on my side. It has been logged.",
                kind="error",
                ephemeral=True,
            )

    def _no_model(self) -> Reply:
        return Reply(
            "No model is trained yet, so I can't recommend anything. An admin can "
            "run /retrain (or `anirec demo` trains one). You can /rate anime meanwhile.",
            kind="no_model",
        )

    async def _who(self, caller: Caller, fresh: bool = False) -> _Who:
        """The caller's user row, created on first sight. Cached (the hot path of /rate does
        no user query); ``fresh`` re-reads it where settings matter."""
        cached = self._users.get(caller.key)
        if cached is not None and caller.display_name in (None, cached.display_name):
            if not fresh:
                return _Who(cached, _name(cached))
            user = await asyncio.to_thread(self.store.users.get, cached.id)
            if user is not None:
                self._users[caller.key] = user
                return _Who(user, _name(user))
        user = await asyncio.to_thread(
            self.store.users.ensure, caller.platform, caller.user_id, caller.display_name
        )
        if len(self._users) > 50_000:
            self._users.clear()
        self._users[caller.key] = user
        return _Who(user, _name(user))

    async def _nsfw(self, caller: Caller, user: User | None = None) -> bool:
        """Adult titles only when the user opted in, and in a group only if the chat did too."""
        if user is None:
            user = await asyncio.to_thread(self.store.users.find, caller.platform, caller.user_id)
        else:  # settings may have changed since the user was cached
            user = await asyncio.to_thread(self.store.users.get, user.id)
        if user is None or not user.settings.get("nsfw", False):
            return False
        return await self._chat_nsfw(caller) if caller.is_group else True

    async def _chat_nsfw(self, caller: Caller) -> bool:
        if not caller.chat_id:
            return False
        chat = await asyncio.to_thread(
            self.store.chats.ensure, caller.platform, caller.chat_id, caller.chat_title
        )
        return bool(chat.settings.get("nsfw", False))

    async def _resolve(self, text: str) -> Anime:
        """A title (or ``#ID`` from autocomplete) -> Anime; UnknownTitleError when unknown."""
        text = text.strip()
        if text.startswith("#") and text[1:].isdigit():
            anime = await asyncio.to_thread(self.store.catalog.get, int(text[1:]))
            if anime is not None:
                return anime
        return await asyncio.to_thread(self.recommender.resolve_title, text, True)

    async def _did_you_mean(
        self, caller: Caller, text: str, exc: Exception, make: Callable[[Anime], Button]
    ) -> Reply:
        # Exact titles resolve even when adult, but suggestions respect the NSFW opt-in.
        nsfw = await self._nsfw(caller)
        found = [getattr(s, "anime", s) for s in getattr(exc, "suggestions", ())]
        found = [a for a in found if isinstance(a, Anime) and (nsfw or not a.nsfw)][:5]
        if not found:
            return Reply(
                f"I couldn't find an anime called \u201c{text}\u201d. Check the "
                "spelling or try a shorter part of the title.",
                kind="did_you_mean",
            )
        names = "\n".join(f"- {a.title}" for a in found)
        return Reply(
            f"I couldn't find \u201c{text}\u201d. Did you mean:\n{names}",
            buttons=tuple((make(a),) for a in found),
            kind="did_you_mean",
        )

    async def _save_rating(
        self, user_id: int, anime_id: int, score: int | None, status: str | None
    ) -> tuple[Rating | None, int]:
        """Upsert, retrying (without blocking the loop) while the database stays busy.

        Returns the previous row and how many anime the user has listed now.
        """
        delay = 0.5
        for attempt in range(SAVE_ATTEMPTS):
            try:
                return await asyncio.to_thread(
                    self._save_rating_sync, user_id, anime_id, score, status
                )
            except DatabaseBusyError:
                if attempt == SAVE_ATTEMPTS - 1:
                    raise
                log.warning("database busy saving a rating; retrying in %.1fs", delay)
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def _save_rating_sync(
        self, user_id: int, anime_id: int, score: int | None, status: str | None
    ) -> tuple[Rating | None, int]:
        ratings = self.store.ratings.of_user(user_id)
        previous = next((r for r in ratings if r.anime_id == anime_id), None)
        if (
            status is None
            and score is not None
            and previous is not None
            and previous.status == "not_interested"
        ):
            status = "completed"  # rating it means they watched it after all
        self.store.ratings.upsert(user_id, anime_id, score, status, "chat")
        self.recommender.invalidate(user_id)
        return previous, len(ratings) + (previous is None)

    def _rate_keyboard(
        self, anime: Anime, who: _Who, caller: Caller
    ) -> tuple[tuple[Button, ...], ...]:
        def button(score: int) -> Button:
            return Button(
                str(score),
                act.encode(act.RATE, anime.anime_id, score, who.user.id),
                owner=caller.user_id,
            )

        return (tuple(button(s) for s in range(1, 6)), tuple(button(s) for s in range(6, 11)))

    # -- commands ------------------------------------------------------------------------------
    async def _cmd_start(self, request: Request) -> Reply:
        who = await self._who(request.caller)
        help_reply = await self._cmd_help(request)
        return Reply(f"Hi {who.name}! I recommend anime from your ratings.\n\n{help_reply.text}")

    async def _cmd_help(self, request: Request) -> Reply:
        admin = self.is_admin(request.caller)
        lines = [f"{c.usage}\n    {c.description}" for c in self.commands(admin)]
        return Reply("Commands:\n" + "\n".join(lines), title="Anirec help")

    async def _cmd_rate(self, request: Request) -> Reply:
        caller, title, score = request.caller, (request.title or "").strip(), request.score
        if not title:
            raise UsageError(f"Tell me what to rate: {USAGE['rate']}")
        if score is not None and not 1 <= score <= 10:
            raise ScoreError(score)
        who = await self._who(caller)
        try:
            anime = await self._resolve(title)
        except UnknownTitleError as exc:

            def make(a: Anime) -> Button:
                if score is None:
                    return Button(
                        a.title[:80],
                        act.encode(act.RATE_ASK, a.anime_id, who.user.id),
                        owner=caller.user_id,
                    )
                return Button(
                    a.title[:80],
                    act.encode(act.RATE, a.anime_id, score, who.user.id),
                    owner=caller.user_id,
                )

            return await self._did_you_mean(caller, title, exc, make)
        if score is None:
            return self._ask_score(anime, who, caller)
        return await self._rate(who, anime, score, caller)

    def _ask_score(self, anime: Anime, who: _Who, caller: Caller) -> Reply:
        return Reply(
            f"How would you rate {anime.title}? (1 = awful, 10 = masterpiece)",
            buttons=self._rate_keyboard(anime, who, caller),
            picks=(cards.card(anime),),
        )

    async def _rate(
        self, who: _Who, anime: Anime, score: int, caller: Caller, edit: bool = False
    ) -> Reply:
        previous, count = await self._save_rating(who.user.id, anime.anime_id, score, None)
        was = f" (was {previous.score})" if previous and previous.score not in (None, score) else ""
        more = Button(
            "Recommend for me",
            act.encode(act.RECOMMEND, who.user.id),
            "primary",
            owner=caller.user_id,
        )
        return Reply(
            f"Rated {anime.title}: {score}/10{was}. You have {count} anime on your list.",
            buttons=((more,),),
            edit=edit,
        )

    async def _cmd_unrate(self, request: Request) -> Reply:
        caller, title = request.caller, (request.title or "").strip()
        if not title:
            raise UsageError(f"Which anime? {USAGE['unrate']}")
        who = await self._who(caller)
        try:
            anime = await self._resolve(title)
        except UnknownTitleError as exc:
            return await self._did_you_mean(
                caller,
                title,
                exc,
                lambda a: Button(
                    a.title[:80],
                    act.encode(act.UNRATE, a.anime_id, who.user.id),
                    owner=caller.user_id,
                ),
            )
        return await self._unrate(who, anime)

    async def _unrate(self, who: _Who, anime: Anime, edit: bool = False) -> Reply:
        removed = await asyncio.to_thread(self.store.ratings.delete, who.user.id, anime.anime_id)
        if not removed:
            return Reply(f"{anime.title} wasn't on your list.", edit=edit)
        await asyncio.to_thread(self.recommender.invalidate, who.user.id)
        return Reply(f"Removed {anime.title} from your list.", edit=edit)

    async def _cmd_recommend(self, request: Request) -> Reply:
        k = request.k or self.page_size
        if not 1 <= k <= MAX_K:
            raise UsageError(f"How many picks, from 1 to {MAX_K}: {USAGE['recommend']}")
        who = await self._who(request.caller)
        return await self._recommend(who, request.caller, offset=0, k=k)

    async def _recommend(self, who: _Who, caller: Caller, offset: int, k: int) -> Reply:
        if not self.recommender.ready:
            return self._no_model()
        nsfw = await self._nsfw(caller, who.user)
        picks = await asyncio.to_thread(
            self.recommender.recommend, who.user.id, offset + k, Filters(nsfw=nsfw)
        )
        picks = picks[offset : offset + k]
        if not picks:
            return Reply(
                "I have nothing more to suggest right now. Rate a few more anime and ask again!"
            )
        owner = caller.user_id
        made = []
        for pick in picks:
            aid = pick.anime.anime_id
            made.append(
                cards.from_pick(
                    pick,
                    (
                        Button(
                            "Seen it / rate",
                            act.encode(act.RATE_ASK, aid, who.user.id),
                            "primary",
                            owner=owner,
                        ),
                        Button(
                            "Not interested",
                            act.encode(act.NOT_INTERESTED, aid, who.user.id),
                            "danger",
                            owner=owner,
                        ),
                    ),
                )
            )
        text = "\n".join(cards.line(c, offset + i + 1) for i, c in enumerate(made))
        ratings = await asyncio.to_thread(self.store.ratings.of_user, who.user.id)
        if not any(r.score for r in ratings):
            text = (
                "You haven't rated anything yet, so these are popular, well-liked picks. "
                "Rate a few with /rate TITLE SCORE for personal ones.\n"
            ) + text
        buttons = ()
        if offset + k < 50:
            buttons = (
                (Button("More", act.encode(act.MORE, offset + k, who.user.id), owner=owner),),
            )
        return Reply(text, title=f"Picks for {who.name}", picks=tuple(made), buttons=buttons)

    async def _cmd_similar(self, request: Request) -> Reply:
        caller, title = request.caller, (request.title or "").strip()
        if not title:
            raise UsageError(f"Which anime? {USAGE['similar']}")
        try:
            anime = await self._resolve(title)
        except UnknownTitleError as exc:
            return await self._did_you_mean(
                caller,
                title,
                exc,
                lambda a: Button(a.title[:80], act.encode(act.SIMILAR, a.anime_id)),
            )
        return await self._similar(caller, anime)

    async def _similar(self, caller: Caller, anime: Anime) -> Reply:
        if not self.recommender.ready:
            return self._no_model()
        who = await self._who(caller)
        nsfw = await self._nsfw(caller, who.user)
        found = await asyncio.to_thread(
            self.recommender.similar, anime.anime_id, self.page_size, Filters(nsfw=nsfw)
        )
        if not found:
            return Reply(f"I don't know anything similar to {anime.title} yet.")
        made = [
            cards.from_similar(
                p,
                (
                    Button(
                        "Seen it / rate",
                        act.encode(act.RATE_ASK, p.anime.anime_id, who.user.id),
                        owner=caller.user_id,
                    ),
                ),
            )
            for p in found
        ]
        text = "\n".join(cards.line(c, i + 1) for i, c in enumerate(made))
        return Reply(text, title=f"Like {anime.title}", picks=tuple(made))

    async def _cmd_night(self, request: Request) -> Reply:
        caller = request.caller
        who = await self._who(caller)
        if not request.members and not request.names:
            if not caller.is_group:
                return Reply(
                    "Name who is watching: /night NAME NAME ... (or use /night in a "
                    "group to open a lobby).",
                    kind="error",
                    ephemeral=True,
                )
            lobby = self.lobbies.open(caller.platform, caller.chat_id, who.user.id, who.name)
            return self._lobby_reply(lobby)
        members: dict[int, str] = {who.user.id: who.name}
        for member in request.members:
            user = await asyncio.to_thread(
                self.store.users.ensure, caller.platform, member.user_id, member.display_name
            )
            members[user.id] = _name(user)
        missing = []
        for name in request.names:
            user = await self._find_by_name(caller.platform, name)
            if user is None:
                missing.append(name)
            else:
                members[user.id] = _name(user)
        if missing:
            return Reply(
                f"I don't know {', '.join(missing)} here yet; they need to /rate something first.",
                kind="error",
            )
        if len(members) > MAX_MEMBERS:
            return Reply(
                f"That's a big party! At most {MAX_MEMBERS} people per night.", kind="error"
            )
        lobby = self.lobbies.open(caller.platform, caller.chat_id, who.user.id, who.name)
        lobby.members = members
        return await self._night_picks(lobby, caller)

    async def _find_by_name(self, platform: str, name: str) -> User | None:
        found = await asyncio.to_thread(self.store.users.find_by_name, platform, name)
        if found:
            return found[0]
        return await asyncio.to_thread(self.store.users.find, platform, name)

    def _lobby_reply(self, lobby: Lobby, edit: bool = False) -> Reply:
        names = ", ".join(lobby.members.values())
        return Reply(
            f"Anime night! Press Join to take part, then Pick when everyone is in.\n"
            f"In so far ({len(lobby.members)}): {names}",
            title="Anime night",
            buttons=(
                (
                    Button("Join", act.encode(act.NIGHT_JOIN, lobby.id), "success"),
                    Button("Pick!", act.encode(act.NIGHT_GO, lobby.id), "primary"),
                ),
            ),
            kind="lobby",
            edit=edit,
        )

    async def _night_picks(self, lobby: Lobby, caller: Caller) -> Reply:
        if not self.recommender.ready:
            return self._no_model()
        if caller.is_group:
            nsfw = await self._chat_nsfw(caller)
        else:
            users = [await asyncio.to_thread(self.store.users.get, uid) for uid in lobby.members]
            nsfw = all(u is not None and u.settings.get("nsfw", False) for u in users)
        picks = await asyncio.to_thread(
            self.recommender.anime_night, list(lobby.members), self.page_size, Filters(nsfw=nsfw)
        )
        if not picks:
            return Reply("I couldn't find anything none of you has seen. Impressive!")
        made = [cards.from_group(p, lobby.members) for p in picks]
        lobby.picks = {c.anime_id: c.title for c in made}
        lobby.votes.clear()
        text = "\n".join(cards.line(c, i + 1) for i, c in enumerate(made))
        poll = Poll(
            "What do we watch tonight?",
            tuple(Choice(c.title[:100], str(c.anime_id)) for c in made),
            act.encode(act.NIGHT_VOTE, lobby.id),
        )
        return Reply(
            f"Anime night for {', '.join(lobby.members.values())}:\n{text}",
            title="Anime night picks",
            picks=tuple(made),
            poll=poll,
        )

    async def _cmd_profile(self, request: Request) -> Reply:
        who = await self._who(request.caller, fresh=True)
        ratings = await asyncio.to_thread(self.store.ratings.of_user, who.user.id)
        scored = [r for r in ratings if r.score is not None]
        if not ratings:
            return Reply(
                f"{who.name}, your list is empty. Start with /rate TITLE SCORE or "
                "/import your MyAnimeList export.",
                title="Your profile",
            )
        ids = [r.anime_id for r in ratings]
        anime = {a.anime_id: a for a in await asyncio.to_thread(_anime_many, self.store, ids)}
        top = sorted(scored, key=lambda r: (-r.score, r.updated_at))[:5]
        top_text = (
            "\n".join(
                f"- {anime[r.anime_id].title}: {r.score}/10" for r in top if r.anime_id in anime
            )
            or "-"
        )
        genres = await self._favourite_genres(who.user.id, scored, anime)
        skipped = sum(r.status == "not_interested" for r in ratings)
        mean = sum(r.score for r in scored) / len(scored) if scored else None
        nsfw = "on" if who.user.settings.get("nsfw") else "off"
        fields = (
            Field("On your list", str(len(ratings) - skipped), True),
            Field("Scored", str(len(scored)), True),
            Field("Mean score", f"{mean:.2f}" if mean is not None else "-", True),
            Field("Favourite genres", ", ".join(genres) or "-"),
            Field("Top rated", top_text),
            Field("Not interested", str(skipped), True),
            Field("NSFW", nsfw, True),
        )
        text = "\n".join(
            f"{f.name}: {f.value}" if "\n" not in f.value else f"{f.name}:\n{f.value}"
            for f in fields
        )
        return Reply(text, title=f"{who.name}'s profile", fields=fields)

    async def _favourite_genres(self, user_id: int, scored, anime: dict[int, Anime]) -> list[str]:
        try:
            return list(await asyncio.to_thread(self.recommender.favourite_genres, user_id, 3))
        except NoModelError:
            pass
        weights: dict[str, float] = {}
        for r in scored:  # without a model: genres of what they liked, weighted by score
            for g in anime[r.anime_id].genres if r.anime_id in anime else ():
                weights[g] = weights.get(g, 0.0) + max(r.score - 5, 0)
        return [g for g, w in sorted(weights.items(), key=lambda kv: -kv[1]) if w > 0][:3]

    async def _cmd_import(self, request: Request) -> Reply:
        data = request.data
        if not data:
            return Reply(
                "Send your MyAnimeList export (the animelist_*.xml file from "
                "myanimelist.net/panel.php?go=export) with /import as its caption.",
                kind="error",
            )
        if len(data) > MAX_XML_BYTES:
            return Reply(f"That file is too big (limit {MAX_XML_BYTES // 2**20} MB).", kind="error")
        who = await self._who(request.caller)
        name = request.filename or "upload.xml"
        try:
            report = await asyncio.to_thread(import_mal_xml, self.store, who.user, data, name)
        except ImportFileError as exc:
            return Reply(f"I couldn't read that file: {exc}", kind="error")
        await asyncio.to_thread(self.recommender.invalidate, who.user.id)
        await asyncio.to_thread(
            self.store.audit.record,
            request.caller.key,
            "import_mal_xml",
            rows=report.rows,
            written=report.written,
        )
        skipped = (
            f" {report.unknown_anime} anime aren't in my catalog and were skipped."
            if report.unknown_anime
            else ""
        )
        return Reply(
            f"Imported {name}: {report.rows} entries, {report.scored} with a score, "
            f"{report.written} new or changed.{skipped}"
        )

    async def _cmd_settings(self, request: Request) -> Reply:
        caller = request.caller
        who = await self._who(caller, fresh=True)
        if request.scope == "chat":
            if not caller.is_group or not caller.chat_id:
                return Reply(
                    "Chat settings only apply in a group. Here, use /settings nsfw on.",
                    kind="error",
                    ephemeral=True,
                )
            if request.value is not None:
                if not (caller.chat_admin or self.is_admin(caller)):
                    return Reply(
                        "Only the group's admins can change its settings.",
                        kind="denied",
                        ephemeral=True,
                    )
                await asyncio.to_thread(
                    self.store.chats.update_settings,
                    caller.platform,
                    caller.chat_id,
                    nsfw=request.value,
                )
                await asyncio.to_thread(
                    self.store.audit.record,
                    caller.key,
                    "chat_settings",
                    chat=caller.chat_id,
                    nsfw=request.value,
                )
            chat_on = await self._chat_nsfw(caller)
            return Reply(
                f"NSFW titles in this chat: {'on' if chat_on else 'off'} (each person "
                "must also opt in with /settings nsfw on).",
                ephemeral=True,
            )
        if request.value is not None:
            updated = await asyncio.to_thread(
                self.store.users.update_settings, who.user.id, nsfw=request.value
            )
            on = bool(updated.settings.get("nsfw"))
        else:
            on = bool(who.user.settings.get("nsfw", False))
        text = f"NSFW titles for you: {'on' if on else 'off'}."
        if caller.is_group:
            text += f" This chat: {'on' if await self._chat_nsfw(caller) else 'off'}."
        return Reply(text + " Change it with /settings nsfw on|off.", ephemeral=True)

    async def _cmd_retrain(self, request: Request) -> Reply:
        caller = request.caller
        if not self.is_admin(caller):
            return Reply("Only admins can retrain the model.", kind="denied", ephemeral=True)
        if self.retrain is None:
            return Reply("Retraining is not configured in this process.", kind="error")
        await asyncio.to_thread(self.store.audit.record, caller.key, "retrain_request")
        ticket = await self.retrain.request("admin", caller.key, self._notifier(caller))
        if ticket.started:
            text = f"Retraining started (run #{ticket.run_id}). I'll tell you here how it went."
        else:
            since = f"started {_when(ticket.started_at)}" if ticket.started_at else "in progress"
            text = f"Already running ({since}{', ' + ticket.progress if ticket.progress else ''})."
        return Reply(text + (f"\n{ticket.message}" if ticket.message else ""))

    def _notifier(self, caller: Caller) -> Notify | None:
        chat = caller.chat_id or caller.user_id
        if caller.platform not in self._senders:
            return None

        async def notify(text: str) -> None:
            await self.notify(caller.platform, chat, text)

        return notify

    async def _cmd_model(self, request: Request) -> Reply:
        if not self.is_admin(request.caller):
            return Reply("Only admins can see the model status.", kind="denied", ephemeral=True)
        status = (
            await self.retrain.status()
            if self.retrain
            else await asyncio.to_thread(self._status_from_storage)
        )
        fields: list[Field] = []
        if status.serving_version:
            fields.append(
                Field(
                    "Serving",
                    f"version {status.serving_version}"
                    + (f", trained {_when(status.trained_at)}" if status.trained_at else ""),
                )
            )
            if status.serving_metrics:
                fields.append(
                    Field(
                        "Metrics",
                        ", ".join(
                            f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                            for k, v in sorted(status.serving_metrics.items())
                        ),
                    )
                )
        else:
            fields.append(Field("Serving", "no model trained yet"))
        if status.running:
            r = status.running
            fields.append(
                Field(
                    "Running",
                    f"run #{r.run_id} started {_when(r.started_at)}"
                    + (f", {r.progress}" if r.progress else ""),
                )
            )
        if status.last_run:
            run = status.last_run
            fields.append(
                Field(
                    "Last run",
                    f"#{run.id} ({run.trigger}) "
                    f"{run.status}, {run.decision or 'no decision'}, "
                    f"started {_when(run.started_at)}",
                )
            )
        else:
            fields.append(Field("Last run", "none yet"))
        next_run = (
            _when(status.next_run)
            if status.next_run
            else ("not scheduled" + ("" if self.retrain else " (retraining is not configured)"))
        )
        fields.append(Field("Next run", next_run))
        return Reply(
            "\n".join(f"{f.name}: {f.value}" for f in fields), title="Model", fields=tuple(fields)
        )

    def _status_from_storage(self) -> RetrainStatus:
        info = self.recommender.info() if self.recommender.ready else None
        row = self.store.versions.serving()
        runs = self.store.runs.recent(limit=1)
        if info is not None:
            return RetrainStatus(
                info.version,
                info.path,
                dict(info.metrics),
                info.trained_at,
                runs[0] if runs else None,
            )
        if row is not None:
            return RetrainStatus(
                str(row.id),
                row.path,
                row.metrics,
                row.promoted_at or row.created_at,
                runs[0] if runs else None,
            )
        return RetrainStatus(last_run=runs[0] if runs else None)

    # -- button presses ------------------------------------------------------------------------
    async def _press(self, caller: Caller, kind: str, parts: list[str], value: str | None) -> Reply:
        if kind in (act.NIGHT_JOIN, act.NIGHT_GO, act.NIGHT_VOTE):
            return await self._press_night(caller, kind, parts, value)
        who = await self._who(caller)
        if kind == act.SIMILAR:
            (aid,) = act.ints(parts, 1)
            return await self._similar(caller, await self._anime(aid))
        owner = {
            act.RATE: 2,
            act.RATE_ASK: 1,
            act.NOT_INTERESTED: 1,
            act.MORE: 1,
            act.UNRATE: 1,
            act.RECOMMEND: 0,
        }[kind]
        nums = act.ints(parts, owner + 1)
        if nums[owner] != who.user.id:
            return Reply(
                "These buttons belong to someone else. Use the command yourself to get your own.",
                kind="denied",
                ephemeral=True,
            )
        if kind == act.RATE:
            aid, score = nums[0], nums[1]
            if not 1 <= score <= 10:
                raise ScoreError(score)
            return await self._rate(who, await self._anime(aid), score, caller, edit=True)
        if kind == act.RATE_ASK:
            return self._ask_score(await self._anime(nums[0]), who, caller)
        if kind == act.NOT_INTERESTED:
            anime = await self._anime(nums[0])
            await self._save_rating(who.user.id, anime.anime_id, None, "not_interested")
            return Reply(f"Got it, I won't suggest {anime.title} again.", ephemeral=True)
        if kind == act.UNRATE:
            return await self._unrate(who, await self._anime(nums[0]), edit=True)
        if kind == act.MORE:
            return await self._recommend(who, caller, offset=min(nums[0], 50), k=self.page_size)
        return await self._recommend(who, caller, offset=0, k=self.page_size)  # RECOMMEND

    async def _anime(self, anime_id: int) -> Anime:
        anime = await asyncio.to_thread(self.store.catalog.get, anime_id)
        if anime is None:
            raise act.BadAction(f"no anime {anime_id}")
        return anime

    async def _press_night(
        self, caller: Caller, kind: str, parts: list[str], value: str | None
    ) -> Reply:
        lobby = self.lobbies.get(parts[0] if parts else "")
        if lobby is None:
            return Reply(
                "This anime night has ended. Start a new one with /night.",
                kind="error",
                ephemeral=True,
            )
        who = await self._who(caller)
        if kind == act.NIGHT_JOIN:
            if who.user.id in lobby.members:
                return Reply("You're already in.", ephemeral=True)
            if lobby.picks:
                return Reply("The picks are out already; start a new /night.", ephemeral=True)
            if len(lobby.members) >= MAX_MEMBERS:
                return Reply(f"The lobby is full ({MAX_MEMBERS}).", ephemeral=True)
            lobby.members[who.user.id] = who.name
            return self._lobby_reply(lobby, edit=True)
        if kind == act.NIGHT_GO:
            if who.user.id not in lobby.members:
                return Reply("Join first, then pick.", ephemeral=True)
            return await self._night_picks(lobby, caller)
        if value is None or not value.isdigit() or int(value) not in lobby.picks:
            return Reply("That isn't one of tonight's picks.", kind="error", ephemeral=True)
        lobby.votes[who.user.id] = int(value)
        tally = ", ".join(f"{t}: {n}" for t, n in lobby.tally())
        return Reply(
            f"You voted for {lobby.picks[int(value)]}. Votes so far: {tally}.", ephemeral=True
        )


def _name(user: User) -> str:
    return user.display_name or user.platform_user_id


def _when(iso: str | None) -> str:
    if not iso:
        return "-"
    return iso.replace("T", " ")[:16] + " UTC" if "T" in iso else iso


def _anime_many(store: Store, ids: Sequence[int]) -> list[Anime]:
    return [a for a in (store.catalog.get(i) for i in ids) if a is not None]


__all__ = ["Core", "Member", "Sender"]
