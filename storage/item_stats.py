"""Per-anime facts computed from every list: what the onboarding deck is chosen by."""

from __future__ import annotations

from storage.db import Database


class ItemStats:
    """Aggregates over ``ratings`` (one scan; callers compute them once per model)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def score_moments(self) -> dict[int, tuple[int, float, float]]:
        """anime id -> (number of scores, their sum, the sum of their squares)."""
        rows = self._db.query(
            "SELECT anime_id, COUNT(score), TOTAL(score), TOTAL(score * score) FROM ratings "
            "WHERE score IS NOT NULL GROUP BY anime_id"
        )
        return {int(r[0]): (int(r[1]), float(r[2]), float(r[3])) for r in rows}
