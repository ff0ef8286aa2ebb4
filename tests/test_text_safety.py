"""The text and log rules on their own: printable text, defused mentions, masked secrets."""

from __future__ import annotations

import io
import logging

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.logsafety import RedactSecrets
from bot.text_safety import defuse_mentions, printable

TOKEN = "123456:AAbbCCddEEffGGhhIIjj-kk_LL"


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_printable_never_lets_a_control_character_through(text: str) -> None:
    shown = printable(text)
    assert all(c == "\n" or c.isprintable() or c == "\u2060" or ord(c) > 0x9F for c in shown)
    assert not any(c in shown for c in "\x1b\x9b\x9d\x07\x08\r\x00\u202e")


def test_printable_strips_escape_sequences_and_keeps_the_words() -> None:
    hostile = "\x1b[31mRed\x1b[0m \x1b]0;pwned\x07Title\x1b[2J\n2nd\tline"
    assert printable(hostile) == "Red Title\n2nd line"
    assert printable("a\nb", keep_newlines=False) == "a b"
    assert printable("Steins;Gate 0 \u2014 \U0001f468\u200d\U0001f469") == (
        "Steins;Gate 0 \u2014 \U0001f468\u200d\U0001f469"
    )


@given(st.text())
def test_defused_text_has_no_mention_syntax(text: str) -> None:
    shown = defuse_mentions(text)
    for raw in ("@everyone", "@here", "<@"):
        assert raw not in shown.replace("<@\u2060", "")  # every '<@' is followed by a joiner
    assert shown.replace("\u2060", "") == text  # nothing else changes


def test_mentions_defused() -> None:
    shown = defuse_mentions("@everyone @here <@123> <@!4> <@&5> mail@example.org")
    assert "@everyone" not in shown and "<@123>" not in shown and "<@&5>" not in shown


def test_log_filter_masks_secrets_in_messages_args_and_tracebacks() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactSecrets(["discord-secret-value"]))
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug("GET https://api.telegram.org/bot%s/getMe", TOKEN)
        logger.info("token=%s", "discord-secret-value")
        try:
            raise RuntimeError(f"failed for {TOKEN}")
        except RuntimeError:
            logger.exception("boom")
    finally:
        logger.removeHandler(handler)
    written = out.getvalue()
    assert TOKEN not in written and TOKEN.split(":")[1] not in written
    assert "discord-secret-value" not in written
    assert "bot***/getMe" in written and "Traceback" in written
