"""A per-user token bucket: bursts are fine, floods get a friendly cooldown."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """``capacity`` requests at once, refilled at ``per_second``. Keys are ``Caller.key``.

    ``clock`` is injectable so that tests step time instead of sleeping.
    """

    def __init__(
        self,
        capacity: int = 12,
        per_second: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1 or per_second <= 0:
            raise ValueError("capacity must be >= 1 and per_second > 0")
        self.capacity, self.per_second, self.clock = capacity, per_second, clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens; returns 0 when allowed, else the seconds until it would be."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.capacity), now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.at) * self.per_second)
        bucket.at = now
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return 0.0
        if len(self._buckets) > 10_000:  # forget idle users now and then
            self._forget_full(now)
        return math.ceil((cost - bucket.tokens) / self.per_second * 10) / 10

    def _forget_full(self, now: float) -> None:
        for key in [
            k
            for k, b in self._buckets.items()
            if b.tokens + (now - b.at) * self.per_second >= self.capacity
        ]:
            del self._buckets[key]
