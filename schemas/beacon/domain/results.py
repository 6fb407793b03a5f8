"""The one way to build an ExecutionCompleted: a runner's result, the deadline's `timeout` and the
benchmark's workload all come through `result()`, so the classification and the receipt are computed
the same way everywhere.

The receipt proves what was asked: SHA-256 of the prompt, the system prompt, the generation parameters
(sorted JSON) and the answer.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from beacon.domain.cells import CellKey
from beacon.domain.classify import classify
from beacon.schemas.events import (
    AnswerEdits,
    Attempt,
    CellScheduled,
    ExecutionCompleted,
    ExecutionStatus,
    Failure,
    GenerationParams,
    JobSubmitted,
    ProducerInfo,
    Receipt,
    TokenCounts,
)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def params_sha256(params: GenerationParams) -> str:
    return sha256(json.dumps(params.model_dump(mode="json"), sort_keys=True))


@dataclass(frozen=True)
class Asked:
    """One cell and exactly what it asks: the parts of a result that do not depend on the answer."""

    job_id: str
    region: str
    model_id: str
    question_id: str | None
    language: str
    prompt: str
    system_prompt: str
    params: GenerationParams

    @classmethod
    def of_cell(cls, cell: CellScheduled) -> Asked:
        return cls(
            cell.job_id,
            cell.region.id,
            cell.model.id,
            cell.question.id if cell.question else None,
            cell.region.language,
            cell.prompt,
            cell.region.system_prompt,
            cell.params,
        )

    @classmethod
    def of_job(cls, job: JobSubmitted, cell: CellKey) -> Asked:
        """What a cell of the job asks, from the event alone, in its region's language."""
        region_id, model_id, question_id = cell
        region = next(r for r in job.regions if r.id == region_id)
        question = next((q for q in job.questions if q.id == question_id), None)
        texts = question.prompts if question is not None else job.probe_prompts
        prompt = texts[region.language]
        return cls(
            job.job_id, region_id, model_id, question_id, region.language, prompt, region.system_prompt, job.params
        )


def result(
    asked: Asked,
    *,
    producer: ProducerInfo,
    provider: str,
    status: ExecutionStatus,
    answer: str | None,
    attempts: list[Attempt],
    started_at: datetime,
    completed_at: datetime,
    endpoint: str | None = None,
    provider_model: str | None = None,
    tokens: TokenCounts | None = None,
    edits: AnswerEdits | None = None,
    occurred_at: datetime | None = None,
) -> ExecutionCompleted:
    extra = {"occurred_at": occurred_at} if occurred_at is not None else {}
    return ExecutionCompleted(
        producer=producer,
        job_id=asked.job_id,
        region=asked.region,
        model_id=asked.model_id,
        question_id=asked.question_id,
        language=asked.language,
        provider=provider,
        provider_model=provider_model,
        status=status,
        answer=answer,
        answer_edits=edits,
        classification=classify(status, answer),
        attempts=attempts,
        tokens=tokens,
        started_at=started_at,
        completed_at=completed_at,
        receipt=Receipt(
            provider=provider,
            endpoint_region=asked.region,
            endpoint=endpoint,
            prompt_sha256=sha256(asked.prompt),
            system_prompt_sha256=sha256(asked.system_prompt),
            params_sha256=params_sha256(asked.params),
            answer_sha256=sha256(answer) if answer is not None else None,
        ),
        **extra,
    )


def timeout(job: JobSubmitted, cell: CellKey, at: datetime, producer: ProducerInfo) -> ExecutionCompleted:
    """A cell unrecorded at its job's deadline, recorded once as `timeout` (the recorder's clock)."""
    failure = Failure(
        code="deadline",
        stage="job",
        transient=False,
        message=f"no result recorded by the job's deadline {job.deadline.isoformat()}",
    )
    attempt = Attempt(number=1, started_at=job.deadline, completed_at=at, outcome="timeout", failure=failure)
    return result(
        Asked.of_job(job, cell),
        producer=producer,
        provider="deadline",
        status="timeout",
        answer=None,
        attempts=[attempt],
        started_at=job.deadline,
        completed_at=at,
        occurred_at=at,
    )
