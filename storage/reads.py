"""Read-only lookups the chat path needs: one SELECT each, never a write, typed results.

They run through the Store's own connection and lock, like every other Store query.
"""

from __future__ import annotations

import json

from storage.repository import Store
from storage.rows import Chat, User

_USER_COLS = "id, platform, platform_user_id, display_name, settings"


def find_user(store: Store, platform: str, platform_user_id: str) -> User | None:
    """The user row of a platform identity, or None when that person never wrote anything."""
    rows = store._query(
        f"SELECT {_USER_COLS} FROM users WHERE platform = ? AND platform_user_id = ?",
        (platform, platform_user_id),
    )
    if not rows:
        return None
    r = rows[0]
    return User(r[0], r[1], r[2], r[3], json.loads(r[4]))


def find_chat(store: Store, platform: str, chat_id: str) -> Chat | None:
    """The chat row (its settings), or None when no setting was ever stored for it."""
    rows = store._query(
        "SELECT platform, chat_id, title, settings FROM chats WHERE platform = ? AND chat_id = ?",
        (platform, chat_id),
    )
    if not rows:
        return None
    r = rows[0]
    return Chat(r[0], r[1], r[2], json.loads(r[3]))
