"""What every HTTP model provider shares: timeouts, retries with backoff and jitter, and the record of
each attempt. An adapter only says how to build its request and read its reply.

Transient (retried): connection errors, timeouts, 5xx, 429 (waiting as long as Retry-After says).
Not transient (one attempt): any other 4xx, and a reply that is not the provider's JSON.
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

from schemas.events import Attempt, Failure, TokenCounts, now
from services.runner.providers.base import ProviderResult
from services.runner.routing import Route

MAX_ERROR_TEXT = 2000


@dataclass(frozen=True)
class Reply:
    answer: str
    provider_model: str | None = None
    tokens: TokenCounts | None = None


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


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: either a number of seconds or an HTTP date."""
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
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def check_status(response: httpx.Response, body: str) -> None:
    """Raise AttemptFailed for a non-2xx reply, keeping the provider's error text."""
    status = response.status_code
    if status < 400:
        return
    text = body[:MAX_ERROR_TEXT] or response.reason_phrase
    if status == 429:
        raise AttemptFailed(
            Failure(code="rate_limited", stage="response", transient=True, http_status=status, message=text),
            retry_after=retry_after_seconds(response.headers.get("retry-after")),
        )
    transient = status >= 500 or status == 408
    code = "server_error" if status >= 500 else "client_error"
    raise AttemptFailed(Failure(code=code, stage="response", transient=transient, http_status=status, message=text))


def bad_response(message: str, http_status: int | None = 200) -> AttemptFailed:
    return AttemptFailed(
        Failure(code="bad_response", stage="parse", transient=False, http_status=http_status, message=message)
    )


def parse_json(text: str, http_status: int) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise bad_response(f"reply is not JSON ({exc}): {text[:200]!r}", http_status) from None


def _transport_failure(exc: httpx.HTTPError) -> AttemptFailed:
    message = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_TEXT]
    if isinstance(exc, httpx.ConnectTimeout):
        return AttemptFailed(Failure(code="connect_timeout", stage="connect", transient=True, message=message), True)
    if isinstance(exc, httpx.TimeoutException):
        return AttemptFailed(Failure(code="read_timeout", stage="first_byte", transient=True, message=message), True)
    if isinstance(exc, httpx.ConnectError):
        return AttemptFailed(Failure(code="connect_error", stage="connect", transient=True, message=message))
    return AttemptFailed(Failure(code="transport_error", stage="read", transient=True, message=message))


def backoff(route: Route, attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff with full jitter: spreads the retries of many cells so they do not stampede."""
    return rand() * min(route.backoff_max_s, route.backoff_base_s * 2 ** (attempt - 1))


async def with_retries(
    route: Route,
    attempt_once: Callable[[], Awaitable[Reply]],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
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
            error = AttemptFailed(
                Failure(
                    code="total_timeout",
                    stage="total",
                    transient=True,
                    message=f"no complete reply within {route.total_timeout_s} s",
                ),
                timed_out=True,
            )
        except httpx.HTTPError as exc:
            error = _transport_failure(exc)
        else:
            attempts.append(
                Attempt(number=number, started_at=started, completed_at=now(), outcome="ok", http_status=200)
            )
            return ProviderResult("completed", reply.answer, attempts, reply.provider_model, reply.tokens)
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
        wait = error.retry_after if error.retry_after is not None else backoff(route, number)
        await sleep(min(wait, route.backoff_max_s))
    return ProviderResult("timeout" if timed_out else "failed", None, attempts)
