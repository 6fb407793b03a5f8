"""One cell: call the model (never past the job's deadline), clean and classify the answer, describe it
as an ExecutionCompleted that fits in one Kafka message.

Whatever the provider returned, the result is an event: an answer is cut and cleaned
(beacon.providers.answers), an event too large for the broker has its answer shortened until it fits, and an
exception anywhere in building it becomes a `failed` cell (`internal_error`), never an exception out of the
worker — a worker that dies re-runs, and re-bills, its whole window on restart.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from beacon.domain import results
from beacon.infra.kafka import MAX_EVENT_BYTES
from beacon.providers.answers import clean_answer, clean_message
from beacon.providers.base import ModelCall, Provider, ProviderResult
from beacon.schemas.events import (
    AnswerEdits,
    Attempt,
    CellScheduled,
    ExecutionCompleted,
    Failure,
    ProducerInfo,
    encode,
    now,
)


def model_call(cell: CellScheduled) -> ModelCall:
    asked = results.Asked.of_cell(cell)
    return ModelCall(
        model_id=cell.model.id,
        model_name=cell.model.name,
        system_prompt=asked.system_prompt,
        prompt=asked.prompt,
        params=cell.params,
        category=cell.question.category if cell.question else None,
        region_display=cell.region.display,
    )


def _deadline_timeout(started: datetime, message: str) -> ProviderResult:
    failure = Failure(code="deadline", stage="total", transient=False, message=message)
    attempt = Attempt(number=1, started_at=started, completed_at=now(), outcome="timeout", failure=failure)
    return ProviderResult("timeout", None, [attempt])


async def call_until_deadline(provider: Provider, call: ModelCall, cell: CellScheduled) -> ProviderResult:
    """The provider's own timeouts bound each attempt; the job's deadline bounds them all."""
    started = now()
    remaining = (cell.deadline - started).total_seconds()
    if remaining <= 0:
        return _deadline_timeout(started, "the job's deadline had passed before the call")
    try:
        return await asyncio.wait_for(provider.call(call), remaining)
    except TimeoutError:
        return _deadline_timeout(started, f"the job's deadline passed {remaining:.1f} s into the call")


def _event(
    cell: CellScheduled,
    provider: Provider,
    producer: ProducerInfo,
    outcome: ProviderResult,
    answer: str | None,
    edits: AnswerEdits | None,
    started: datetime,
    completed: datetime,
) -> ExecutionCompleted:
    return results.result(
        results.Asked.of_cell(cell),
        producer=producer,
        provider=provider.name,
        endpoint=provider.endpoint,
        provider_model=outcome.provider_model,
        status=outcome.status,
        answer=answer,
        edits=edits,
        attempts=outcome.attempts,
        tokens=outcome.tokens,
        started_at=started,
        completed_at=completed,
    )


JUDGEMENT_ROOM = 4096  # bytes kept free for a judge's verdict, added after the event is described


def describe(
    cell: CellScheduled,
    provider: Provider,
    producer: ProducerInfo,
    result: ProviderResult,
    started: datetime,
    completed: datetime,
) -> ExecutionCompleted:
    """The event for a provider's result: the answer cleaned and cut, and the whole event within
    MAX_EVENT_BYTES (an answer of control characters escapes to six bytes each in JSON)."""
    if result.answer is None:
        return _event(cell, provider, producer, result, None, None, started, completed)
    raw = result.answer
    limit = provider.max_answer_chars
    while True:
        answer, edits = clean_answer(raw, limit, result.truncated)
        event = _event(cell, provider, producer, result, answer, edits, started, completed)
        size = len(encode(event))
        if size <= MAX_EVENT_BYTES - JUDGEMENT_ROOM or limit <= 1:
            return event
        limit = min(len(answer), limit) * MAX_EVENT_BYTES // size * 9 // 10  # shrink, with room to spare


def internal_failure(
    cell: CellScheduled, provider: Provider, producer: ProducerInfo, exc: Exception, started: datetime
) -> ExecutionCompleted:
    """A result could not be described (a bug, or a reply nothing anticipated): a failed cell that says so."""
    failure = Failure(
        code="internal_error",
        stage="record",
        transient=False,
        message=clean_message(f"{type(exc).__name__}: {exc}"),
    )
    attempt = Attempt(number=1, started_at=started, completed_at=now(), outcome="error", failure=failure)
    result = ProviderResult("failed", None, [attempt])
    return _event(cell, provider, producer, result, None, None, started, now())


async def run_cell(cell: CellScheduled, provider: Provider, producer: ProducerInfo) -> ExecutionCompleted:
    call = model_call(cell)
    started = now()  # from the start of the call, not from when the cell was queued
    try:
        result = await call_until_deadline(provider, call, cell)
        return describe(cell, provider, producer, result, started, now())
    except Exception as exc:
        return internal_failure(cell, provider, producer, exc, started)
