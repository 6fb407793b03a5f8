"""Reading the projection: the one read model behind `beacon status`, `beacon executions`, the matrix."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from beacon.domain.cells import question_from_token
from beacon.domain.status import JobStatus, job_status
from beacon.infra.projection import EXECUTION_READ_COLUMNS, columns


@dataclass
class JobSummary:
    job_id: str
    expected: int | None
    recorded: int  # results for cells of the job's spec; strays are counted apart
    by_status: dict[str, int] = field(default_factory=dict)
    by_classification: dict[str, int] = field(default_factory=dict)
    submitted_at: datetime | None = None
    deadline: datetime | None = None
    spec: dict[str, Any] | None = None
    stray: int = 0  # results for cells that are not in the job's spec: shown, never counted as progress
    # Per region of the spec: whether a runner has picked the job up, and which models it has no route for.
    regions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def catalogue(self) -> dict[str, Any] | None:
        return (self.spec or {}).get("catalogue")

    @property
    def languages(self) -> list[str]:
        """Every language the job asks in, in the order its regions first name them."""
        found = [lang for r in (self.spec or {}).get("regions") or [] for lang in r.get("languages") or []]
        return list(dict.fromkeys(found))

    @property
    def status(self) -> JobStatus | None:
        return job_status(self.expected, self.by_classification) if self.expected is not None else None

    def as_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "status": self.status,
            "expected": self.expected,
            "recorded": self.recorded,
            "stray": self.stray,
            "by_status": self.by_status,
            "by_classification": self.by_classification,
            "submitted_at": self.submitted_at.isoformat() if self.submitted_at else None,
            "deadline": self.deadline.isoformat() if self.deadline else None,
            "catalogue": self.catalogue,
            "languages": self.languages,
            "regions": self.regions,
        }


_JOB = "SELECT * FROM jobs WHERE job_id = %s"

# Which recorded results are cells of their job's spec. A result is only as good as the event that carried
# it: an ExecutionCompleted for a region, model or question the job never asked for (a buggy or hostile
# producer, a replay of another job's events under a reused id) is recorded — the log is the truth — but it
# must never make a job look complete while its real cells are missing. The spec is the projected
# JobSubmitted (jobs.spec): its questions[].id, models[].id and regions[].id; a job without questions has
# one cell per (region, model) with question_id NULL. A job is the full product of those three lists, so a
# row is a cell of it when its region, its model and its question (or NULL, for a job without questions)
# each are in the spec: three `= ANY(array)` tests, with the arrays taken from the spec (which every caller
# has read already) and sent as parameters. Unprepared, each execution is planned with the arrays as
# constants, and PostgreSQL (>= 14) then tests membership with a hash table: on a 10,000-cell job this
# costs about what the plain count did (measured: see the report of issue 9), where a join against
# jsonb_array_elements of the spec costs about twice that. When the job's JobSubmitted is not projected
# (yet), its spec is unknown and every row counts (the job has no status then anyway).
_ROW_IN_SPEC = (
    "((region || '|' || coalesce(language, '')) = ANY(%(region_languages)s) AND model_id = ANY(%(models)s)"
    " AND (question_id = ANY(%(questions)s) OR (question_id IS NULL AND %(no_questions)s)))"
)


def _in_spec(spec: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """The SQL test "this execution row is a cell of the job", and its parameters."""
    if spec is None:
        return "TRUE", {}

    def ids(kind: str) -> list[str]:
        return [x["id"] for x in spec.get(kind) or [] if isinstance(x, dict) and isinstance(x.get("id"), str)]

    questions = ids("questions")
    # (region, language) pairs: a region asks in its languages; an event from before languages in none ('').
    pairs = [
        f"{r['id']}|{lang}"
        for r in spec.get("regions") or []
        if isinstance(r, dict) and isinstance(r.get("id"), str)
        for lang in [x for x in r.get("languages") or [] if isinstance(x, str)] or [""]
    ]
    return _ROW_IN_SPEC, {
        "region_languages": pairs,
        "models": ids("models"),
        "questions": questions,
        "no_questions": not questions,
    }


_COUNTS = "SELECT status, classification, {in_spec}, count(*) FROM executions WHERE job_id = %(id)s GROUP BY 1, 2, 3"


def _counts_query(job_id: str, job: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    in_spec, params = _in_spec(job["spec"] if job else None)
    return _COUNTS.format(in_spec=in_spec), {"id": job_id, **params}


async def executions(conn: psycopg.AsyncConnection, job_id: str) -> list[dict[str, Any]]:
    """Every recorded row of a job, strays included (`in_spec` false), for `beacon executions`."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_JOB, (job_id,))
        job = await cur.fetchone()
        in_spec, params = _in_spec(job["spec"] if job else None)
        await cur.execute(
            "SELECT region, model_id, question_id, language, status, classification, classifier_version, provider,"
            f" provider_model, answer, started_at, completed_at, recorded_at, {in_spec} AS in_spec"
            " FROM executions WHERE job_id = %(id)s ORDER BY question_id NULLS FIRST, model_id, region, language",
            {"id": job_id, **params},
            prepare=False,
        )
        return await cur.fetchall()


# --- async, for the read API ------------------------------------------------------------------------

ROW_COLUMNS = columns(EXECUTION_READ_COLUMNS)


def _summary_from(job: dict[str, Any] | None, job_id: str, counts: list[tuple[str, str, bool, int]]) -> JobSummary:
    summary = JobSummary(job_id=job_id, expected=job["expected_executions"] if job else None, recorded=0)
    if job:
        summary.submitted_at, summary.deadline, summary.spec = job["submitted_at"], job["deadline"], job["spec"]
    for status, label, in_spec, n in counts:
        if not in_spec:
            summary.stray += n
            continue
        summary.recorded += n
        summary.by_status[status] = summary.by_status.get(status, 0) + n
        summary.by_classification[label] = summary.by_classification.get(label, 0) + n
    return summary


async def _counts(conn: psycopg.AsyncConnection, job_id: str, job: dict[str, Any] | None) -> list[Any]:
    return await (await conn.execute(*_counts_query(job_id, job), prepare=False)).fetchall()


async def job_summary(conn: psycopg.AsyncConnection, job_id: str) -> JobSummary | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_JOB, (job_id,))
        job = await cur.fetchone()
        await cur.execute("SELECT * FROM job_regions WHERE job_id = %s", (job_id,))
        picked = {r["region"]: r for r in await cur.fetchall()}
    counts = await _counts(conn, job_id, job)
    if job is None and not counts:
        return None
    summary = _summary_from(job, job_id, counts)
    summary.regions = _regions(summary.spec, picked)
    return summary


def _regions(spec: dict[str, Any] | None, picked: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each region of the job: picked up by a runner (when, which provider per model, which models have no
    route of their own) or not yet — a region without a runner shows here long before the deadline."""
    out = []
    for region in (spec or {}).get("regions") or []:
        row = picked.get(region.get("id"))
        out.append(
            {
                "region": region.get("id"),
                "languages": region.get("languages") or [],
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
    # One count per job (each with its own spec's cells), sent together: one round trip for the page.
    async with conn.pipeline():
        cursors = [await conn.execute(*_counts_query(j["job_id"], j), prepare=False) for j in jobs]
    return [_summary_from(j, j["job_id"], await c.fetchall()) for j, c in zip(jobs, cursors, strict=True)]


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
            f"SELECT {ROW_COLUMNS} FROM executions WHERE {' AND '.join(where)} ORDER BY id LIMIT %s", (*params, limit)
        )
        return await cur.fetchall()


async def one_execution(
    conn: psycopg.AsyncConnection,
    job_id: str,
    region: str,
    model_id: str,
    question_id: str | None,
    language: str | None = None,
) -> list[dict[str, Any]]:
    """The cell's row — or, when no language is given and the job asks several, one row per language."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {ROW_COLUMNS} FROM executions WHERE job_id = %s AND region = %s AND model_id = %s"
            " AND question_id IS NOT DISTINCT FROM %s AND (%s::text IS NULL OR language = %s) ORDER BY language",
            (job_id, region, model_id, question_id, language, language),
        )
        return await cur.fetchall()


async def cells(
    conn: psycopg.AsyncConnection, job: JobSummary, answers: bool = False, answer_chars: int | None = None
) -> list[dict[str, Any]]:
    """Every recorded cell of the job's spec (strays left out: they are no cell of its matrix and no part
    of its analysis); the answers (the bulk of the bytes) only when asked for, cut to `answer_chars` in the
    database when given (so a 112k-character answer costs its first characters' transfer, not all of it)."""
    columns = "region, model_id, question_id, language, status, classification"
    columns += ", output->'judgement'->>'label' AS judge_label"
    if answers:
        columns += f", left(answer, {int(answer_chars)}) AS answer" if answer_chars is not None else ", answer"
    in_spec, params = _in_spec(job.spec)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {columns} FROM executions WHERE job_id = %(id)s AND {in_spec}",
            {"id": job.job_id, **params},
            prepare=False,
        )
        return await cur.fetchall()


async def job_for_compare(
    conn: psycopg.AsyncConnection, job_id: str
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """One side of `beacon compare` / `GET /compare`: the projected job (its JobSubmitted, catalogue
    version, submission time) and every recorded row of it with its classification; None when the job's
    JobSubmitted is not projected. Which rows are cells of its spec is decided by beacon.domain.compare."""
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
