"""Pure: what a token's quotas let it start. A job is refused whole (nothing registered, nothing emitted) when
its cells are over the token's cells per job, or over what its cells per day leave for today (UTC); the
answer says which quota, its limit, what is left and when it resets. The daily count itself is kept in
api_token_usage and charged in the same transaction that registers the job (publish.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from beacon.infra.tokens import Token


@dataclass  # not frozen: raising sets __traceback__
class OverQuota(Exception):
    quota: str  # "cells_per_job" or "cells_per_day"
    limit: int
    left: int
    asked: int
    resets_at: datetime | None  # None: a per-job limit never resets

    def problems(self) -> list[str]:
        if self.resets_at is None:
            return [f"the job has {self.asked} cells; this token may start at most {self.limit} cells per job"]
        return [
            f"the job has {self.asked} cells; this token has {self.left} of its {self.limit} cells per day left, "
            f"until {self.resets_at.isoformat()}"
        ]

    def as_json(self) -> dict[str, object]:
        return {
            "error": "quota exceeded",
            "problems": self.problems(),
            "quota": self.quota,
            "limit": self.limit,
            "left": self.left,
            "asked": self.asked,
            "resets_at": self.resets_at.isoformat() if self.resets_at else None,
        }


def next_reset(now: datetime) -> datetime:
    """The next UTC midnight: when a day's count starts again."""
    return datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), time(), tzinfo=UTC)


def per_job(token: Token, cells: int) -> OverQuota | None:
    if cells > token.cells_per_job:
        return OverQuota("cells_per_job", token.cells_per_job, token.cells_per_job, cells, None)
    return None


def per_day(token: Token, cells: int, used_today: int, now: datetime) -> OverQuota | None:
    left = max(0, token.cells_per_day - used_today)
    if cells > left:
        return OverQuota("cells_per_day", token.cells_per_day, left, cells, next_reset(now))
    return None
