"""Answering a request from a kept body (cache.py), by RFC 9110: gzipped when the client accepts it
(`Accept-Encoding`), and `304 Not Modified` with no body when the client holds it already (`If-None-Match`).

Headers are the client's: anything malformed is read as the absence of what it failed to say (the body as it
is, in full), never as a match, and never as an error.

`Cache-Control: private, no-cache`: the API may ask for a token, so no shared cache may keep an answer, and a
client revalidates before each reuse, which puts every reuse through the token check again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from fastapi.responses import Response

from beacon.reader.cache import Entry

CACHE_CONTROL = "private, no-cache"

# Section 8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, etagc = %x21 / %x23-7E / obs-text (Starlette
# hands header bytes over as latin-1, so obs-text is U+0080-U+00FF here). Section 5.6.1: list elements are
# separated by commas with optional whitespace, and may be empty.
_ENTITY_TAG = re.compile(r'[ \t]*(?:(?:W/)?"([\x21\x23-\x7e\x80-\xff]*)")?[ \t]*(?:,|\Z)')
# Section 12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ).
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")


def not_modified(if_none_match: Sequence[str], etag: str) -> bool:
    """Whether `If-None-Match` (all its field lines) names `etag`, by the weak comparison section 13.1.2 asks
    for, or is `*` (asked only once the resource is known to exist)."""
    field = ", ".join(if_none_match).strip(" \t")
    if field == "*":
        return True
    wanted, pos, found = etag[1:-1], 0, False
    while pos < len(field):
        element = _ENTITY_TAG.match(field, pos)
        if element is None:
            return False  # not a list of entity-tags: as if it were not sent
        found = found or element.group(1) == wanted
        pos = element.end()
    return found


def accepts_gzip(accept_encoding: Sequence[str]) -> bool:
    """Section 12.5.3: gzip (or x-gzip) is listed with a qvalue above 0, or is not listed and `*` is. A
    malformed qvalue counts as 0; without the header, the body goes as it is."""
    weights: dict[str, bool] = {}
    for element in ",".join(accept_encoding).split(","):
        coding, *params = element.split(";")
        acceptable = True
        for param in params:
            name, _, value = param.partition("=")
            if name.strip(" \t").lower() == "q":
                q = value.strip(" \t")
                acceptable = _QVALUE.fullmatch(q) is not None and float(q) > 0
        weights[coding.strip(" \t").lower()] = acceptable
    for coding in ("gzip", "x-gzip", "*"):
        if coding in weights:
            return weights[coding]
    return False


def response(entry: Entry, if_none_match: Sequence[str], accept_encoding: Sequence[str]) -> Response:
    body = entry.gzip if entry.gzip is not None and accepts_gzip(accept_encoding) else entry.identity
    # Vary: the coding depends on Accept-Encoding, so a cache must not give one client's coding to another.
    headers = {"etag": body.etag, "cache-control": CACHE_CONTROL, "vary": "Accept-Encoding"}
    if not_modified(if_none_match, body.etag):
        return Response(status_code=304, headers=headers)
    if body is entry.gzip:
        headers["content-encoding"] = "gzip"
    return Response(body.data, media_type="application/json", headers=headers)
