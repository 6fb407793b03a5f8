"""Writing a batch: one transaction, COPY into a temporary table, then INSERT … ON CONFLICT DO NOTHING.

The unique index on (job_id, region, model_id, question_id, language) NULLS NOT DISTINCT (migration 004)
decides duplicates, in the database, atomically: no check-then-insert. Within a batch the first event per
key (in Kafka order) wins because rows are inserted in the order they were consumed.

A row PostgreSQL refuses for what it holds (a NUL byte, a value out of range) must not stop the
recorder: it would meet the same event again after every restart. `write_or_isolate` then writes the
batch again row by row, each behind a savepoint, and returns the refused rows with the database's
error for the caller to dead-letter; the rest of the batch is written. Only a transient failure
(`is_transient`: the server or the connection) is raised, for the caller to wait out and retry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from pydantic import ValidationError

from beacon.domain.cells import CellKey
from beacon.infra.projection import EXECUTION_COLUMNS, JOB_COLUMNS, JOB_REGION_COLUMNS, columns, copy_rows
from beacon.schemas.events import JobSubmitted

_EXEC_COLS = columns(EXECUTION_COLUMNS)
_JOB_COLS = columns(JOB_COLUMNS)
_REGION_COLS = columns(JOB_REGION_COLUMNS)


@dataclass(frozen=True)
class Tables:
    executions: str = "executions"
    jobs: str = "jobs"
    job_regions: str = "job_regions"  # not rebuilt by a replay (it reads the jobs and executions topics only)


LIVE = Tables()
REBUILD = Tables("executions_rebuild", "jobs_rebuild", "job_regions")


@dataclass(frozen=True)
class Written:
    executions_inserted: int
    executions_duplicate: int
    jobs_inserted: int


@dataclass(frozen=True)
class Refused:
    table: str  # "executions", "jobs" or "job_regions"
    index: int  # position of the row in the batch's list for that table
    error: str


def is_transient(exc: BaseException) -> bool:
    """A failure of the server or the connection, not of the data: wait and retry the same batch.
    Class 54 (program limit exceeded, e.g. an index row too large) is the data's fault."""
    if not isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return False
    return not (getattr(exc, "sqlstate", None) or "").startswith("54")


async def prepare(conn: psycopg.AsyncConnection) -> None:
    """Create this connection's staging tables once (temporary, emptied at every commit)."""
    async with conn.transaction():
        for table, source, cols in (
            ("incoming_executions", "executions", _EXEC_COLS),
            ("incoming_jobs", "jobs", _JOB_COLS),
            ("incoming_job_regions", "job_regions", _REGION_COLS),
        ):
            await conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {table} ON COMMIT DELETE ROWS AS "
                f"SELECT {cols} FROM {source} WITH NO DATA"
            )
            # `seq` keeps consumption order so "first event per key wins" is deterministic.
            await conn.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS seq bigserial")


async def write_batch(
    conn: psycopg.AsyncConnection,
    executions: Sequence[tuple[Any, ...]],
    jobs: Sequence[tuple[Any, ...]],
    into: Tables = LIVE,
    job_regions: Sequence[tuple[Any, ...]] = (),
) -> Written:
    inserted = []
    async with conn.transaction(), conn.cursor() as cur:
        for rows, staging, target, cols in (
            (executions, "incoming_executions", into.executions, EXECUTION_COLUMNS),
            (jobs, "incoming_jobs", into.jobs, JOB_COLUMNS),
            (job_regions, "incoming_job_regions", into.job_regions, JOB_REGION_COLUMNS),
        ):
            if not rows:
                inserted.append(0)
                continue
            await copy_rows(cur, staging, cols, rows)
            names = columns(cols)
            await cur.execute(
                f"INSERT INTO {target} ({names}) SELECT {names} FROM {staging} ORDER BY seq ON CONFLICT DO NOTHING"
            )
            inserted.append(cur.rowcount)
    return Written(inserted[0], len(executions) - inserted[0], inserted[1])


async def write_or_isolate(
    conn: psycopg.AsyncConnection,
    executions: Sequence[tuple[Any, ...]],
    jobs: Sequence[tuple[Any, ...]],
    into: Tables = LIVE,
    job_regions: Sequence[tuple[Any, ...]] = (),
) -> tuple[Written, list[Refused]]:
    """write_batch; if the database refuses the batch for its data, row by row, setting aside what it refuses."""
    try:
        return await write_batch(conn, executions, jobs, into, job_regions), []
    except Exception as exc:
        if is_transient(exc):
            raise
    refused: list[Refused] = []
    inserted = {"executions": 0, "jobs": 0, "job_regions": 0}
    async with conn.transaction():
        for table, target, cols, rows in (
            ("executions", into.executions, EXECUTION_COLUMNS, executions),
            ("jobs", into.jobs, JOB_COLUMNS, jobs),
            ("job_regions", into.job_regions, JOB_REGION_COLUMNS, job_regions),
        ):
            sql = (
                f"INSERT INTO {target} ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})"
                " ON CONFLICT DO NOTHING"
            )
            for index, row in enumerate(rows):
                try:
                    async with conn.transaction():  # a savepoint: a refused row leaves the others intact
                        cur = await conn.execute(sql, row)
                        inserted[table] += cur.rowcount
                except Exception as exc:
                    if is_transient(exc):
                        raise
                    refused.append(Refused(table, index, f"{type(exc).__name__}: {str(exc).strip()}"[:2000]))
    refused_executions = sum(1 for r in refused if r.table == "executions")
    duplicates = len(executions) - inserted["executions"] - refused_executions
    return Written(inserted["executions"], duplicates, inserted["jobs"]), refused


# --- what the deadline clock reads -------------------------------------------------------------------

# Rows of a job that are cells of its spec: a stray result (a cell the job does not have) fills none.
# (The reader tests the same with the spec's ids as parameters, one job at a time; this form reads every
# job's spec inside the query.)
_IN_SPEC = (
    # the row's region is one of the job's, and its language one that region asks in (none: before languages)
    "EXISTS (SELECT 1 FROM jsonb_array_elements(j.spec->'regions') r WHERE r->>'id' = e.region AND"
    " (CASE WHEN jsonb_array_length(coalesce(r->'languages', '[]')) = 0 THEN e.language IS NULL"
    " ELSE e.language IN (SELECT jsonb_array_elements_text(r->'languages')) END))"
    " AND e.model_id IN (SELECT m->>'id' FROM jsonb_array_elements(j.spec->'models') m)"
    " AND (CASE WHEN jsonb_array_length(j.spec->'questions') = 0 THEN e.question_id IS NULL"
    " ELSE e.question_id IN (SELECT q->>'id' FROM jsonb_array_elements(j.spec->'questions') q) END)"
)


async def overdue_jobs(conn: psycopg.AsyncConnection) -> list[JobSubmitted]:
    """Jobs past their deadline with cells of their spec still unrecorded."""
    cur = await conn.execute(
        "SELECT j.spec FROM jobs j WHERE j.deadline < now() AND j.expected_executions >"
        f" (SELECT count(*) FROM executions e WHERE e.job_id = j.job_id AND {_IN_SPEC})"
    )
    jobs = []
    for (spec,) in await cur.fetchall():
        try:
            jobs.append(JobSubmitted.model_validate(spec))
        except ValidationError:
            continue  # a projected spec this version cannot read: no sweep for it, and no crash of the sweeper
    return jobs


async def recorded_cells(conn: psycopg.AsyncConnection, job_id: str) -> set[CellKey]:
    cur = await conn.execute(
        "SELECT region, model_id, question_id, language FROM executions WHERE job_id = %s", (job_id,)
    )
    return {tuple(row) for row in await cur.fetchall()}  # type: ignore[misc]
