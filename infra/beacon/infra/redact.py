"""Keeping secrets out of everything Beacon writes down: events, rows, logs, API responses.

Two nets, because a secret can reach a message by paths no one listed (an exception text that quotes a
header, a provider echoing the request back): the exact values of the secrets this process loaded
(`remember`), in every spelling a message may give them (escaped by Python's repr, by JSON, in a URL, in
HTML, and those escaped once more), and the shapes secrets take whatever their value (bearer tokens, URL
user-info, key-like parameters, secret-holding URL query parameters). Every failure message and every
log line passes through `redact`.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

MASK = "[redacted]"

_known: set[str] = set()  # every spelling of every remembered secret
_by_length: list[str] = []  # the same, longest first: a spelling that holds another is masked whole

# Each shape leaves a value it already masked alone, so masking twice changes nothing (and eats no
# punctuation after the mask).
_SHAPES = [
    # Authorization headers and their echoes: "Bearer sk-…", "Basic dXNlcjpw…"
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{4,}"), rf"\1 {MASK}"),
    # user-info in a URL: scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/@\s:]+(?::[^/@\s]*)?@"), rf"\1{MASK}@"),
    # key-like parameters anywhere: api_key=…, token: …, "password": "…", client_secret=…, X-Api-Key: …
    (
        re.compile(
            r"(?i)(?<![a-z0-9])((?:[a-z0-9]+[_-])*(?:api[_-]?key|access[_-]?key|secret[_-]?key|private[_-]?key"
            r"|token|secret|password|passwd|pwd|credentials?))([\"']?\s*[:=]\s*[\"']?)(?!\[redacted\])[^\s\"'&,}]+"
        ),
        rf"\1\2{MASK}",
    ),
    # URL query parameters that hold secrets under shorter names (?key= is Google's API key; sig= an Azure
    # SAS signature; X-Amz-Signature=…), also inside a URL that is itself percent-encoded (%3Fkey%3D…)
    (
        re.compile(
            r"(?i)((?:[?&;]|%3F|%26)(?:[a-z0-9]+[_-])*(?:key|apikey|sig|signature|auth|code|session|jwt)(?:=|%3D))"
            r"(?!\[redacted\])(?:[^&#\s\"'<>%]|%(?!26|23)[0-9a-f]{2})+"
        ),
        rf"\1{MASK}",
    ),
    # common provider key formats, should one appear bare
    (re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_\-]{8,}"), MASK),
]


def _escapes() -> list[Callable[[str], str]]:
    def py_repr(text: str) -> str:  # as Python quotes it in a message: \t, \x07, \u2028, \\
        return repr(text)[1:-1]

    def py_bytes(text: str) -> str:  # as a bytes repr quotes it (b'Bearer …'): non-ASCII as \xc3\xa9
        return repr(text.encode("utf-8", "surrogatepass"))[2:-1]

    def quotes(text: str) -> str:  # repr escapes the quote it does not use when the text holds both
        return text.replace("\\", "\\\\").replace("'", "\\'").replace('"', '\\"')

    return [
        py_repr,
        py_bytes,
        quotes,
        lambda t: t.encode("unicode_escape").decode("ascii"),
        lambda t: json.dumps(t)[1:-1],
        lambda t: json.dumps(t, ensure_ascii=False)[1:-1],
        lambda t: quote(t, safe=""),
        lambda t: quote(t),
        lambda t: quote_plus(t),
        lambda t: html.escape(t),
    ]


_ESCAPES = _escapes()
_PERCENT = re.compile("%[0-9A-F]{2}")
# The characters no escape above rewrites (letters, digits and URL-unreserved punctuation), and the
# shortest run of them worth masking alone: a run of 8 such characters of a key does not occur by chance.
_REWRITTEN = re.compile(r"[^A-Za-z0-9._~-]+")
MIN_FRAGMENT = 8


def spellings(secret: str) -> set[str]:
    """`secret` as a message may spell it: as is, stripped, escaped once (Python repr of the text or of
    its bytes, unicode_escape, JSON, percent-encoded in upper or lower case, HTML) and escaped twice (the
    JSON or repr of a message that had escaped it already, e.g. an error body quoting an exception).
    Beyond those, the secret's fragments: each run of MIN_FRAGMENT or more characters that no escape
    rewrites, masked wherever it appears, so that no spelling however deeply escaped, and no part a
    parser quoted alone (the half after a tab), shows a recognisable piece of it. A key without such
    characters (the usual `sk-...`) is its own one fragment."""
    once = {secret, secret.strip()}
    once |= {escape(s) for s in list(once) for escape in _ESCAPES}
    once |= {_PERCENT.sub(lambda m: m.group().lower(), s) for s in once if "%" in s}
    twice = {escape(s) for s in once for escape in _ESCAPES[:6]}
    fragments = {f for f in _REWRITTEN.split(secret) if len(f) >= MIN_FRAGMENT}
    return {s for s in once | twice | fragments if len(s) >= 4}


def remember(secret: str) -> None:
    """Register a secret value this process holds, so any text quoting it, in any spelling, is masked."""
    global _by_length
    if secret and len(secret.strip()) >= 4:
        _known.update(spellings(secret))
        _by_length = sorted(_known, key=len, reverse=True)


# One cheap scan decides whether the shapes need looking for: most log values (ids, statuses, times) hold
# none of these, and every log line passes through here.
_MAY_HOLD_SECRET = re.compile(
    r"(?i)bearer|basic|@|key|token|secret|passw|pwd|credential|sig|auth|code|session|jwt|[spr]k-"
)


def redact(text: str) -> str:
    for secret in _by_length:
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
