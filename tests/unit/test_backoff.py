"""Retries of HTTP model calls (services/runner/providers/http.py): backoff with full jitter, Retry-After,
and with_retries waiting between attempts.

Randomness, the clock and sleeping are all injected: nothing here waits for real. A "sleep" records the
seconds it was asked for and returns at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx
import pytest

from beacon.providers.base import ProviderResult
from beacon.providers.http import (
    AttemptFailed,
    Reply,
    backoff,
    bad_response,
    check_status,
    retry_after_seconds,
    with_retries,
)
from beacon.providers.routing import Route

ROUTE = Route(backoff_base_s=0.5, backoff_max_s=30.0, max_attempts=3)
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def clock() -> datetime:
    return NOW


def never_asked() -> datetime:
    raise AssertionError("a number of seconds needs no clock")


# --- backoff -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (6, 16.0), (7, 30.0), (8, 30.0), (20, 30.0)],
)
def test_backoff_full_jitter_bounds(attempt: int, ceiling: float) -> None:
    """rand() in [0, 1) scales [0, min(max, base·2^(attempt-1))]: 0 at the bottom, the ceiling at the top."""
    assert backoff(ROUTE, attempt, rand=lambda: 0.0) == 0.0
    assert backoff(ROUTE, attempt, rand=lambda: 1.0) == ceiling
    assert backoff(ROUTE, attempt, rand=lambda: 0.25) == pytest.approx(ceiling / 4)


def test_backoff_never_exceeds_backoff_max_s() -> None:
    route = Route(backoff_base_s=5.0, backoff_max_s=7.0)
    assert [backoff(route, n, rand=lambda: 1.0) for n in range(1, 5)] == [5.0, 7.0, 7.0, 7.0]


def test_backoff_zero_base_never_waits() -> None:
    assert backoff(Route(backoff_base_s=0.0), 5, rand=lambda: 1.0) == 0.0


def test_backoff_draws_one_random_number_per_wait() -> None:
    draws: list[float] = []

    def rand() -> float:
        draws.append(0.5)
        return 0.5

    assert backoff(ROUTE, 3, rand=rand) == 1.0 and draws == [0.5]


# --- Retry-After ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        ("0", 0.0),
        ("2.5", 2.5),
        (" 12 ", 12.0),
        ("-5", 0.0),  # negative: no waiting, never a negative sleep
        ("-inf", 0.0),
        ("nan", 0.0),
        ("86400000", 86_400_000.0),  # huge: returned as said; with_retries caps the wait (below)
        ("inf", float("inf")),
    ],
)
def test_retry_after_seconds_as_a_number(header: str, seconds: float) -> None:
    assert retry_after_seconds(header, clock=never_asked) == seconds


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("Sun, 01 Mar 2026 12:00:30 GMT", 30.0),
        ("Sun, 01 Mar 2026 13:00:00 +0100", 0.0),  # the same instant as NOW, another zone
        ("Sun, 01 Mar 2026 14:00:00 +0100", 3600.0),
        ("Sun, 01 Mar 2026 12:00:30 -0000", 30.0),  # "-0000": no zone given (naive); taken as UTC
        ("Sun, 01 Mar 2026 11:59:00 GMT", 0.0),  # already past: no waiting
        ("Sat, 01 Mar 2036 12:00:00 GMT", 315_619_200.0),  # ten years on: returned, capped by with_retries
    ],
)
def test_retry_after_seconds_as_an_http_date_against_the_clock(header: str, seconds: float) -> None:
    assert retry_after_seconds(header, clock=clock) == seconds


@pytest.mark.parametrize("header", [None, "", "soon", "1 minute", "Sun, 99 Foo 2026", "12:00:30", "0x10"])
def test_retry_after_seconds_garbage_is_none(header: str | None) -> None:
    assert retry_after_seconds(header, clock=clock) is None


def test_retry_after_uses_the_real_clock_by_default() -> None:
    assert retry_after_seconds("Thu, 01 Jan 1970 00:00:00 GMT") == 0.0
    assert retry_after_seconds("Fri, 01 Jan 2100 00:00:00 GMT") > 365 * 24 * 3600


def test_a_429_carries_its_retry_after_and_is_transient() -> None:
    response = httpx.Response(429, headers={"Retry-After": "7"}, text="slow down")
    with pytest.raises(AttemptFailed) as raised:
        check_status(response, response.text)
    failed = raised.value
    assert failed.retry_after == 7.0
    assert failed.failure.code == "rate_limited" and failed.failure.transient
    assert failed.failure.http_status == 429 and failed.failure.message == "slow down"


# --- with_retries ------------------------------------------------------------------------------------


class Slept:
    """An injected sleep: records what it was asked for and returns at once."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)


def replies(*script: httpx.Response | Exception) -> tuple[Callable[[], Awaitable[Reply]], list[int]]:
    """An attempt_once that replays `script`, one item per attempt, as an adapter would: check the status,
    then read the answer; returns it and the list of attempt numbers made."""
    calls: list[int] = []

    async def once() -> Reply:
        calls.append(len(calls) + 1)
        item = script[len(calls) - 1]
        if isinstance(item, Exception):
            raise item
        check_status(item, item.text)
        return Reply(answer=item.text, http_status=item.status_code)

    return once, calls


def run(route: Route, once: Callable[[], Awaitable[Reply]], slept: Slept, rand: float = 1.0) -> ProviderResult:
    began = time.monotonic()
    result = asyncio.run(with_retries(route, once, sleep=slept, rand=lambda: rand))
    assert time.monotonic() - began < 5, "with_retries slept for real"
    return result


def status(code: int, text: str = "", **headers: str) -> httpx.Response:
    return httpx.Response(code, headers=headers, text=text)


def test_429_then_200_waits_exactly_what_retry_after_asked() -> None:
    once, calls = replies(status(429, "slow down", **{"Retry-After": "7"}), status(200, "4"))
    slept = Slept()
    result = run(ROUTE, once, slept)
    assert (result.status, result.answer) == ("completed", "4")
    assert slept.asked == [7.0] and calls == [1, 2]
    first, second = result.attempts
    assert (first.number, first.outcome, first.http_status) == (1, "error", 429)
    assert first.failure is not None and first.failure.code == "rate_limited"
    assert (second.number, second.outcome, second.http_status) == (2, "ok", 200)


def test_429_with_an_http_date_is_not_the_random_backoff() -> None:
    """Retry-After wins over the jittered backoff (which, with rand 1.0, would be 0.5 s here)."""
    once, _ = replies(status(429, **{"Retry-After": "Thu, 01 Jan 1970 00:00:00 GMT"}), status(200, "ok"))
    slept = Slept()
    assert run(ROUTE, once, slept).status == "completed"
    assert slept.asked == [0.0]


@pytest.mark.parametrize("header", ["86400", "inf", "Fri, 01 Jan 2100 00:00:00 GMT"])
def test_a_huge_retry_after_is_capped_at_backoff_max_s(header: str) -> None:
    once, _ = replies(status(429, **{"Retry-After": header}), status(200, "ok"))
    slept = Slept()
    assert run(ROUTE, once, slept).status == "completed"
    assert slept.asked == [30.0]


@pytest.mark.parametrize(
    ("headers", "rand", "wait"), [({}, 1.0, 0.5), ({}, 0.0, 0.0), ({"Retry-After": "soon"}, 0.5, 0.25)]
)
def test_429_without_a_usable_retry_after_backs_off_with_the_injected_rand(
    headers: dict[str, str], rand: float, wait: float
) -> None:
    once, _ = replies(status(429, **headers), status(200, "ok"))
    slept = Slept()
    assert run(ROUTE, once, slept, rand=rand).status == "completed"
    assert slept.asked == [wait]


def test_server_errors_back_off_exponentially_and_never_sleep_after_the_last_attempt() -> None:
    once, calls = replies(status(503), status(500), status(502))
    slept = Slept()
    result = run(ROUTE, once, slept)
    assert result.status == "failed" and result.answer is None
    assert calls == [1, 2, 3] and slept.asked == [0.5, 1.0]
    assert [a.http_status for a in result.attempts] == [503, 500, 502]
    assert all(a.failure is not None and a.failure.code == "server_error" for a in result.attempts)


def test_a_client_error_is_tried_once_with_no_wait() -> None:
    once, calls = replies(status(400, "no such model"), status(200, "never reached"))
    slept = Slept()
    result = run(ROUTE, once, slept)
    assert result.status == "failed" and calls == [1] and slept.asked == []
    assert result.attempts[0].failure is not None and result.attempts[0].failure.message == "no such model"


def test_a_bad_reply_is_not_retried() -> None:
    once, calls = replies(bad_response("not JSON"), status(200, "never reached"))
    slept = Slept()
    result = run(ROUTE, once, slept)
    assert result.status == "failed" and calls == [1] and slept.asked == []
    assert result.attempts[0].failure is not None and result.attempts[0].failure.code == "bad_response"


def test_timeouts_are_retried_and_end_as_timeout() -> None:
    once, calls = replies(httpx.ReadTimeout("slow"), httpx.ConnectTimeout("away"), httpx.ReadTimeout("slow"))
    slept = Slept()
    result = run(ROUTE, once, slept, rand=0.5)
    assert result.status == "timeout" and calls == [1, 2, 3]
    assert slept.asked == [0.25, 0.5]
    assert [a.outcome for a in result.attempts] == ["timeout", "timeout", "timeout"]
    assert [a.failure.code for a in result.attempts if a.failure] == ["read_timeout", "connect_timeout", "read_timeout"]


def test_a_connection_error_then_success_completes_after_one_backoff() -> None:
    once, _ = replies(httpx.ConnectError("refused"), status(200, "Paris"))
    slept = Slept()
    result = run(Route(backoff_base_s=2.0, backoff_max_s=30.0, max_attempts=2), once, slept, rand=0.75)
    assert (result.status, result.answer) == ("completed", "Paris")
    assert slept.asked == [1.5]


def test_one_attempt_only_never_sleeps() -> None:
    once, calls = replies(status(429, **{"Retry-After": "7"}))
    slept = Slept()
    result = run(Route(max_attempts=1), once, slept)
    assert result.status == "failed" and calls == [1] and slept.asked == []
