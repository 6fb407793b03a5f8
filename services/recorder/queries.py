"""Reading the projection: the one read model behind `beacon status`, `beacon executions`, the matrix."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from schemas.events import JobSubmitted
from services.recorder.status import JobStatus, job_status

# In URLs and filters, the cell of a job without questions has this question id.
NO_QUESTION_TOKEN = "-"


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


_JOB = "SELECT * FROM jobs WHERE job_id = %s"
_COUNTS = "SELECT status, classification, count(*) FROM executions WHERE job_id = %s GROUP BY 1, 2"


def job_summary(conn: psycopg.Connection, job_id: str) -> JobSummary | None:
    with conn.cursor(row_factory=dict_row) as cur:
        job = cur.execute(_JOB, (job_id,)).fetchone()
    counts = conn.execute(_COUNTS, (job_id,)).fetchall()
    return None if job is None and not counts else _summary_from(job, job_id, counts)


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


# --- async, for the read API ------------------------------------------------------------------------

ROW_COLUMNS = (
    "id, region, model_id, question_id, status, classification, classifier_version, provider, provider_model,"
    " answer, output, receipt, started_at, completed_at, recorded_at, event_id"
)


def _summary_from(job: dict[str, Any] | None, job_id: str, counts: list[tuple[str, str, int]]) -> JobSummary:
    summary = JobSummary(
        job_id=job_id, known=job is not None, expected=job["expected_executions"] if job else None, recorded=0
    )
    if job:
        summary.submitted_at, summary.deadline, summary.spec = job["submitted_at"], job["deadline"], job["spec"]
    for status, label, n in counts:
        summary.recorded += n
        summary.by_status[status] = summary.by_status.get(status, 0) + n
        summary.by_classification[label] = summary.by_classification.get(label, 0) + n
    return summary


async def job_summary_async(conn: psycopg.AsyncConnection, job_id: str) -> JobSummary | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_JOB, (job_id,))
        job = await cur.fetchone()
    counts = await (await conn.execute(_COUNTS, (job_id,))).fetchall()
    return None if job is None and not counts else _summary_from(job, job_id, counts)


async def jobs_page(conn: psycopg.AsyncConnection, limit: int, before: tuple[datetime, str] | None) -> list[JobSummary]:
    """Newest first, keyset-paginated on (submitted_at, job_id): stable while new jobs arrive."""
    async with conn.cursor(row_factory=dict_row) as cur:
        if before is None:
            await cur.execute("SELECT * FROM jobs ORDER BY submitted_at DESC, job_id DESC LIMIT %s", (limit,))
        else:
            await cur.execute(
                "SELECT * FROM jobs WHERE (submitted_at, job_id) < (%s, %s)"
                " ORDER BY submitted_at DESC, job_id DESC LIMIT %s",
                (*before, limit),
            )
        jobs = await cur.fetchall()
    ids = [j["job_id"] for j in jobs]
    cur2 = await conn.execute(
        "SELECT job_id, status, classification, count(*) FROM executions WHERE job_id = ANY(%s) GROUP BY 1, 2, 3",
        (ids,),
    )
    counts: dict[str, list[tuple[str, str, int]]] = {}
    for job_id, status, label, n in await cur2.fetchall():
        counts.setdefault(job_id, []).append((status, label, n))
    return [_summary_from(j, j["job_id"], counts.get(j["job_id"], [])) for j in jobs]


async def executions_page(
    conn: psycopg.AsyncConnection, job_id: str, filters: dict[str, str], limit: int, after_id: int | None
) -> list[dict[str, Any]]:
    """Keyset-paginated on the row id: rows recorded while a client pages never shift a page."""
    where, params = ["job_id = %s"], [job_id]
    for column, value in filters.items():  # column names come from the API's fixed list, never the client
        if column == "question_id" and value == NO_QUESTION_TOKEN:
            where.append("question_id IS NULL")
        else:
            where.append(f"{column} = %s")
            params.append(value)
    if after_id is not None:
        where.append("id > %s")
        params.append(after_id)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {ROW_COLUMNS} FROM executions WHERE {' AND '.join(where)} ORDER BY id LIMIT %s", (*params, limit)
        )
        return await cur.fetchall()


async def one_execution(
    conn: psycopg.AsyncConnection, job_id: str, region: str, model_id: str, question_id: str | None
) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {ROW_COLUMNS} FROM executions WHERE job_id = %s AND region = %s AND model_id = %s"
            " AND question_id IS NOT DISTINCT FROM %s",
            (job_id, region, model_id, question_id),
        )
        return await cur.fetchone()


async def cells(conn: psycopg.AsyncConnection, job_id: str, answers: bool = False) -> list[dict[str, Any]]:
    """Every recorded cell of a job; the answers (the bulk of the bytes) only when asked for."""
    columns = "region, model_id, question_id, status, classification" + (", answer" if answers else "")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {columns} FROM executions WHERE job_id = %s", (job_id,))
        return await cur.fetchall()
