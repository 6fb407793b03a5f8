"""Pure: events → the rows of the read model. Column order matches store.EXECUTION_COLUMNS / JOB_COLUMNS."""

from __future__ import annotations

from typing import Any

from schemas.events import ExecutionCompleted, JobSubmitted

# What the `output` column keeps of the event besides the columns of their own.
_OUTPUT = {"classification", "attempts", "tokens", "producer"}


def execution_row(e: ExecutionCompleted) -> tuple[Any, ...]:
    # model_dump_json serialises in pydantic's compiled core: about 3× faster than dumping to dicts and
    # json.dumps (measured in bench/), and the recorder's throughput is bounded by this Python work.
    return (
        e.job_id,
        e.region,
        e.model_id,
        e.question_id,
        e.provider,
        e.provider_model,
        e.status,
        e.classification.label,
        e.classification.classifier_version,
        e.answer,
        e.model_dump_json(include=_OUTPUT),
        e.receipt.model_dump_json(),
        e.started_at,
        e.completed_at,
        e.event_id,
    )


def job_row(e: JobSubmitted) -> tuple[Any, ...]:
    return (
        e.job_id,
        e.spec_sha256,
        e.expected_executions,
        e.submitted_at,
        e.deadline,
        e.model_dump_json(),
        e.event_id,
    )
