"""Every job ends: cells still unrecorded at the job's deadline are recorded once, as `timeout`.

read overdue jobs and their recorded cells (store) → decide the timeouts (`timeouts`, pure: the missing cells
of beacon.domain.cells, each a result of beacon.domain.results) → emit ExecutionCompleted(timeout) to the
executions topic. Its producer and connection come from factories (bootstrap.py).

The recorder owns this clock because it is the one service that knows which cells are recorded; a
runner cannot know about cells of a region whose runner never came up. It does not write the rows
itself: it emits the results like any other, so the log stays the whole truth and a replay rebuilds the
same table. If a late real result and the timeout race, the first event for the cell on its partition
wins, in the live table and in any replay. Runners stop calling a model once the deadline has passed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import psycopg

from beacon.domain import results
from beacon.domain.cells import CellKey, missing_cells
from beacon.infra import kafka, logs, metrics
from beacon.infra.keys import Signer
from beacon.infra.settings import Settings
from beacon.recorder import store, sweeps
from beacon.schemas.events import ExecutionCompleted, JobSubmitted, ProducerInfo, encode, now

log = logs.get("beacon.recorder.deadlines")

RE_EMIT_AFTER_SECONDS = 30.0


def timeouts(job: JobSubmitted, recorded: set[CellKey], at: datetime, info: ProducerInfo) -> list[ExecutionCompleted]:
    """Pure: the `timeout` result of each cell of an overdue job that has no result yet."""
    return [results.timeout(job, cell, at, info) for cell in missing_cells(job, recorded)]


async def sweep(
    settings: Settings,
    new_producer: Callable[[], Any],
    connect: Callable[[], Awaitable[psycopg.AsyncConnection]],
    signer: Signer,
) -> None:
    """Every few seconds: emit `timeout` results for the missing cells of jobs past their deadline.
    The database or the broker being away skips a sweep, never ends the clock. `new_producer()` and
    `connect()` make fresh clients (bootstrap.py), after an outage too."""
    info = ProducerInfo(service="recorder", instance=kafka.instance_id("recorder-deadlines"))
    topic = settings.topics.executions_completed
    emitted_at: dict[str, float] = {}  # job_id → when we last emitted, so one outage is not spammed

    async def one_pass(clients: sweeps.Clients) -> None:
        conn = await clients.conn()
        for job in await store.overdue_jobs(conn):
            if time.monotonic() - emitted_at.get(job.job_id, -1e9) < RE_EMIT_AFTER_SECONDS:
                continue
            producer = await clients.producer()  # made only once a job is overdue
            events = [signer.sign(e) for e in timeouts(job, await store.recorded_cells(conn, job.job_id), now(), info)]
            acks = [await producer.send(topic, encode(e), key=e.key.encode()) for e in events]
            await asyncio.gather(*acks)
            metrics.EVENTS_PRODUCED.labels(topic).inc(len(acks))
            emitted_at[job.job_id] = time.monotonic()
            log.info("deadline_passed", job_id=job.job_id, timeouts_emitted=len(events))

    await sweeps.every(
        settings.deadline_sweep_seconds, "deadline_sweep", sweeps.Clients(connect, new_producer), one_pass
    )
