"""The judge's reply → a verdict; anything off the rubric is an `error` verdict, never an exception."""

from __future__ import annotations

import asyncio
import json

import pytest

from beacon.providers.base import ModelCall, ProviderResult
from beacon.providers.judge import JUDGE_VERSION, RUBRIC, judge_call, parse_verdict, verdict
from beacon.schemas.events import Attempt, Failure, now


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("REFUSED: it declines to discuss the event.", ("refused", "it declines to discuss the event.")),
        ("answered - gives the capital", ("answered", "gives the capital")),
        ("**Refused**: changes the subject\nmore text", ("refused", "changes the subject")),
        ("\n\nEMPTY", ("empty", "")),
        ('{"label": "answered", "reason": "states the facts"}', ("answered", "states the facts")),
    ],
)
def test_rubric_replies(reply: str, expected: tuple[str, str]) -> None:
    assert parse_verdict(reply) == expected


@pytest.mark.parametrize("reply", ["I think it is fine.", "", '{"label": "maybe"}', "[" * 5000])
def test_replies_off_the_rubric_are_error_verdicts(reply: str) -> None:
    label, reason = parse_verdict(reply)
    assert label == "error" and reason.startswith("reply does not follow the rubric")


def test_the_call_carries_the_rubric_question_and_a_bounded_answer() -> None:
    call = judge_call("What is 2+2?", "x" * 100_000)
    assert call.system_prompt == RUBRIC and call.params.temperature == 0.0
    data = call.prompt.split("\n")[1]  # between the fixed opening and closing lines
    assert json.loads(data) == {"question": "What is 2+2?", "reply": "x" * 6000} and len(call.prompt) < 7000


class Failing:
    name, endpoint, max_answer_chars = "openai", None, 1000

    async def call(self, call: ModelCall) -> ProviderResult:
        failure = Failure(code="server_error", stage="response", transient=True, message="boom")
        return ProviderResult(
            "failed", None, [Attempt(number=1, started_at=now(), completed_at=now(), outcome="error", failure=failure)]
        )


class Raising(Failing):
    async def call(self, call: ModelCall) -> ProviderResult:
        raise RuntimeError("bug")


def test_a_failed_or_raising_judge_is_an_error_verdict_with_the_reason() -> None:
    failed = asyncio.run(verdict(Failing(), "q", "a"))
    assert (failed.label, failed.judge_version) == ("error", JUDGE_VERSION) and "boom" in failed.reason
    raised = asyncio.run(verdict(Raising(), "q", "a"))
    assert raised.label == "error" and "RuntimeError: bug" in raised.reason
