"""Reading the projection: the one read model behind `beacon status`, `beacon executions`, the matrix."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any

import psycopg
from psycopg.rows import dict_row

from beacon.domain.cells import question_from_token
from beacon.domain.status import JobStatus, job_status
from beacon.infra.projection import EXECUTION_READ_COLUMNS, columns
from beacon.schemas.events import execution_key


@dataclass
class JobSummary:
    job_id: str
    expected: int
    recorded: int
    by_status: dict[str, int] = field(default_factory=dict)
    by_classification: dict[str, int] = field(default_factory=dict)
    submitted_at: datetime | None = None
    deadline: datetime | None = None
    spec: dict[str, Any] = field(default_factory=dict)  # the projected JobSubmitted
    # Per region of the spec: its one language, whether a runner has picked the job up, which models it has
    # no route for.
    regions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def catalogue(self) -> dict[str, Any] | None:
        return self.spec.get("catalogue")

    @property
    def languages(self) -> dict[str, str]:
        """Each region's one language, in the spec's order of regions."""
        return {r["id"]: r["language"] for r in self.spec.get("regions") or []}

    @property
    def status(self) -> JobStatus:
        return job_status(self.expected, self.by_classification)

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
            "catalogue": self.catalogue,
            "regions": self.regions,
        }


# Every row of executions (and of job_regions) is a cell of its job's spec: executions.job_id references
# jobs, and the recorder dead-letters a result that is not a cell of its job (out of spec, a key that
# disagrees with its payload, ...). So a job's counts are plain counts by job_id.
_JOB = "SELECT * FROM jobs WHERE job_id = %s"
_COUNTS = "SELECT status, classification, count(*) FROM executions WHERE job_id = %s GROUP BY 1, 2"


async def executions(conn: psycopg.AsyncConnection, job_id: str) -> list[dict[str, Any]]:
    """Every recorded row of a job, for `beacon executions`."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT region, model_id, question_id, language, status, classification, classifier_version, provider,"
            " provider_model, answer, started_at, completed_at, recorded_at"
            " FROM executions WHERE job_id = %s ORDER BY question_id NULLS FIRST, model_id, region",
            (job_id,),
        )
        return await cur.fetchall()


# --- async, for the read API ------------------------------------------------------------------------

ROW_COLUMNS = columns(EXECUTION_READ_COLUMNS)
# With the signed event, which the API turns into the row's verification state (never returned itself).
_SIGNED_ROW_COLUMNS = ROW_COLUMNS + ", event"


def _summary_from(job: dict[str, Any], counts: list[tuple[str, str, int]]) -> JobSummary:
    summary = JobSummary(
        job_id=job["job_id"],
        expected=job["expected_executions"],
        recorded=0,
        submitted_at=job["submitted_at"],
        deadline=job["deadline"],
        spec=job["spec"],
    )
    for status, label, n in counts:
        summary.recorded += n
        summary.by_status[status] = summary.by_status.get(status, 0) + n
        summary.by_classification[label] = summary.by_classification.get(label, 0) + n
    return summary


async def job_summary(conn: psycopg.AsyncConnection, job_id: str) -> JobSummary | None:
    """None until the job's JobSubmitted is projected (no row of it can be recorded before)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_JOB, (job_id,))
        job = await cur.fetchone()
        if job is None:
            return None
        await cur.execute("SELECT * FROM job_regions WHERE job_id = %s", (job_id,))
        picked = {r["region"]: r for r in await cur.fetchall()}
    counts = await (await conn.execute(_COUNTS, (job_id,))).fetchall()
    summary = _summary_from(job, counts)
    summary.regions = _regions(summary.spec, picked)
    return summary


def _regions(spec: dict[str, Any], picked: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each region of the job: the one language it asks in, and whether a runner has picked the job up
    (when, which provider per model, which models have no route of their own) or not yet — a region without
    a runner shows here long before the deadline."""
    out = []
    for region in spec.get("regions") or []:
        row = picked.get(region["id"])
        out.append(
            {
                "region": region["id"],
                "language": region["language"],
                "picked_up": row is not None,
                "picked_up_at": row["expanded_at"].isoformat() if row else None,
                "providers": row["providers"] if row else {},
                "unrouted": row["unrouted"] if row else [],
            }
        )
    return out


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
    # The page's counts in one query.
    counts: dict[str, list[tuple[str, str, int]]] = {j["job_id"]: [] for j in jobs}
    found = await conn.execute(
        "SELECT job_id, status, classification, count(*) FROM executions WHERE job_id = ANY(%s) GROUP BY 1, 2, 3",
        (list(counts),),
    )
    for job_id, status, label, n in await found.fetchall():
        counts[job_id].append((status, label, n))
    return [_summary_from(j, counts[j["job_id"]]) for j in jobs]


async def executions_page(
    conn: psycopg.AsyncConnection, job_id: str, filters: dict[str, str], limit: int, after_id: int | None
) -> list[dict[str, Any]]:
    """Keyset-paginated on the row id: rows recorded while a client pages never shift a page."""
    where, params = ["job_id = %s"], [job_id]
    for column, value in filters.items():  # column names come from the API's fixed list, never the client
        if column == "question_id" and question_from_token(value) is None:
            where.append("question_id IS NULL")
        else:
            where.append(f"{column} = %s")
            params.append(value)
    if after_id is not None:
        where.append("id > %s")
        params.append(after_id)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_SIGNED_ROW_COLUMNS} FROM executions WHERE {' AND '.join(where)} ORDER BY id LIMIT %s",
            (*params, limit),
        )
        return await cur.fetchall()


async def one_execution(
    conn: psycopg.AsyncConnection, job_id: str, region: str, model_id: str, question_id: str | None
) -> dict[str, Any] | None:
    """The cell's row (the unique index holds at most one), or None while it is not recorded."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_SIGNED_ROW_COLUMNS} FROM executions WHERE job_id = %s AND region = %s AND model_id = %s"
            " AND question_id IS NOT DISTINCT FROM %s",
            (job_id, region, model_id, question_id),
        )
        return await cur.fetchone()


async def cells(
    conn: psycopg.AsyncConnection, job_id: str, answers: bool = False, answer_chars: int | None = None
) -> list[dict[str, Any]]:
    """Every recorded cell of the job, in recording order (the same rows give the same bytes, whatever plan
    the database picks); the answers (the bulk of the bytes) only when asked for, cut to `answer_chars` in the
    database when given (so a 112k-character answer costs its first characters' transfer, not all of it)."""
    columns = "id, region, model_id, question_id, language, status, classification"
    columns += ", output->'judgement'->>'label' AS judge_label"
    if answers:
        columns += f", left(answer, {int(answer_chars)}) AS answer" if answer_chars is not None else ", answer"
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {columns} FROM executions WHERE job_id = %s", (job_id,))
        rows = await cur.fetchall()
    # Sorted here, not by ORDER BY: with the answers a job's rows may not fit the database's sort memory.
    rows.sort(key=itemgetter("id"))
    return rows


async def job_for_compare(
    conn: psycopg.AsyncConnection, job_id: str
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """One side of `beacon compare` / `GET /compare`: the projected job (its JobSubmitted, catalogue
    version, submission time) and every recorded row of it with its classification; None when the job's
    JobSubmitted is not projected."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT job_id, submitted_at, catalogue_version, spec FROM jobs WHERE job_id = %s", (job_id,))
        job = await cur.fetchone()
        if job is None:
            return None
        await cur.execute(
            "SELECT region, model_id, question_id, language, status, classification FROM executions"
            " WHERE job_id = %s ORDER BY id",
            (job_id,),
        )
        return job, await cur.fetchall()


async def signed(
    conn: psycopg.AsyncConnection, job_id: str
) -> tuple[dict[str, Any], list[tuple[str | None, str]]] | None:
    """A job's signed JobSubmitted and the signed event of every recorded result (None: recorded before events
    were signed), for `beacon export` and `beacon verify JOB`; None when the job is not projected."""
    job = await (await conn.execute("SELECT spec FROM jobs WHERE job_id = %s", (job_id,))).fetchone()
    if job is None:
        return None
    rows = await (
        await conn.execute(
            "SELECT event, region, model_id, question_id FROM executions WHERE job_id = %s ORDER BY id", (job_id,)
        )
    ).fetchall()
    return job[0], [(event, execution_key(job_id, region, model, question)) for event, region, model, question in rows]
