"""User text is data: make it unable to ping anyone or to drive a terminal.

Why one module: every place that shows text a person (or an imported file) wrote goes through
these functions, so the rule "no pings, no control codes" lives in one spot. Nothing here
imports a chat library, so ``bot/core``, the adapters and the CLI can all use it.
"""

from __future__ import annotations

import re
import unicodedata

#: A word joiner: invisible, keeps the text readable, and breaks the mention syntax after '@'.
JOINER = "\u2060"
#: ANSI/VT escape sequences: CSI (``ESC [ ... final``), OSC (``ESC ] ... BEL|ST``), and
#: two-character escapes; also their 8-bit C1 forms.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"  # CSI
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC ... BEL or ST
    r"|(?:\x1bP|\x90|\x1b_|\x9f|\x1b\^|\x9e)[^\x1b\x9c]*(?:\x1b\\|\x9c)?"  # DCS, APC, PM
    r"|\x1b[ -/]*[0-~]?"  # other ESC sequences (ESC c, ESC ( B, ...)
)
#: '@' where a platform would read a mention: '@everyone', '@here', '@name', '<@123>', '<@&1>'.
_MENTION = re.compile(r"@(?=[\w!&#])")


def printable(text: str, *, keep_newlines: bool = True) -> str:
    """``text`` with escape sequences removed and every other control character replaced.

    Tabs become a space; newlines stay when ``keep_newlines`` (one line otherwise); any other
    C0/C1 control, and the bidirectional overrides that reorder what a terminal shows, become
    U+FFFD so that nothing a user typed can move the cursor, recolour, retitle or clear a
    terminal.
    """
    text = _ESCAPES.sub("", text).replace("\r\n", "\n").replace("\t", " ")
    out = []
    for ch in text:
        if ch == "\n":
            out.append(ch if keep_newlines else " ")
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif unicodedata.category(ch) == "Cf" and ch not in _BIDI_CONTROLS:
            out.append(ch)  # zero-width joiners and the like (emoji sequences need them)
        else:
            out.append("\ufffd")
    return "".join(out)


_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def defuse_mentions(text: str) -> str:
    """``text`` with a word joiner after every '@' that starts a mention, and after '<@'.

    Shown on Discord or Telegram, ``@everyone``, ``@here``, ``@someone``, ``<@123>`` and
    ``<@&456>`` then read as plain text (the client-wide "no mentions" setting also holds).
    """
    return _MENTION.sub("@" + JOINER, text)
