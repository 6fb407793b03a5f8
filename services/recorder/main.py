"""`beacon recorder`: batch-consume events → one Postgres transaction per batch → commit offsets.

Offsets are committed only after the database commit (invariant 2). A crash in between means the batch
is delivered again, and the unique index turns the repeat into a no-op (invariant 3). When PostgreSQL
is unreachable the recorder waits and retries the same batch; it never dead-letters for that.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord, TopicPartition

from beacon import db, kafka, logs, metrics, topics
from beacon.settings import Settings
from schemas.events import ProducerInfo, encode, now
from services.recorder import deadlines, project, queries, store

log = logs.get("beacon.recorder")

RETRY_MAX_SECONDS = 30.0
RE_EMIT_AFTER_SECONDS = 30.0


def group_id(settings: Settings) -> str:
    # A second group (BEACON_RECORDER_GROUP) projects the whole log again, e.g. to measure a replay.
    return os.environ.get("BEACON_RECORDER_GROUP") or f"{settings.topic_namespace}.recorder"


@dataclass
class Batch:
    rows: project.Rows = field(default_factory=project.Rows)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)


class Recorder:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.names = topics.Topics.for_settings(settings)
        self.conn: psycopg.AsyncConnection | None = None

    async def connection(self) -> psycopg.AsyncConnection:
        if self.conn is None or self.conn.closed or self.conn.broken:
            self.conn = await psycopg.AsyncConnection.connect(self.settings.database_url)
            await store.prepare(self.conn)
        return self.conn

    async def write(self, rows: project.Rows) -> tuple[store.Written, list[store.Refused]]:
        """Write one batch, waiting out database outages: transient failures are retried, never skipped.
        Rows the database refuses for their data come back to be dead-lettered (store.write_or_isolate)."""
        delay = 0.5
        while True:
            try:
                return await store.write_or_isolate(await self.connection(), rows.executions, rows.jobs)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                log.warning("database_unavailable", retry_in_s=delay, error=str(exc).strip()[:300])
                if self.conn is not None:
                    await self.conn.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)

    async def decode(self, batch: dict[TopicPartition, list[ConsumerRecord]], producer: AIOKafkaProducer) -> Batch:
        """Events → rows (pure Python work); poison is dead-lettered here, before anything is written."""
        out = Batch()
        for tp, records in batch.items():
            rows = project.rows_of(records)
            for record, why in rows.poison:
                await kafka.dead_letter(producer, record, why, consumer=group_id(self.settings))
            rows.poison = []
            out.rows.extend(rows)
            out.offsets[tp] = records[-1].offset + 1
            metrics.EVENTS_CONSUMED.labels(tp.topic).inc(len(records))
        metrics.BATCH_SIZE.observe(sum(len(r) for r in batch.values()))
        return out

    async def store(self, batch: Batch, producer: AIOKafkaProducer) -> dict[TopicPartition, int]:
        with metrics.WRITE_SECONDS.time():
            written, refused = await self.write(batch.rows)
        for row in refused:  # acknowledged before the offsets are committed: a crash re-sends, never loses
            sources = batch.rows.execution_sources if row.table == "executions" else batch.rows.job_sources
            why = f"PostgreSQL refused the row: {row.error}"
            await kafka.dead_letter(producer, sources[row.index], why, consumer=group_id(self.settings))
        metrics.ROWS_INSERTED.inc(written.executions_inserted)
        metrics.DUPLICATES.inc(written.executions_duplicate)
        log.info(
            "batch_written",
            events=len(batch.rows.executions) + len(batch.rows.jobs),
            refused=len(refused),
            executions_inserted=written.executions_inserted,
            duplicates_suppressed=written.executions_duplicate,
            jobs_inserted=written.jobs_inserted,
        )
        return batch.offsets

    async def sweep_deadlines(self) -> None:
        """Every few seconds: emit `timeout` results for the missing cells of jobs past their deadline.
        The database or the broker being away skips a sweep, never ends the clock."""
        info = ProducerInfo(service="recorder", instance=kafka.instance_id("recorder-deadlines"))
        emitted_at: dict[str, float] = {}  # job_id → when we last emitted, so one outage is not spammed
        conn: psycopg.AsyncConnection | None = None  # one connection for every sweep, remade after an outage
        producer: AIOKafkaProducer | None = None  # likewise
        try:
            while True:
                await asyncio.sleep(self.settings.deadline_sweep_seconds)
                try:
                    if conn is None or conn.closed or conn.broken:
                        conn = await psycopg.AsyncConnection.connect(self.settings.database_url, autocommit=True)
                    overdue = await queries.overdue_jobs(conn)
                    if overdue and producer is None:
                        producer = kafka.producer(self.settings)
                        await producer.start()
                    for job in overdue:
                        if time.monotonic() - emitted_at.get(job.job_id, -1e9) < RE_EMIT_AFTER_SECONDS:
                            continue
                        assert producer is not None
                        missing = deadlines.missing_cells(job, await queries.recorded_cells(conn, job.job_id))
                        at = now()
                        acks = [
                            await producer.send(
                                self.names.executions_completed,
                                encode(deadlines.timeout_event(job, cell, at, info)),
                                key=deadlines.key_of(job.job_id, cell).encode(),
                            )
                            for cell in missing
                        ]
                        await asyncio.gather(*acks)
                        metrics.EVENTS_PRODUCED.labels(self.names.executions_completed).inc(len(acks))
                        emitted_at[job.job_id] = time.monotonic()
                        log.info("deadline_passed", job_id=job.job_id, timeouts_emitted=len(missing))
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    log.warning("deadline_sweep_skipped", error=str(exc).strip()[:300])
                    conn = None if conn is None or conn.closed or conn.broken else conn
                except Exception as exc:
                    if not kafka.is_transient(exc):
                        raise
                    log.warning("deadline_sweep_skipped", error=kafka.describe(exc))
                    if producer is not None:  # a fresh producer next time
                        await producer.stop()
                        producer = None
        finally:
            if producer is not None:
                await producer.stop()
            if conn is not None:
                await conn.close()

    async def serve_http(self) -> None:
        """The read API and the portal, in this process: they read the projection this process writes."""
        from beacon import http
        from services.recorder.api import create_app

        # Head deadline, keep-alive, concurrency and head-size limits: beacon/http.py.
        server = http.server(create_app(self.settings), self.settings.http_host, self.settings.http_port)
        # The CLI owns SIGTERM/SIGINT (a clean stop of the whole recorder); uvicorn must not take them.
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
        log.info("http_serving", url=f"http://{self.settings.http_host}:{self.settings.http_port}/")
        await server.serve()
        if not server.started:
            raise RuntimeError(
                f"the read API could not listen on {self.settings.http_host}:{self.settings.http_port}"
                " (port taken? set BEACON_HTTP_PORT, or 0 to turn it off)"
            )

    async def run(self) -> None:
        db.migrate(self.settings.database_url)
        await kafka.retrying("topics", lambda: topics.ensure(self.settings))
        # Three parts, one process: the projection (started again, fresh, after a transient Kafka
        # failure), the deadline clock and the read API. If one fails for good, the others stop too.
        async with asyncio.TaskGroup() as group:
            group.create_task(kafka.supervised("recorder", self.consume))
            group.create_task(self.sweep_deadlines())
            if self.settings.http_port:
                group.create_task(self.serve_http())

    async def consume(self) -> None:
        consumer: AIOKafkaConsumer = kafka.consumer(
            self.settings,
            self.names.jobs_submitted,
            self.names.executions_completed,
            group_id=group_id(self.settings),
            max_poll_records=self.settings.recorder_batch_size,
        )
        producer = kafka.producer(self.settings)
        writing: asyncio.Future[dict[TopicPartition, int]] | None = None
        try:
            await producer.start()
            await consumer.start()
            log.info("recorder_started", topics=self.names.all(), group=group_id(self.settings))
            while True:
                batch = await consumer.getmany(
                    timeout_ms=self.settings.recorder_batch_wait_ms, max_records=self.settings.recorder_batch_size
                )
                decoded = await self.decode(batch, producer) if batch else None
                # Pipelined: batch N is written while batch N+1 was being decoded above (Python on one
                # core, PostgreSQL on the other). Writes stay in order on one connection, so the first
                # event per cell still wins; each batch's offsets are committed after its own commit.
                if writing is not None:
                    await consumer.commit(await writing)  # only now: those rows are durable
                    writing = None
                if decoded is not None:
                    writing = asyncio.ensure_future(self.store(decoded, producer))
                    for tp in batch:
                        lag = (consumer.highwater(tp) or 0) - await consumer.position(tp)
                        metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, lag))
        finally:
            if writing is not None:
                writing.cancel()  # not committed: the batch is delivered again
            await consumer.stop()
            await producer.stop()
            if self.conn is not None:  # a cancelled write may have left it mid-transaction: start afresh
                await self.conn.close()
                self.conn = None
