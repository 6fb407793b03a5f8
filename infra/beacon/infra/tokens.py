"""API tokens: what `beacon tokens create|list|revoke` manages and the HTTP services check.

A token reads `beacon_<id>_<secret>`: the id (8 hex digits) names it in lists and logs, the secret (32 random
bytes, URL-safe base64) is shown once, when it is made. Only the SHA-256 of the whole token is stored
(api_tokens.sha256), so the table alone lets no one call the API; a lookup is by that digest. A token may
submit jobs (with its quotas: cells per job, cells per UTC day) or only read.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

PREFIX = "beacon_"
_SHAPE = re.compile(r"beacon_([0-9a-f]{8})_([A-Za-z0-9_-]{43})")
# A bearer credential longer than this is no token of ours: refused without hashing it.
MAX_TOKEN_CHARS = 100
DEFAULT_CELLS_PER_JOB = 1_000
DEFAULT_CELLS_PER_DAY = 10_000


@dataclass(frozen=True)
class Token:
    token_id: str
    name: str
    can_submit: bool
    cells_per_day: int
    cells_per_job: int
    created_at: datetime
    revoked_at: datetime | None

    COLUMNS = "token_id, name, can_submit, cells_per_day, cells_per_job, created_at, revoked_at"

    @classmethod
    def of_row(cls, row: tuple[Any, ...]) -> Token:
        return cls(*row)


def new_token() -> tuple[str, str]:
    """(token_id, the whole token): the token is shown once and never stored."""
    token_id = secrets.token_hex(4)
    return token_id, f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def well_formed(token: str) -> bool:
    return len(token) <= MAX_TOKEN_CHARS and _SHAPE.fullmatch(token) is not None


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if it holds one of our shape."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and well_formed(value) else None


NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}")
NAME_RULE = "1-64 letters, digits, spaces and . _ @ -, starting with a letter or digit"


# --- what `beacon tokens` does, as the schema's owner (psycopg, synchronous) ---------------------------


def create(conn: Any, name: str, can_submit: bool, cells_per_day: int, cells_per_job: int) -> tuple[Token, str]:
    """A new token and its one-time secret."""
    token_id, token = new_token()
    row = conn.execute(
        f"INSERT INTO api_tokens (token_id, name, sha256, can_submit, cells_per_day, cells_per_job)"
        f" VALUES (%s, %s, %s, %s, %s, %s) RETURNING {Token.COLUMNS}",
        (token_id, name, digest(token), can_submit, cells_per_day, cells_per_job),
    ).fetchone()
    return Token.of_row(row), token


def listed(conn: Any) -> list[tuple[Token, int]]:
    """Every token with the cells it has used today (UTC)."""
    rows = conn.execute(
        f"SELECT {', '.join('t.' + c for c in Token.COLUMNS.split(', '))}, coalesce(u.cells, 0) FROM api_tokens t"
        " LEFT JOIN api_token_usage u ON u.token_id = t.token_id AND u.day = (now() AT TIME ZONE 'UTC')::date"
        " ORDER BY t.created_at, t.token_id"
    ).fetchall()
    return [(Token.of_row(r[:-1]), int(r[-1])) for r in rows]


def revoke(conn: Any, token_id: str) -> Token | None:
    """Revoke now (a revoked token stays revoked); None when there is no such token."""
    row = conn.execute(
        f"UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE token_id = %s RETURNING {Token.COLUMNS}",
        (token_id,),
    ).fetchone()
    return Token.of_row(row) if row else None


# --- what the HTTP services do (psycopg, asynchronous) --------------------------------------------------


async def lookup(conn: Any, token: str) -> Token | None:
    """The live (not revoked) token, or None."""
    cur = await conn.execute(
        f"SELECT {Token.COLUMNS} FROM api_tokens WHERE sha256 = %s AND revoked_at IS NULL", (digest(token),)
    )
    row = await cur.fetchone()
    return Token.of_row(row) if row else None
