"""Reading the projection: the one read model behind `beacon status`, `beacon executions`, the matrix."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from schemas.events import JobSubmitted
from services.recorder.status import JobStatus, job_status


@dataclass
class JobSummary:
    job_id: str
    known: bool  # False: executions exist but JobSubmitted is not projected (yet)
    expected: int | None
    recorded: int
    by_status: dict[str, int] = field(default_factory=dict)
    by_classification: dict[str, int] = field(default_factory=dict)
    submitted_at: datetime | None = None
    deadline: datetime | None = None
    spec: dict[str, Any] | None = None

    @property
    def status(self) -> JobStatus | None:
        return job_status(self.expected, self.by_classification) if self.expected is not None else None

    def as_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "status": self.status,
            "expected": self.expected,
            "recorded": self.recorded,
            "by_status": self.by_status,
            "by_classification": self.by_classification,
            "submitted_at": self.submitted_at.isoformat() if self.submitted_at else None,
            "deadline": self.deadline.isoformat() if self.deadline else None,
        }


def job_summary(conn: psycopg.Connection, job_id: str) -> JobSummary | None:
    job = conn.execute(
        "SELECT expected_executions, submitted_at, deadline, spec FROM jobs WHERE job_id = %s", (job_id,)
    ).fetchone()
    rows = conn.execute(
        "SELECT status, classification, count(*) FROM executions WHERE job_id = %s GROUP BY 1, 2", (job_id,)
    ).fetchall()
    if job is None and not rows:
        return None
    summary = JobSummary(job_id=job_id, known=job is not None, expected=job[0] if job else None, recorded=0)
    if job:
        summary.submitted_at, summary.deadline, summary.spec = job[1], job[2], job[3]
    for status, label, n in rows:
        summary.recorded += n
        summary.by_status[status] = summary.by_status.get(status, 0) + n
        summary.by_classification[label] = summary.by_classification.get(label, 0) + n
    return summary


def executions(conn: psycopg.Connection, job_id: str) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT region, model_id, question_id, status, classification, classifier_version, provider,"
            " provider_model, answer, started_at, completed_at, recorded_at"
            " FROM executions WHERE job_id = %s ORDER BY question_id NULLS FIRST, model_id, region",
            (job_id,),
        ).fetchall()


# --- async, for the recorder's deadline sweep -----------------------------------------------------


async def overdue_jobs(conn: psycopg.AsyncConnection) -> list[JobSubmitted]:
    """Jobs past their deadline with cells still unrecorded."""
    cur = await conn.execute(
        "SELECT j.spec FROM jobs j WHERE j.deadline < now()"
        " AND j.expected_executions > (SELECT count(*) FROM executions e WHERE e.job_id = j.job_id)"
    )
    return [JobSubmitted.model_validate(spec) for (spec,) in await cur.fetchall()]


async def recorded_cells(conn: psycopg.AsyncConnection, job_id: str) -> set[tuple[str, str, str | None]]:
    cur = await conn.execute("SELECT region, model_id, question_id FROM executions WHERE job_id = %s", (job_id,))
    return {tuple(row) for row in await cur.fetchall()}  # type: ignore[misc]
