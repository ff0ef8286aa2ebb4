"""``PLATFORM:ID`` identities (``telegram:12345``, ``discord:-100123``): the one parser.

Settings (admins, the admin chat), the audit log, the CLI's ``--user`` and the core all spell a
person or a chat this way; they parse and format it here so the rules never drift apart.
"""

from __future__ import annotations

from typing import NamedTuple


class Identity(NamedTuple):
    """A platform and the platform's own id for a user or a chat (both non-empty)."""

    platform: str
    id: str

    def __str__(self) -> str:
        return identity_key(self.platform, self.id)


def identity_key(platform: str, platform_id: str | int) -> str:
    """``("telegram", 12)`` -> ``"telegram:12"``."""
    return f"{platform}:{platform_id}"


def parse_identity(text: str) -> Identity:
    """``"telegram:-100123"`` -> ``Identity("telegram", "-100123")``; ValueError when malformed.

    Only the first colon separates, so an id may itself contain colons.
    """
    platform, sep, platform_id = text.strip().partition(":")
    if not sep or not platform or not platform_id:
        raise ValueError(f"expected PLATFORM:ID (e.g. telegram:12345), got {text!r}")
    return Identity(platform, platform_id)
