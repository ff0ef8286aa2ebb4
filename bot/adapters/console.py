"""The console adapter: one command per line on stdin, replies as plain text on stdout.

Works piped, without a terminal (``echo "/recommend" | anirec chat``). Buttons of the last reply
are printed as numbered choices; typing the number presses the button (or casts the vote).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from bot.core import Caller, Core, Reply, Request
from bot.core.parsing import read_int
from bot.text_safety import printable
from storage.importers import ImportFileError, read_capped

log = logging.getLogger(__name__)

QUIT = {"/quit", "/exit", "/q"}
PROMPT = "> "
#: More digits than any list of choices: refused without converting (no 5,000-digit ints).
UNREADABLE = "Sorry, I couldn't read that command. Type /help to see what I can do."


@dataclass(frozen=True)
class _Choice:
    label: str
    action: str
    value: str | None = None


class ConsoleChat:
    """A chat session for one console user (``platform="console"``, id = the name)."""

    def __init__(
        self,
        core: Core,
        user: str,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        prompt: bool | None = None,
        read_file: Callable[[Path], bytes] = read_capped,
    ) -> None:
        self.core = core
        self.caller = Caller("console", user, display_name=user)
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.prompt = self.stdin.isatty() if prompt is None else prompt
        self.read_file = read_file
        self.choices: list[_Choice] = []

    def say(self, text: str) -> None:
        """Write ``text`` as printable text only: no escape sequence reaches the terminal."""
        self.stdout.write(printable(text) + "\n")
        self.stdout.flush()

    async def run(self) -> int:
        """Read until end of input or /quit; returns the exit code (0)."""
        self.say(f"Anirec chat as {self.caller.user_id}. Type /help for commands, /quit to leave.")
        while True:
            if self.prompt:
                self.stdout.write(PROMPT)
                self.stdout.flush()
            line = await asyncio.to_thread(self.stdin.readline)
            if not line:
                return 0
            line = line.strip()
            if not line:
                continue
            if line.lower() in QUIT:
                return 0
            reply = await self.answer(line)
            if reply is not None:
                self.show(reply)

    async def answer(self, line: str) -> Reply | None:
        """The reply to one input line (a command or the number of a choice)."""
        number = read_int(line)
        if number is not None:
            if not 1 <= number <= len(self.choices):
                return Reply(
                    f"There is no choice {line[:20]}."
                    if self.choices
                    else "Nothing to choose right now; type a command.",
                    kind="error",
                )
            choice = self.choices[number - 1]
            return await self.core.press(self.caller, choice.action, choice.value)
        try:
            parsed = self.core.parse(self.caller, line)
        except Exception:  # a parser bug must still get an answer
            log.exception("console: could not parse a command")
            return Reply(UNREADABLE, kind="error")
        if parsed is None:
            return Reply("Commands start with a slash; try /help.", kind="error")
        if isinstance(parsed, Reply):
            return parsed
        if parsed.command == "import":
            return await self._import(parsed)
        return await self.core.handle(parsed)

    async def _import(self, request: Request) -> Reply:
        if not request.filename:
            return Reply(
                "Which file? /import PATH (a MyAnimeList animelist_*.xml export)", kind="error"
            )
        path = Path(request.filename)
        try:
            path = await asyncio.to_thread(path.expanduser)
            data = await asyncio.to_thread(self.read_file, path)
        except (ImportFileError, OSError, RuntimeError) as exc:  # RuntimeError: "~nobody/x"
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return Reply(f"I couldn't read {printable(str(path))}: {reason}", kind="error")
        return await self.core.handle(Request("import", self.caller, data=data, filename=path.name))

    def show(self, reply: Reply) -> None:
        """Print the reply and remember its buttons as numbered choices."""
        lines = []
        if reply.title:
            lines.append(f"== {reply.title} ==")
        lines.append(reply.text)
        choices: list[_Choice] = []
        if reply.poll is not None:  # a vote first: "2" votes for the second pick
            lines.append(reply.poll.question)
            choices.extend(
                _Choice(f"vote: {c.label}", reply.poll.action, c.value) for c in reply.poll.choices
            )
        for number, anime in enumerate(reply.picks, start=1):
            for button in anime.buttons:
                tag = f"#{number} " if len(reply.picks) > 1 else ""
                choices.append(_Choice(f"{button.label}: {tag}{anime.title}", button.action))
        for row in reply.buttons:
            choices.extend(_Choice(b.label, b.action) for b in row)
        if choices:
            lines.append("Choices (type the number):")
            lines.extend(f"  [{i}] {c.label}" for i, c in enumerate(choices, start=1))
            self.choices = choices
        elif not reply.ephemeral or reply.edit:
            self.choices = []
        self.say("\n".join(lines))
