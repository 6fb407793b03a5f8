"""Pure: events → the rows of the read model. Column order matches store.EXECUTION_COLUMNS / JOB_COLUMNS."""

from __future__ import annotations

import json
from typing import Any

from schemas.events import ExecutionCompleted, JobSubmitted


def execution_row(e: ExecutionCompleted) -> tuple[Any, ...]:
    output = {
        "classification": e.classification.model_dump(mode="json"),
        "attempts": [a.model_dump(mode="json") for a in e.attempts],
        "tokens": e.tokens.model_dump(mode="json") if e.tokens else None,
        "producer": e.producer.model_dump(mode="json"),
    }
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
        json.dumps(output),
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
