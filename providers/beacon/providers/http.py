"""What every HTTP model provider shares: timeouts, retries with backoff and jitter, and the record of
each attempt. An adapter only says how to build its request and read its reply.

Transient (retried): connection errors, timeouts, 5xx, 408, 429 (waiting as long as Retry-After says).
Not transient (one attempt): any other status outside 2xx, and a reply that is not the provider's JSON.

Any status outside 2xx is a failure carrying that status: a 3xx (redirects are not followed, and its
body is never taken for an answer), a 1xx that reached us (101), and 204/205 (no content, so no reply).
Every attempt records the status the server really sent (a 203 is recorded as 203).

Replies are hostile input, and are read in bounded pieces (`decoded_chunks`): the bytes as sent are
counted, compressed bodies are inflated by us at most READ_CHUNK bytes at a time (never one network chunk
to whatever it expands to), and the inflated bytes are counted too. A plain body is refused past
MAX_REPLY_BYTES; a stream past a cap per line and a cap in all (`StreamCaps`), so a 40 MB line or a
gzip bomb ends early as a failed attempt instead of filling the runner's memory. Anything an adapter
cannot turn into an answer, whatever exception it raises, becomes one attempt failed with
`bad_response`; every failure message is bounded and has its secrets masked (answers.clean_message).
Nothing a provider sends can raise out of `with_retries`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import json
import logging
import random
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from beacon.infra.redact import redact
from beacon.providers.answers import clean_message
from beacon.providers.base import ProviderResult
from beacon.providers.routing import Route
from beacon.schemas.events import Attempt, Failure, TokenCounts, now

MAX_ERROR_TEXT = 500  # of a provider's error body, kept in the failure message
# Largest reply body read at all; a longer one is refused, not parsed. Answers are cut much shorter
# (Route.max_answer_chars): this only keeps a runaway server from filling the runner's memory.
MAX_REPLY_BYTES = 16 * 1024 * 1024
MAX_ERROR_BYTES = 64 * 1024  # of an error reply's body read at all; MAX_ERROR_TEXT of it is kept
# Most bytes one step of inflating produces (and so the most a compressed reply grows in memory at once).
READ_CHUNK = 64 * 1024
# Compressed bytes allowed beyond a decompressed cap: gzip's header and trailer and deflate's block
# headers make an incompressible reply a little longer than itself, never much.
CODING_SLACK = 64 * 1024
MAX_CODINGS = 2  # content-codings stacked on one reply ("gzip, deflate"); more is not a real server
# What the runner asks for, and so all it accepts. Explicit, so that installing brotli or zstandard
# (which makes httpx advertise them) cannot bring in a decoder whose output we do not bound.
ACCEPT_ENCODING = "gzip, deflate"

# The caps of a stream (SSE or NDJSON), derived from the route's max_answer_chars:
# - a line is one event, which carries a delta of the answer and its envelope (ids, model, usage, finish
#   reason). Even an event holding the whole answer (max_answer_chars characters) in its worst JSON
#   spelling — an astral character is two \uXXXX escapes, ESCAPED_BYTES_PER_CHAR bytes — plus
#   STREAM_ENVELOPE_BYTES of envelope fits; a longer line is not an event we could use. (100,000
#   characters, the default: 2.2 MB a line, while a real event is a few hundred bytes.)
# - in all, a stream sends one event per token: ~250 bytes of envelope (vLLM's and OpenAI's chunks) for
#   a token of at least one character, so STREAM_BYTES_PER_CHAR bytes a character (but never less than
#   MAX_REPLY_BYTES) is more than any stream of an answer we would keep needs; the answer itself stops
#   being read at max_answer_chars, so only padding (empty deltas, comments, keep-alives) gets this far.
ESCAPED_BYTES_PER_CHAR = 12
STREAM_ENVELOPE_BYTES = 1024 * 1024  # generous: tool-call deltas, logprobs or a server's own extras fit
STREAM_BYTES_PER_CHAR = 256


@dataclass(frozen=True)
class StreamCaps:
    line_bytes: int  # one line, decompressed, without its line break
    total_bytes: int  # the whole stream, decompressed; as sent, at most this plus CODING_SLACK

    @classmethod
    def for_answer(cls, max_answer_chars: int) -> StreamCaps:
        return cls(
            line_bytes=max_answer_chars * ESCAPED_BYTES_PER_CHAR + STREAM_ENVELOPE_BYTES,
            total_bytes=max(MAX_REPLY_BYTES, max_answer_chars * STREAM_BYTES_PER_CHAR),
        )


@dataclass(frozen=True)
class Reply:
    answer: str
    provider_model: str | None = None
    tokens: TokenCounts | None = None
    truncated: bool = False  # reading stopped at the route's max_answer_chars
    http_status: int | None = None  # the status the server sent (set by `post`)


class _Redacted(logging.Filter):
    """httpx logs each request's URL (at INFO), query and all: an endpoint's ?key= would reach a log that
    is not Beacon's own (those pass through redact.log_processor). Masked here, whatever the log level."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        return True


logging.getLogger("httpx").addFilter(_Redacted())


def failure(code: str, stage: str, transient: bool, message: str, http_status: int | None = None) -> Failure:
    """The one way a provider failure is described: message bounded, storable, secrets masked."""
    if http_status is not None and not 100 <= http_status <= 999:
        http_status = None
    return Failure(code=code, stage=stage, transient=transient, http_status=http_status, message=clean_message(message))


class AttemptFailed(Exception):
    def __init__(self, failure: Failure, timed_out: bool = False, retry_after: float | None = None) -> None:
        super().__init__(failure.message)
        self.failure = failure
        self.timed_out = timed_out
        self.retry_after = retry_after

    def with_status(self, http_status: int) -> AttemptFailed:
        """This failure, saying which status the reply it is about came with (if it does not say yet)."""
        if self.failure.http_status is None and 100 <= http_status <= 999:
            self.failure = self.failure.model_copy(update={"http_status": http_status})
        return self


def client(route: Route) -> httpx.AsyncClient:
    timeout = httpx.Timeout(
        connect=route.connect_timeout_s, read=route.first_byte_timeout_s, write=route.connect_timeout_s, pool=None
    )
    limits = httpx.Limits(max_connections=route.concurrency, max_keepalive_connections=route.concurrency)
    return httpx.AsyncClient(timeout=timeout, limits=limits, headers={"Accept-Encoding": ACCEPT_ENCODING})


def endpoint_url(endpoint: object, path: str) -> str:
    """`path` appended to the configured endpoint's own path; its query (e.g. an api-version) kept."""
    url = httpx.URL(str(endpoint))
    base = url.path.rstrip("/")
    if path.startswith("/v1/") and base.endswith("/v1"):
        path = path[3:]  # the endpoint already names the API version
    return str(url.copy_with(path=base + path))


def retry_after_seconds(value: str | None, clock: Callable[[], datetime] = now) -> float | None:
    """Retry-After as seconds: either a number of seconds or an HTTP date (measured from `clock()`)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - clock()).total_seconds())


def excerpt(text: str, limit: int) -> str:
    """The first `limit` characters of untrusted text, secrets masked *before* it is cut: a key that
    straddles the cut would otherwise leave its first half in the message, where no mask recognises it."""
    return redact(text[: 2 * limit + 4096])[:limit]


NO_CONTENT = (204, 205)


def is_reply(status: int) -> bool:
    """A status whose body may be the answer: 2xx, except the two that say there is no body."""
    return 200 <= status < 300 and status not in NO_CONTENT


def has_error_body(status: int) -> bool:
    """Whether to read a failed reply's body for its error text: not after 1xx (101 switches protocols;
    what follows is not HTTP) nor 204/205 (no body by definition)."""
    return status >= 300


def check_status(response: httpx.Response, body: str) -> None:
    """Raise AttemptFailed for any status that is not a reply (see is_reply), keeping the provider's
    error text and the real status. Transient: 5xx, 408 and 429; anything else is not retried."""
    status = response.status_code
    if is_reply(status):
        return
    text = excerpt(body, MAX_ERROR_TEXT) or response.reason_phrase
    if status == 429:
        raise AttemptFailed(
            failure("rate_limited", "response", True, text, status),
            retry_after=retry_after_seconds(response.headers.get("retry-after")),
        )
    if 500 <= status < 600 or status == 408:
        code = "server_error" if status >= 500 else "client_error"
        raise AttemptFailed(failure(code, "response", True, text, status))
    if 400 <= status < 500:
        raise AttemptFailed(failure("client_error", "response", False, text, status))
    if 300 <= status < 400:  # never followed, and its body is never the answer
        where = excerpt(response.headers.get("location", ""), 300) or "none"
        message = f"HTTP {status}: a redirect, not followed (point the route at the endpoint itself): {text}"
        raise AttemptFailed(failure("redirect", "response", False, f"{message}; Location: {where}", status))
    if status in NO_CONTENT:
        message = f"HTTP {status}: a reply without a body"
        raise AttemptFailed(failure("bad_response", "response", False, message, status))
    # 1xx (only 101 reaches us: httpx skips interim replies) or a status outside 100..599
    message = f"HTTP {status} {response.reason_phrase}: not a final reply the runner can use"
    raise AttemptFailed(failure("unexpected_status", "response", False, message, status))


def bad_response(message: str, http_status: int | None = None) -> AttemptFailed:
    """Not transient: the same reply would come back. The status is filled in by `post` when unsaid."""
    return AttemptFailed(failure("bad_response", "parse", False, message, http_status))


# --- reading a reply in bounded pieces ---------------------------------------------------------------


class _Inflate:
    """Undoes one content-coding, producing at most READ_CHUNK bytes per step whatever the input holds:
    51 KB of gzip can expand to 50 MB, and zlib would otherwise hand all of it over at once."""

    def __init__(self, coding: str) -> None:
        self.gzip = coding in ("gzip", "x-gzip")
        self.coding = coding
        # "deflate" is meant to be zlib-wrapped, but some servers send it raw: its first two bytes say which.
        self.head: bytearray | None = None if self.gzip else bytearray()
        self.inflater = zlib.decompressobj(zlib.MAX_WBITS | 16) if self.gzip else None

    def _sniff(self, data: bytes) -> bytes:
        assert self.head is not None
        self.head += data
        if len(self.head) < 2:
            return b""
        cmf, flg = self.head[0], self.head[1]
        wrapped = cmf & 0x0F == 8 and (cmf << 8 | flg) % 31 == 0
        self.inflater = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        data, self.head = bytes(self.head), None
        return data

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self.head is not None:
            data = self._sniff(data)
            if not data:
                return
        assert self.inflater is not None
        while True:
            try:
                out = self.inflater.decompress(data, READ_CHUNK)
            except zlib.error as exc:
                raise bad_response(f"the reply's {self.coding} data is corrupt: {exc}") from None
            if out:
                yield out
            if self.inflater.eof:
                rest = self.inflater.unused_data
                if not (self.gzip and rest.startswith(b"\x1f\x8b")):
                    return  # anything after the end of the compressed data is ignored, as httpx does
                self.inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)  # another gzip member follows
                data = rest
                continue
            data = self.inflater.unconsumed_tail
            if not data and len(out) < READ_CHUNK:
                return  # all the input taken and all it makes given; when the output was full, zlib may
                # hold more from input it has taken, so it is asked again with nothing new


def _codings(response: httpx.Response) -> list[_Inflate]:
    """The reply's content-codings, innermost first (they are listed in the order they were applied)."""
    listed = [c.strip().lower() for c in response.headers.get_list("content-encoding", split_commas=True)]
    listed = [c for c in listed if c and c != "identity"]
    if len(listed) > MAX_CODINGS:
        raise bad_response(f"the reply has {len(listed)} content-codings; at most {MAX_CODINGS} are read")
    for coding in listed:
        if coding not in ("gzip", "x-gzip", "deflate"):
            raise bad_response(f"the reply's content-encoding {excerpt(coding, 40)!r} is not one the runner accepts")
    return [_Inflate(c) for c in reversed(listed)]


def _undo(data: bytes, stages: list[_Inflate]) -> Iterator[bytes]:
    if not stages:
        yield data
        return
    for piece in stages[0].feed(data):
        yield from _undo(piece, stages[1:])


async def decoded_chunks(response: httpx.Response, max_sent_bytes: int) -> AsyncIterator[bytes]:
    """The reply's body, decompressed, in pieces of at most 64 KiB (a network read, or READ_CHUNK of
    inflated data); refused once more than `max_sent_bytes` arrived as sent."""
    stages = _codings(response)
    sent = 0
    async for chunk in response.aiter_raw():
        sent += len(chunk)
        if sent > max_sent_bytes:
            raise bad_response(f"reply over {max_sent_bytes} bytes as sent")
        for piece in _undo(chunk, stages):
            yield piece


async def read_body(response: httpx.Response, limit: int = MAX_REPLY_BYTES) -> str:
    """The whole reply body as text, refusing one over `limit` bytes — as sent and once decompressed —
    while it is read: never more than `limit` plus one piece is held."""
    body = bytearray()
    async with aclosing(decoded_chunks(response, limit + CODING_SLACK)) as pieces:
        async for piece in pieces:
            if len(body) + len(piece) > limit:
                raise bad_response(f"reply over {limit} bytes")
            body += piece
    return body.decode(response.encoding or "utf-8", errors="replace")


async def read_error_text(response: httpx.Response) -> str:
    """The start of a failed reply's body, for its error text: at most MAX_ERROR_BYTES are read."""
    body = bytearray()
    try:
        async with aclosing(decoded_chunks(response, MAX_ERROR_BYTES + CODING_SLACK)) as pieces:
            async for piece in pieces:
                body += piece[: MAX_ERROR_BYTES - len(body)]
                if len(body) >= MAX_ERROR_BYTES:
                    break
    except AttemptFailed:
        pass  # an error body we cannot read: the status says enough
    return body.decode(response.encoding or "utf-8", errors="replace")


async def read_lines(response: httpx.Response, caps: StreamCaps) -> AsyncIterator[str]:
    """A streamed reply's lines (without their line break), refused as soon as a line grows past
    caps.line_bytes or the stream past caps.total_bytes — whether it was sent plain or compressed.
    Lines end at LF; a CR before it, or alone inside a line (SSE allows both), also ends a line."""
    encoding = response.encoding or "utf-8"
    pending = bytearray()  # the line being read
    total = 0
    too_long = f"stream line over {caps.line_bytes} bytes (no event of an answer this route keeps is longer)"
    async with aclosing(decoded_chunks(response, caps.total_bytes + CODING_SLACK)) as pieces:
        async for piece in pieces:
            total += len(piece)
            if total > caps.total_bytes:
                raise bad_response(f"stream over {caps.total_bytes} bytes in all (decompressed)")
            start, scan = 0, len(pending)  # the bytes held before hold no line break
            pending += piece
            while (end := pending.find(b"\n", scan)) >= 0:
                if end - start > caps.line_bytes:
                    raise bad_response(too_long)
                for line in bytes(pending[start:end]).rstrip(b"\r").split(b"\r"):
                    yield line.decode(encoding, errors="replace")
                start = scan = end + 1
            del pending[:start]
            if len(pending) > caps.line_bytes:  # refused before the line's end arrives, if it ever does
                raise bad_response(too_long)
    if pending:
        for line in bytes(pending).split(b"\r"):
            yield line.decode(encoding, errors="replace")


async def post(
    http: httpx.AsyncClient, url: str, body: Any, read: Callable[[httpx.Response], Awaitable[Reply]]
) -> Reply:
    """POST `body` as JSON; a reply that is not 2xx fails with its status (check_status), otherwise
    `read` turns it into an answer. Either way the attempt says which status the server sent."""
    async with http.stream("POST", url, json=body) as response:
        status = response.status_code
        try:
            if not is_reply(status):
                check_status(response, await read_error_text(response) if has_error_body(status) else "")
            reply = await read(response)
        except AttemptFailed as exc:
            raise exc.with_status(status) from None
        except httpx.HTTPError:
            raise  # the transport's own failure (a timeout, a dropped connection): with_retries names it
        except Exception as exc:  # whatever else a reply provoked in the adapter
            raise bad_response(f"{type(exc).__name__}: {exc}", status) from None
        return dataclasses.replace(reply, http_status=status)


def parse_json(text: str, http_status: int) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # bad JSON, a 5,000-digit number, 20,000 levels deep
        raise bad_response(
            f"reply is not JSON the runner can read ({type(exc).__name__}: {exc}): {excerpt(text, 200)!r}",
            http_status,
        ) from None


def as_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_response(f"{what} is a JSON {type(value).__name__}, not an object")
    return value


def as_text(value: Any, what: str) -> str:
    """A reply's content: a string; null is an empty answer; a list of text parts is joined."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in value):
        return "".join(p["text"] for p in value)
    raise bad_response(f"{what} is a JSON {type(value).__name__}, not text")


def count(value: Any) -> int | None:
    """A token count if it is one (a whole number in range), else None: usage is informative, not vital."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31 else None


def tokens(prompt: Any, completion: Any) -> TokenCounts | None:
    counts = TokenCounts(prompt=count(prompt), completion=count(completion))
    return counts if counts.prompt is not None or counts.completion is not None else None


def _transport_failure(exc: httpx.HTTPError) -> AttemptFailed:
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, httpx.ConnectTimeout):
        return AttemptFailed(failure("connect_timeout", "connect", True, message), True)
    if isinstance(exc, httpx.TimeoutException):
        return AttemptFailed(failure("read_timeout", "first_byte", True, message), True)
    if isinstance(exc, httpx.ConnectError):
        return AttemptFailed(failure("connect_error", "connect", True, message))
    return AttemptFailed(failure("transport_error", "read", True, message))


def backoff(route: Route, attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff with full jitter: spreads the retries of many cells so they do not stampede."""
    return rand() * min(route.backoff_max_s, route.backoff_base_s * 2 ** (attempt - 1))


async def with_retries(
    route: Route,
    attempt_once: Callable[[], Awaitable[Reply]],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rand: Callable[[], float] = random.random,
) -> ProviderResult:
    attempts: list[Attempt] = []
    timed_out = False
    for number in range(1, route.max_attempts + 1):
        started = now()
        try:
            reply = await asyncio.wait_for(attempt_once(), route.total_timeout_s)
        except AttemptFailed as exc:
            error = exc
        except TimeoutError:
            message = f"no complete reply within {route.total_timeout_s} s"
            error = AttemptFailed(failure("total_timeout", "total", True, message), timed_out=True)
        except httpx.HTTPError as exc:
            error = _transport_failure(exc)
        except Exception as exc:  # anything else a reply provoked in an adapter: not usable, not retried
            error = bad_response(f"{type(exc).__name__}: {exc}", None)
        else:
            attempts.append(
                Attempt(
                    number=number, started_at=started, completed_at=now(), outcome="ok", http_status=reply.http_status
                )
            )
            return ProviderResult(
                "completed", reply.answer, attempts, reply.provider_model, reply.tokens, truncated=reply.truncated
            )
        timed_out = error.timed_out
        attempts.append(
            Attempt(
                number=number,
                started_at=started,
                completed_at=now(),
                outcome="timeout" if error.timed_out else "error",
                http_status=error.failure.http_status,
                failure=error.failure,
            )
        )
        if not error.failure.transient or number == route.max_attempts:
            break
        wait = error.retry_after if error.retry_after is not None else backoff(route, number, rand)
        await sleep(min(wait, route.backoff_max_s))
    return ProviderResult("timeout" if timed_out else "failed", None, attempts)
