"""One cell: call the model, classify the answer, and describe it as an ExecutionCompleted."""

from __future__ import annotations

import hashlib
import json

from schemas.events import ExecutionCompleted, JobSubmitted, ProducerInfo, Receipt, now
from services.runner.classify import classify
from services.runner.expand import Cell
from services.runner.providers.base import ModelCall, Provider


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def model_call(job: JobSubmitted, cell: Cell) -> ModelCall:
    prompt = cell.question.prompt if cell.question else job.probe_prompt
    if prompt is None:
        raise ValueError(f"job {job.job_id} has neither questions nor a probe prompt")
    return ModelCall(
        model_id=cell.model.id,
        model_name=cell.model.name,
        system_prompt=cell.region.system_prompt,
        prompt=prompt,
        params=job.params,
        category=cell.question.category if cell.question else None,
    )


async def run_cell(job: JobSubmitted, cell: Cell, provider: Provider, producer: ProducerInfo) -> ExecutionCompleted:
    call = model_call(job, cell)
    started = now()  # from the start of the call, not from when the cell was queued
    result = await provider.call(call)
    completed = now()
    params_json = json.dumps(call.params.model_dump(mode="json"), sort_keys=True)
    return ExecutionCompleted(
        producer=producer,
        job_id=job.job_id,
        region=cell.region.id,
        model_id=cell.model.id,
        question_id=cell.question_id,
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
            params_sha256=sha256(params_json),
            answer_sha256=sha256(result.answer) if result.answer is not None else None,
        ),
    )
