"""Keeping secrets out of everything Beacon writes down: events, rows, logs, API responses.

Two nets, because a secret can reach a message by paths no one listed (an exception text that quotes a
header, a provider echoing the request back): the exact values of the secrets this process loaded
(`remember`), and the shapes secrets take whatever their value (bearer tokens, URL user-info, key-like
query parameters). Every failure message and every log line passes through `redact`.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "[redacted]"

_known: set[str] = set()

_SHAPES = [
    # Authorization headers and their echoes: "Bearer sk-…", "Basic dXNlcjpw…"
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{4,}"), rf"\1 {MASK}"),
    # user-info in a URL: scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/@\s:]+(?::[^/@\s]*)?@"), rf"\1{MASK}@"),
    # key-like parameters: api_key=…, token: …, "password": "…"
    (
        re.compile(
            r"(?i)\b(api[_-]?key|access[_-]?token|token|secret|password|passwd)([\"']?\s*[:=]\s*[\"']?)[^\s\"'&,}]+"
        ),
        rf"\1\2{MASK}",
    ),
    # common provider key formats, should one appear bare
    (re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_\-]{8,}"), MASK),
]


def remember(secret: str) -> None:
    """Register a secret value this process holds, so any text quoting it is masked."""
    if secret and len(secret) >= 4:
        _known.add(secret)
        _known.add(secret.strip())


# One cheap scan decides whether the shapes need looking for: most log values (ids, statuses, times) hold
# none of these, and every log line passes through here.
_MAY_HOLD_SECRET = re.compile(r"(?i)bearer|basic|@|key|token|secret|passw|[spr]k-")


def redact(text: str) -> str:
    for secret in _known:
        if secret in text:
            text = text.replace(secret, MASK)
    if _MAY_HOLD_SECRET.search(text):
        for pattern, replacement in _SHAPES:
            text = pattern.sub(replacement, text)
    return text


def public_url(url: str | None) -> str | None:
    """A URL fit for a receipt: scheme, host, port and path; no user-info, query or fragment."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return redact(url.split("?", 1)[0])
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def log_processor(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: mask secrets in every string value of a log line."""
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = redact(value)
        elif isinstance(value, BaseException):
            event_dict[key] = redact(f"{type(value).__name__}: {value}")
    return event_dict
