"""Per-user fold-ins, cached: the one place a request gets a person's :class:`UserEntry`.

An entry (fold-in, rank and predicted-score vectors) is kept (LRU) until :meth:`invalidate`,
and every use first compares a cheap stamp of the user's list (row count, latest
``updated_at`` and score sum: one indexed query), so a rating written by another path (an
import, another process) is never missed. Entries also carry the serving model they were
computed on: one from an older model is recomputed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from recommender.steering import NO_STEERING, LessLike
from recommender.user_entry import FranchiseMembers, Serving, UserEntry, compute_entry
from storage.repository import Store


class EntryCache:
    """The LRU of user entries, the empty-list entry, and the franchise map a drop vetoes."""

    def __init__(
        self,
        store: Store,
        franchise: FranchiseMembers,
        cold_start_shrink: float = 1.0,
        size: int = 1024,
    ) -> None:
        self.store = store
        self.franchise = franchise
        self.cold_start_shrink = cold_start_shrink  # list rows at which the prior weighs 50%
        self._size = size
        self._entries: OrderedDict[int, UserEntry] = OrderedDict()
        self._cold: UserEntry | None = None
        self._lock = threading.Lock()

    def use_franchise(self, franchise: FranchiseMembers) -> None:
        """Veto drops through another franchise map (entries computed with the old one go)."""
        self.franchise = franchise
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def invalidate(self, user_id: int) -> None:
        with self._lock:
            self._entries.pop(user_id, None)

    def get(self, serving: Serving, user_id: int) -> UserEntry:
        """``user_id``'s entry on ``serving``: the cached one when still current."""
        stamp = self.store.ratings.stamp(user_id)  # read before the rows: never a stale stamp
        with self._lock:
            entry = self._entries.get(user_id)
            if entry is not None and entry.serving is serving and entry.stamp == stamp:
                self._entries.move_to_end(user_id)
                return entry
        user = self.store.users.get(user_id)
        less = LessLike.from_settings(user.settings) if user is not None else NO_STEERING
        ratings = self.store.ratings.of_user(user_id)
        entry = compute_entry(serving, stamp, ratings, self.cold_start_shrink, less, self.franchise)
        with self._lock:
            self._entries[user_id] = entry
            self._entries.move_to_end(user_id)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return entry

    def cold(self, serving: Serving) -> UserEntry:
        """The entry of a person with an empty list (computed once per model)."""
        cold = self._cold
        if cold is None or cold.serving is not serving:
            cold = compute_entry(serving, (0, None, 0.0), [], self.cold_start_shrink)
            self._cold = cold
        return cold
