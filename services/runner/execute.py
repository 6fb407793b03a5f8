"""One cell: call the model (never past the job's deadline), classify the answer, describe it as an
ExecutionCompleted."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import datetime

from schemas.events import (
    Attempt,
    CellScheduled,
    ExecutionCompleted,
    Failure,
    GenerationParams,
    ProducerInfo,
    Receipt,
    now,
)
from services.runner.classify import classify
from services.runner.providers.base import ModelCall, Provider, ProviderResult


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def params_sha256(params: GenerationParams) -> str:
    return sha256(json.dumps(params.model_dump(mode="json"), sort_keys=True))


def model_call(cell: CellScheduled) -> ModelCall:
    prompt = cell.question.prompt if cell.question else cell.probe_prompt
    if prompt is None:
        raise ValueError(f"cell {cell.key} has neither a question nor a probe prompt")
    return ModelCall(
        model_id=cell.model.id,
        model_name=cell.model.name,
        system_prompt=cell.region.system_prompt,
        prompt=prompt,
        params=cell.params,
        category=cell.question.category if cell.question else None,
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


async def run_cell(cell: CellScheduled, provider: Provider, producer: ProducerInfo) -> ExecutionCompleted:
    call = model_call(cell)
    started = now()  # from the start of the call, not from when the cell was queued
    result = await call_until_deadline(provider, call, cell)
    completed = now()
    return ExecutionCompleted(
        producer=producer,
        job_id=cell.job_id,
        region=cell.region.id,
        model_id=cell.model.id,
        question_id=cell.question.id if cell.question else None,
        provider=provider.name,
        provider_model=result.provider_model,
        status=result.status,
        answer=result.answer,
        classification=classify(result.status, result.answer),
        attempts=result.attempts,
        tokens=result.tokens,
        started_at=started,
        completed_at=completed,
        receipt=Receipt(
            provider=provider.name,
            endpoint_region=cell.region.id,
            endpoint=provider.endpoint,
            prompt_sha256=sha256(call.prompt),
            system_prompt_sha256=sha256(call.system_prompt),
            params_sha256=params_sha256(call.params),
            answer_sha256=sha256(result.answer) if result.answer is not None else None,
        ),
    )
