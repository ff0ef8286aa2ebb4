"""Neutral :class:`~bot.core.types.Reply` -> Discord message parts (content, embeds, a view).

Why a module of its own: Discord's limits (5 rows of 5 buttons, 10 embeds, 2000-character
content, 100-character custom ids) shape the layout, and all of that lives here, away from the
event handling. Buttons and selects are :class:`discord.ui.DynamicItem`s whose custom id carries
the core's action id (and the owner's Discord id), so a press works after a restart and no view
object is kept in memory per message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

import discord
from discord.utils import escape_markdown

from bot.core.types import AnimeCard, Button, Poll, Reply
from bot.text_safety import defuse_mentions, printable


class PressTarget(Protocol):
    """What a button or select needs from the client: where presses go (the client class
    itself is never imported here, so the renderer and the client do not depend on each other)."""

    async def on_press(
        self, interaction: discord.Interaction, action: str, value: str | None
    ) -> None: ...


MAX_CUSTOM_ID = 100
MAX_ROWS, MAX_PER_ROW, MAX_EMBEDS, MAX_CONTENT = 5, 5, 10, 2000
#: ``ar|OWNER|ACTION``: OWNER is the Discord user id allowed to press (empty: anyone).
BUTTON_ID = re.compile(r"ar\|(?P<owner>\d{0,20})\|(?P<action>[!-~]{1,64})")
#: ``av|ACTION``: a select-menu vote; the chosen value goes to ``Core.press`` with the action.
SELECT_ID = re.compile(r"av\|(?P<action>[!-~]{1,64})")
STYLES = {
    "primary": discord.ButtonStyle.primary,
    "secondary": discord.ButtonStyle.secondary,
    "success": discord.ButtonStyle.success,
    "danger": discord.ButtonStyle.danger,
}
COLOUR = discord.Colour(0x5865F2)
#: Every message the bot sends carries this: it pings nobody, whatever its text says.
NO_PINGS = discord.AllowedMentions.none()
_CARD_START = re.compile(r"^\d+\.\s")


def button_id(button: Button) -> str:
    custom_id = f"ar|{button.owner or ''}|{button.action}"
    if len(custom_id) > MAX_CUSTOM_ID or not BUTTON_ID.fullmatch(custom_id):
        raise ValueError(f"action id does not fit a Discord custom_id: {button.action!r}")
    return custom_id


def select_id(poll: Poll) -> str:
    custom_id = f"av|{poll.action}"
    if len(custom_id) > MAX_CUSTOM_ID or not SELECT_ID.fullmatch(custom_id):
        raise ValueError(f"action id does not fit a Discord custom_id: {poll.action!r}")
    return custom_id


def _clip(text: str, limit: int) -> str:
    """Shown text: printable, mentions defused, at most ``limit`` characters."""
    text = defuse_mentions(printable(text))
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


class CoreButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=BUTTON_ID):
    """A button whose press goes to ``Core.press``; only its owner (if any) may press it."""

    def __init__(
        self,
        owner: str | None,
        action: str,
        *,
        label: str = "?",
        style: discord.ButtonStyle = discord.ButtonStyle.secondary,
        row: int | None = None,
    ) -> None:
        custom_id = f"ar|{owner or ''}|{action}"
        super().__init__(
            discord.ui.Button(label=_clip(label, 80), style=style, custom_id=custom_id), row=row
        )
        self.owner, self.action = owner, action

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> CoreButton:
        base: Any = item
        return cls(
            match["owner"] or None, match["action"], label=base.label or "?", style=base.style
        )

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        if self.owner and str(interaction.user.id) != self.owner:
            await interaction.response.send_message(
                f"These buttons belong to <@{self.owner}>. Use the command yourself to get "
                "your own.",
                ephemeral=True,
                allowed_mentions=discord.AllowedMentions.none(),
            )
            return False
        return True

    async def callback(self, interaction: discord.Interaction) -> None:
        client: PressTarget = interaction.client  # type: ignore[assignment]
        await client.on_press(interaction, self.action, None)


class CoreSelect(discord.ui.DynamicItem[discord.ui.Select[Any]], template=SELECT_ID):
    """A select menu (the /night vote): the chosen value goes to ``Core.press``."""

    def __init__(
        self,
        action: str,
        *,
        options: list[discord.SelectOption] | None = None,
        placeholder: str | None = None,
        row: int | None = None,
    ) -> None:
        super().__init__(
            discord.ui.Select(
                custom_id=f"av|{action}",
                options=options or [],
                placeholder=placeholder,
                min_values=1,
                max_values=1,
            ),
            row=row,
        )
        self.action = action

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> CoreSelect:
        base: Any = item
        return cls(match["action"], options=list(base.options), placeholder=base.placeholder)

    async def callback(self, interaction: discord.Interaction) -> None:
        client: PressTarget = interaction.client  # type: ignore[assignment]
        values = self.item.values
        await client.on_press(interaction, self.action, values[0] if values else None)


@dataclass
class Rendered:
    """Keyword arguments for send_message / edit_message / followup.send / channel.send."""

    content: str | None = None
    embeds: list[discord.Embed] = field(default_factory=list)
    items: list[discord.ui.Item[Any]] = field(default_factory=list)

    def view(self) -> discord.ui.View | None:
        if not self.items:
            return None
        view = discord.ui.View(timeout=None)
        for item in self.items:
            view.add_item(item)
        return view

    def kwargs(self, *, for_edit: bool = False) -> dict[str, Any]:
        """``for_edit`` spells out empty parts so an edit clears what the old message had."""
        out: dict[str, Any] = {
            "content": self.content,
            "embeds": self.embeds,
            "allowed_mentions": NO_PINGS,
        }
        view = self.view()
        if view is not None or for_edit:
            out["view"] = view
        if not for_edit and self.content is None:
            del out["content"]
        return out


def render(reply: Reply) -> Rendered:
    """The message for a reply: embeds for anime cards and field lists, buttons, a vote menu."""
    out = Rendered()
    if reply.picks:
        out.content = _clip(_header(reply), MAX_CONTENT) or None
        out.embeds = [card_embed(c) for c in reply.picks[:MAX_EMBEDS]]
    elif reply.fields:
        embed = discord.Embed(title=_clip(reply.title or "", 256) or None, colour=COLOUR)
        for f in reply.fields[:25]:
            embed.add_field(
                name=_clip(f.name, 256), value=_clip(f.value or "-", 1024), inline=f.inline
            )
        out.embeds = [embed]
    elif reply.title:
        out.embeds = [
            discord.Embed(
                title=_clip(reply.title, 256),
                description=_clip(escape_markdown(reply.text), 4096),
                colour=COLOUR,
            )
        ]
    else:
        out.content = _clip(escape_markdown(reply.text), MAX_CONTENT)
    out.items = _components(reply)
    return out


def _header(reply: Reply) -> str:
    """The reply's text without the card lines the embeds show (cards past the tenth stay)."""
    notes: list[str] = []
    blocks: list[list[str]] = []  # one per numbered card: "N. ..." and its indented lines
    for ln in reply.text.splitlines():
        if _CARD_START.match(ln):
            blocks.append([ln])
        elif blocks and ln.startswith("   "):
            blocks[-1].append(ln)
        elif ln.strip():
            notes.append(ln)
    rest = [ln for block in blocks[MAX_EMBEDS:] for ln in block]
    head = [f"**{escape_markdown(reply.title)}**"] if reply.title else []
    return "\n".join(head + [escape_markdown(n) for n in notes + rest])


def card_embed(card: AnimeCard) -> discord.Embed:
    """One anime: title, genres, type, predicted score (each member's for /night) and why."""
    why = f"Why: {card.reason}" if card.reason else None
    embed = discord.Embed(
        title=_clip(card.title, 256),
        url=card.url,
        description=_clip(escape_markdown(why), 4096) if why else None,
        colour=COLOUR,
    )
    if card.genres:
        embed.add_field(name="Genres", value=_clip(", ".join(card.genres), 1024), inline=True)
    kind = ", ".join(b for b in (card.type, f"{card.episodes} ep" if card.episodes else None) if b)
    if kind:
        embed.add_field(name="Type", value=_clip(kind, 1024), inline=True)
    if card.member_scores:
        each = " \u00b7 ".join(f"{escape_markdown(n)} {s:.1f}" for n, s in card.member_scores)
        embed.add_field(name="Predicted for each", value=_clip(each, 1024), inline=False)
        if card.predicted_score is not None:
            embed.add_field(name="Group score", value=f"{card.predicted_score:.1f}", inline=True)
    elif card.predicted_score is not None:
        embed.add_field(name="Predicted score", value=f"{card.predicted_score:.1f}/10", inline=True)
    if card.similarity is not None:
        embed.add_field(name="Similarity", value=f"{card.similarity:.2f}", inline=True)
    if card.picture and card.picture.startswith("https://"):
        embed.set_thumbnail(url=card.picture)
    return embed


def _components(reply: Reply) -> list[discord.ui.Item[Any]]:
    """Rows: per-card buttons, then the reply's rows, then the vote menu; at most 5 rows."""
    tail_rows = [
        [(b.label, b) for b in row[i : i + MAX_PER_ROW]]
        for row in reply.buttons
        for i in range(0, len(row), MAX_PER_ROW)
    ]
    reserved = len(tail_rows) + (1 if reply.poll else 0)
    card_rows = _card_rows(reply.picks[:MAX_EMBEDS], MAX_ROWS - reserved)
    rows = (card_rows + tail_rows)[: MAX_ROWS - (1 if reply.poll else 0)]
    items: list[discord.ui.Item[Any]] = []
    for r, row in enumerate(rows):
        for label, button in row:
            items.append(
                CoreButton(
                    button.owner, button.action, label=label, style=STYLES[button.style], row=r
                )
            )
    if reply.poll is not None:
        poll = reply.poll
        options = [
            discord.SelectOption(
                label=_clip(c.label, 100),
                value=c.value[:100],
                description=_clip(c.description, 100) or None,
            )
            for c in poll.choices[:25]
        ]
        select_id(poll)  # validates the length
        items.append(
            CoreSelect(
                poll.action, options=options, placeholder=_clip(poll.question, 150), row=len(rows)
            )
        )
    return items


def _card_rows(cards: tuple[AnimeCard, ...], room: int) -> list[list[tuple[str, Button]]]:
    """One row per card when that fits, else one row per kind of button ("#1", "#2", ...)."""
    with_buttons = [(i, c) for i, c in enumerate(cards, 1) if c.buttons]
    if not with_buttons or room <= 0:
        return []
    numbered = len(cards) > 1

    def label(i: int, b: Button) -> str:
        return f"#{i} {b.label}" if numbered else b.label

    if len(with_buttons) <= room and all(len(c.buttons) <= MAX_PER_ROW for _, c in with_buttons):
        return [[(label(i, b), b) for b in c.buttons] for i, c in with_buttons]
    by_kind: dict[str, list[tuple[str, Button]]] = {}
    for i, c in with_buttons:
        for b in c.buttons:
            by_kind.setdefault(b.label, []).append((label(i, b), b))
    rows = [
        group[j : j + MAX_PER_ROW]
        for group in by_kind.values()
        for j in range(0, len(group), MAX_PER_ROW)
    ]
    return rows[:room]
