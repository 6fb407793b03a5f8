"""The projection's tables, once: the column lists every writer and reader of them uses, and the one
way rows are bulk-loaded (COPY). The tables themselves are created by the migrations
(migrations/beacon/migrations/*.sql); the CHECK lists there are tested against beacon.schemas.events
(tests/unit/test_facts.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

# In the order project.execution_row / job_row build their tuples.
EXECUTION_COLUMNS = (
    "job_id",
    "region",
    "model_id",
    "question_id",
    "language",
    "provider",
    "provider_model",
    "status",
    "classification",
    "classifier_version",
    "answer",
    "output",
    "receipt",
    "started_at",
    "completed_at",
    "event_id",
    "event",  # the signed event as it arrived (JSON text), for export and verification
)
JOB_COLUMNS = (
    "job_id",
    "spec_sha256",
    "expected_executions",
    "submitted_at",
    "deadline",
    "spec",
    "event_id",
    "catalogue_version",
)
JOB_REGION_COLUMNS = ("job_id", "region", "spec_sha256", "cells", "providers", "unrouted", "expanded_at", "event_id")
CLASSIFICATION_COLUMNS = (
    "job_id",
    "region",
    "model_id",
    "question_id",
    "classifier_version",
    "classification",
    "evidence",
    "event_id",
)
# What the read API returns of an execution: the projected columns, its row id and when it was recorded.
EXECUTION_READ_COLUMNS = ("id", *EXECUTION_COLUMNS[1:-1], "recorded_at")


def columns(cols: Sequence[str]) -> str:
    return ", ".join(cols)


async def copy_rows(
    cur: psycopg.AsyncCursor[Any], table: str, cols: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Bulk-load rows into a (staging) table: COPY is several times faster than INSERT per row."""
    async with cur.copy(f"COPY {table} ({columns(cols)}) FROM STDIN") as copy:
        for row in rows:
            await copy.write_row(row)


async def storage_of(conn: psycopg.AsyncConnection[Any], table: str) -> str:
    """A WITH clause holding `table`'s storage parameters (the migrations set them), for tables made like it:
    CREATE TABLE … LIKE copies neither those nor CREATE TABLE … AS."""
    cur = await conn.execute("SELECT reloptions FROM pg_class WHERE oid = %s::regclass", (table,))
    row = await cur.fetchone()
    options = row[0] if row and row[0] else []
    return f" WITH ({', '.join(options)})" if options else ""
