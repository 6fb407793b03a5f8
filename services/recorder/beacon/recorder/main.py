"""`beacon recorder`: batch-consume events → decode them into rows (project.py, pure) → admit each result as
a cell of its job and write one Postgres transaction per batch (admit.py, store.py) → dead-letter what is
no cell of a known job → commit offsets. Beside it, the deadline clock (deadlines.py) and the sweep of
results waiting for their job (pending.py). Its clients are made in bootstrap.py and handed in as
factories (a restart after a Kafka failure makes fresh ones).

Offsets are committed only after the database commit (invariant 2). A crash in between means the batch
is delivered again, and the unique index turns the repeat into a no-op (invariant 3). When PostgreSQL
is unreachable the recorder waits and retries the same batch; it never dead-letters for that.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import IllegalStateError
from aiokafka.structs import ConsumerRecord, TopicPartition
from fastapi import FastAPI

from beacon.infra import db, http, kafka, logs, metrics, topics, verifiers
from beacon.infra.keys import TrustFile
from beacon.infra.settings import Settings
from beacon.recorder import admit, decode, project, store

log = logs.get("beacon.recorder")

RETRY_MAX_SECONDS = 30.0


@dataclass
class Batch:
    rows: project.Rows = field(default_factory=project.Rows)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)


async def record_lag(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
    """The lag gauge, for the partitions still assigned: a rebalance (a broker lost, a new region's topic
    found by the pattern) may have taken some away since the fetch, and a metric must never stop the
    recorder."""
    assigned = consumer.assignment()  # once per batch, not once per partition
    for tp in partitions:
        if tp not in assigned:
            continue
        try:
            lag = (consumer.highwater(tp) or 0) - await consumer.position(tp)
        except (AssertionError, IllegalStateError):  # unassigned in between
            continue
        metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, lag))


@dataclass(frozen=True)
class Clients:
    consumer: Any  # AIOKafkaConsumer of the recorder's group, subscribed by the recorder (a pattern)
    producer: Any  # AIOKafkaProducer, for dead letters


class Recorder:
    def __init__(
        self,
        settings: Settings,
        kafka_clients: Callable[[], Clients],
        connect: Callable[[], Awaitable[psycopg.AsyncConnection]],
        deadline_clock: Callable[[], Awaitable[None]],
        trust: TrustFile,
        pending_sweep: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self.trust = trust  # the keys whose signatures count (beacon.infra.keys)
        self.names = settings.topics
        self.kafka_clients = kafka_clients
        self.connect = connect
        self.deadline_clock = deadline_clock
        self.pending_sweep = pending_sweep
        self.conn: psycopg.AsyncConnection | None = None
        self.book = store.Book()

    async def connection(self) -> psycopg.AsyncConnection:
        if self.conn is None or self.conn.closed or self.conn.broken:
            self.conn = await self.connect()
            await store.prepare(self.conn)
        return self.conn

    async def write(self, rows: project.Rows) -> store.Recorded:
        """Write one batch, waiting out database outages: transient failures are retried, never skipped.
        Rows the database refuses for their data, and strays, come back to be dead-lettered (store.record)."""
        delay = 0.5
        while True:
            try:
                conn = await self.connection()
                return await store.record(conn, rows, self.book, self.names, self.trust)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                log.warning("database_unavailable", retry_in_s=delay, error=str(exc).strip()[:300])
                if self.conn is not None:
                    await self.conn.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)

    async def decode(
        self, batch: dict[TopicPartition, list[ConsumerRecord]], producer: Any, pool: verifiers.Pool
    ) -> Batch:
        """Events → rows (decode.py); poison is dead-lettered here, before anything is written."""
        out = Batch()
        for tp, records in batch.items():
            rows = await decode.rows_of_batch(records, self.names, self.trust, pool)
            for poisoned in rows.poison:
                await kafka.dead_letter(producer, poisoned.record, poisoned.why, consumer=self.settings.groups.recorder)
                if poisoned.reason is not None:
                    metrics.STRAY_RESULTS.labels(poisoned.reason).inc()
            rows.poison = []
            out.rows.extend(rows)
            out.offsets[tp] = records[-1].offset + 1
            metrics.EVENTS_CONSUMED.labels(tp.topic).inc(len(records))
        metrics.BATCH_SIZE.observe(sum(len(r) for r in batch.values()))
        return out

    async def store(self, batch: Batch, producer: Any) -> dict[TopicPartition, int]:
        with metrics.WRITE_SECONDS.time():
            done = await self.write(batch.rows)
        group = self.settings.groups.recorder
        # Dead letters are acknowledged before the offsets are committed: a crash re-sends, never loses.
        for row in done.refused:
            await kafka.dead_letter(producer, row.record, f"PostgreSQL refused the row: {row.error}", consumer=group)
        for stray in done.strays:
            await kafka.dead_letter(producer, stray.record, admit.NOT_A_CELL + stray.why, consumer=group)
            metrics.STRAY_RESULTS.labels(admit.OUT_OF_SPEC).inc()
        written = done.written
        metrics.ROWS_INSERTED.inc(written.executions_inserted)
        metrics.DUPLICATES.inc(written.executions_duplicate)
        log.info(
            "batch_written",
            events=len(batch.rows.executions) + len(batch.rows.jobs) + len(batch.rows.job_regions),
            refused=len(done.refused),
            strays=len(done.strays),
            waiting_for_job=done.held,
            adopted=done.adopted,
            executions_inserted=written.executions_inserted,
            duplicates_suppressed=written.executions_duplicate,
            timeouts_superseded=written.timeouts_superseded,
            jobs_inserted=written.jobs_inserted,
        )
        return batch.offsets

    async def serve_ops(self) -> None:
        """/metrics and /health for this process (the projection's counters, lag and dead letters)."""
        app = FastAPI(title="Beacon recorder", docs_url=None, redoc_url=None, openapi_url=None)
        http.harden(app, allowed_hosts=self.settings.allowed_hosts)

        async def database() -> None:
            async with await psycopg.AsyncConnection.connect(self.settings.database_url, connect_timeout=3) as conn:
                await conn.execute("SELECT 1")

        http.add_ops_routes(app, {"database": database, "broker": lambda: kafka.reachable(self.settings)})
        host, port = self.settings.http_host, self.settings.recorder_port
        log.info("ops_serving", url=f"http://{host}:{port}/metrics")
        await http.serve(app, host, port, "the recorder's /metrics", "BEACON_RECORDER_PORT")

    async def run(self) -> None:
        db.require_current(self.settings.database_url)  # the schema is the migrator's: `beacon migrate`
        await kafka.retrying("topics", lambda: topics.ensure(self.settings))
        # One process: the projection (started again, fresh, after a transient Kafka failure), the deadline
        # clock and the sweep of waiting results; /metrics and /health beside them. If one fails for good,
        # all stop.
        # The read API is another process (`beacon reader`): reads never share this event loop.
        async with asyncio.TaskGroup() as group:
            group.create_task(kafka.supervised("recorder", self.consume))
            group.create_task(self.deadline_clock())
            if self.pending_sweep is not None:
                group.create_task(self.pending_sweep())
            if self.settings.recorder_port:
                group.create_task(self.serve_ops())

    async def consume(self) -> None:
        clients = self.kafka_clients()
        consumer, producer = clients.consumer, clients.producer
        consumer.subscribe(pattern=self.names.projected())
        writing: asyncio.Future[dict[TopicPartition, int]] | None = None
        pool = verifiers.Pool()  # the signatures' arithmetic, in processes beside this one
        try:
            await producer.start()
            await consumer.start()
            log.info("recorder_started", topics=self.names.projected(), group=self.settings.groups.recorder)
            while True:
                batch = await consumer.getmany(
                    timeout_ms=self.settings.recorder_batch_wait_ms, max_records=self.settings.recorder_batch_size
                )
                decoded = await self.decode(batch, producer, pool) if batch else None
                # Pipelined: batch N is written while batch N+1 was being decoded above (Python on one
                # core, PostgreSQL on the other). Writes stay in order on one connection, so the first
                # event per cell still wins; each batch's offsets are committed after its own commit.
                if writing is not None:
                    await consumer.commit(await writing)  # only now: those rows are durable
                    writing = None
                if decoded is not None:
                    writing = asyncio.ensure_future(self.store(decoded, producer))
                    await record_lag(consumer, list(batch))
        finally:
            if writing is not None:
                writing.cancel()  # not committed: the batch is delivered again
            await consumer.stop()
            await producer.stop()
            await pool.close()
            if self.conn is not None:  # a cancelled write may have left it mid-transaction: start afresh
                await self.conn.close()
                self.conn = None
