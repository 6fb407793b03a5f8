"""What every HTTP model provider shares: timeouts, retries with backoff and jitter, and the record of
each attempt. An adapter only says how to build its request and read its reply.

Transient (retried): connection errors, timeouts, 5xx, 429 (waiting as long as Retry-After says).
Not transient (one attempt): any other 4xx, and a reply that is not the provider's JSON.

Replies are hostile input. Bodies are read up to MAX_REPLY_BYTES; anything an adapter cannot turn into
an answer, whatever exception it raises, becomes one attempt failed with `bad_response`; every failure
message is bounded and has its secrets masked (answers.clean_message). Nothing a provider sends can
raise out of `with_retries`.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from beacon.providers.answers import clean_message
from beacon.providers.base import ProviderResult
from beacon.providers.routing import Route
from beacon.schemas.events import Attempt, Failure, TokenCounts, now

MAX_ERROR_TEXT = 500  # of a provider's error body, kept in the failure message
# Largest reply body read at all; a longer one is refused, not parsed. Answers are cut much shorter
# (Route.max_answer_chars): this only keeps a runaway server from filling the runner's memory.
MAX_REPLY_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Reply:
    answer: str
    provider_model: str | None = None
    tokens: TokenCounts | None = None
    truncated: bool = False  # reading stopped at the route's max_answer_chars


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


def client(route: Route) -> httpx.AsyncClient:
    timeout = httpx.Timeout(
        connect=route.connect_timeout_s, read=route.first_byte_timeout_s, write=route.connect_timeout_s, pool=None
    )
    limits = httpx.Limits(max_connections=route.concurrency, max_keepalive_connections=route.concurrency)
    return httpx.AsyncClient(timeout=timeout, limits=limits)


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


def check_status(response: httpx.Response, body: str) -> None:
    """Raise AttemptFailed for a non-2xx reply, keeping the provider's error text."""
    status = response.status_code
    if status < 400:
        return
    text = body[:MAX_ERROR_TEXT] or response.reason_phrase
    if status == 429:
        raise AttemptFailed(
            failure("rate_limited", "response", True, text, status),
            retry_after=retry_after_seconds(response.headers.get("retry-after")),
        )
    transient = status >= 500 or status == 408
    code = "server_error" if status >= 500 else "client_error"
    raise AttemptFailed(failure(code, "response", transient, text, status))


def bad_response(message: str, http_status: int | None = 200) -> AttemptFailed:
    return AttemptFailed(failure("bad_response", "parse", False, message, http_status))


async def read_body(response: httpx.Response) -> str:
    """The whole reply body as text, refusing one larger than MAX_REPLY_BYTES while it is read."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            raise bad_response(f"reply larger than {MAX_REPLY_BYTES} bytes", response.status_code)
        chunks.append(chunk)
    return b"".join(chunks).decode(response.encoding or "utf-8", errors="replace")


def parse_json(text: str, http_status: int) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # bad JSON, a 5,000-digit number, 20,000 levels deep
        raise bad_response(
            f"reply is not JSON the runner can read ({type(exc).__name__}: {exc}): {text[:200]!r}", http_status
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
                Attempt(number=number, started_at=started, completed_at=now(), outcome="ok", http_status=200)
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
