"""Every job ends: cells still unrecorded at the job's deadline are recorded once, as `timeout`.

The recorder owns this clock because it is the one service that knows which cells are recorded; a
runner cannot know about cells of a region whose runner never came up. It does not write the rows
itself: it emits ExecutionCompleted(status=timeout) to the executions topic like any other result, so
the log stays the whole truth and a replay rebuilds the same table. If a late real result and the
timeout race, the first event for the cell on its partition wins, in the live table and in any replay.
Runners stop calling a model once the deadline has passed, so late results are rare.
"""

from __future__ import annotations

from datetime import datetime

from schemas.catalogue import PROBE_PROMPT
from schemas.events import (
    Attempt,
    ExecutionCompleted,
    Failure,
    JobSubmitted,
    ProducerInfo,
    Receipt,
    execution_key,
)
from services.runner.classify import classify
from services.runner.execute import params_sha256, sha256

CellKey = tuple[str, str, str | None]  # (region, model_id, question_id)


def all_cells(job: JobSubmitted) -> list[CellKey]:
    questions: list[str | None] = [q.id for q in job.questions] or [None]
    return [(r.id, m.id, q) for r in job.regions for m in job.models for q in questions]


def missing_cells(job: JobSubmitted, recorded: set[CellKey]) -> list[CellKey]:
    return [cell for cell in all_cells(job) if cell not in recorded]


def timeout_event(job: JobSubmitted, cell: CellKey, at: datetime, producer: ProducerInfo) -> ExecutionCompleted:
    region_id, model_id, question_id = cell
    region = next(r for r in job.regions if r.id == region_id)
    prompt = next((q.prompt for q in job.questions if q.id == question_id), job.probe_prompt or PROBE_PROMPT)
    failure = Failure(
        code="deadline",
        stage="job",
        transient=False,
        message=f"no result recorded by the job's deadline {job.deadline.isoformat()}",
    )
    return ExecutionCompleted(
        producer=producer,
        occurred_at=at,
        job_id=job.job_id,
        region=region_id,
        model_id=model_id,
        question_id=question_id,
        provider="deadline",
        status="timeout",
        answer=None,
        classification=classify("timeout", None),
        attempts=[Attempt(number=1, started_at=job.deadline, completed_at=at, outcome="timeout", failure=failure)],
        started_at=job.deadline,
        completed_at=at,
        receipt=Receipt(
            provider="deadline",
            endpoint_region=region_id,
            prompt_sha256=sha256(prompt),
            system_prompt_sha256=sha256(region.system_prompt),
            params_sha256=params_sha256(job.params),
            answer_sha256=None,
        ),
    )


def key_of(job_id: str, cell: CellKey) -> str:
    return execution_key(job_id, *cell)
