"""Results waiting for their job: the recorder holds a result (or an expansion) whose JobSubmitted it has not
read yet in pending_results (store.py), because the jobs and executions topics are not ordered with each
other. Every few seconds this sweep:

1. projects the waiting records whose job has been written meanwhile (by another recorder of the group, say;
   this recorder adopts them itself when it writes the job or a later result of it);
2. dead-letters, then deletes, those found not to be cells of their job (`verdict`) and those whose job has
   not come within `orphan_wait_seconds` ("job never arrived"), each counted by reason;
3. reports how many still wait (a gauge).

The dead letter is sent before the row is deleted: a crash in between sends it again, never loses it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from aiokafka.structs import ConsumerRecord

from beacon.infra import kafka, logs, metrics
from beacon.infra.keys import TrustFile
from beacon.infra.settings import Settings
from beacon.recorder import admit, project, store, sweeps

log = logs.get("beacon.recorder.pending")

JOB_NEVER_ARRIVED = "job_never_arrived"
REFUSED_BY_DATABASE = "PostgreSQL refused the row: "  # a verdict that is the database's, not a stray


async def resolve(
    conn: psycopg.AsyncConnection,
    producer: Any,
    book: store.Book,
    settings: Settings,
    trust: TrustFile,
    into: store.Tables = store.LIVE,
) -> int:
    """One pass of steps 1–3; returns how many records it dead-lettered."""
    await store.record(conn, project.Rows(), book, settings.topics, trust, into, every_known=True)
    async with conn.transaction():
        cur = await conn.execute(
            f'SELECT topic, "partition", "offset", key, value, "timestamp", job_id, verdict FROM {into.pending} p'
            " WHERE verdict IS NOT NULL OR (held_since < now() - make_interval(secs => %s)"
            f" AND NOT EXISTS (SELECT 1 FROM {into.jobs} j WHERE j.job_id = p.job_id))"
            ' ORDER BY topic, "partition", "offset" FOR UPDATE SKIP LOCKED',
            (settings.orphan_wait_seconds,),
        )
        given_up = await cur.fetchall()
        for topic, partition, offset, key, value, timestamp, job_id, verdict in given_up:
            record = ConsumerRecord(topic, partition, offset, timestamp, 0, key, value, None, 0, len(value), ())
            if verdict is None:
                why = (
                    f"job {job_id!r} never arrived: no JobSubmitted for it within {settings.orphan_wait_seconds} s"
                    " (BEACON_ORPHAN_WAIT_SECONDS) of this record"
                )
                reason: str | None = JOB_NEVER_ARRIVED
            else:
                why = verdict
                reason = None if verdict.startswith(REFUSED_BY_DATABASE) else admit.OUT_OF_SPEC
            await kafka.dead_letter(producer, record, why, consumer=settings.groups.recorder)
            if reason is not None:
                metrics.STRAY_RESULTS.labels(reason).inc()
            await conn.execute(
                f'DELETE FROM {into.pending} WHERE topic = %s AND "partition" = %s AND "offset" = %s',
                (topic, partition, offset),
            )
    (waiting,) = await (await conn.execute(f"SELECT count(*) FROM {into.pending}")).fetchone() or (0,)
    metrics.RESULTS_WAITING.set(waiting)
    return len(given_up)


async def sweep(
    settings: Settings,
    new_producer: Callable[[], Any],
    connect: Callable[[], Awaitable[psycopg.AsyncConnection]],
) -> None:
    """`resolve` every deadline_sweep_seconds (sweeps.every: an outage skips a pass)."""
    book = store.Book()
    trust = TrustFile(settings.keys_dir)

    async def one_pass(clients: sweeps.Clients) -> None:
        given_up = await resolve(await clients.conn(), await clients.producer(), book, settings, trust)
        if given_up:
            log.info("waiting_results_dead_lettered", count=given_up)

    clients = sweeps.Clients(connect, new_producer, prepare=store.prepare)
    await sweeps.every(settings.deadline_sweep_seconds, "pending_sweep", clients, one_pass)
