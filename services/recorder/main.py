"""`beacon recorder`: batch-consume events → one Postgres transaction per batch → commit offsets.

Offsets are committed only after the database commit (invariant 2). A crash in between means the batch
is delivered again, and the unique index turns the repeat into a no-op (invariant 3). When PostgreSQL
is unreachable the recorder waits and retries the same batch; it never dead-letters for that.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord, TopicPartition

from beacon import db, kafka, logs, topics
from beacon.settings import Settings
from schemas.events import ExecutionCompleted, JobSubmitted
from services.recorder import project, store

log = logs.get("beacon.recorder")

RETRY_MAX_SECONDS = 30.0


def group_id(settings: Settings) -> str:
    return f"{settings.topic_namespace}.recorder"


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

    async def write(self, executions: list[tuple[Any, ...]], jobs: list[tuple[Any, ...]]) -> store.Written:
        """Write one batch, waiting out database outages: transient failures are retried, never skipped."""
        delay = 0.5
        while True:
            try:
                return await store.write_batch(await self.connection(), executions, jobs)
            except psycopg.OperationalError as exc:
                log.warning("database_unavailable", retry_in_s=delay, error=str(exc).strip()[:300])
                if self.conn is not None:
                    await self.conn.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)

    async def handle(
        self, batch: dict[TopicPartition, list[ConsumerRecord]], producer: AIOKafkaProducer
    ) -> dict[TopicPartition, int]:
        executions: list[tuple[Any, ...]] = []
        jobs: list[tuple[Any, ...]] = []
        offsets: dict[TopicPartition, int] = {}
        for tp, records in batch.items():
            for record in records:
                try:
                    event = kafka.read_event(record, ExecutionCompleted, JobSubmitted)
                except kafka.Poison as exc:
                    await kafka.dead_letter(producer, record, str(exc), consumer=group_id(self.settings))
                else:
                    if isinstance(event, ExecutionCompleted):
                        executions.append(project.execution_row(event))
                    else:
                        jobs.append(project.job_row(event))
            offsets[tp] = records[-1].offset + 1
        written = await self.write(executions, jobs)
        log.info(
            "batch_written",
            events=len(executions) + len(jobs),
            executions_inserted=written.executions_inserted,
            duplicates_suppressed=written.executions_duplicate,
            jobs_inserted=written.jobs_inserted,
        )
        return offsets

    async def run(self) -> None:
        db.migrate(self.settings.database_url)
        await topics.ensure(self.settings)
        consumer: AIOKafkaConsumer = kafka.consumer(
            self.settings,
            self.names.jobs_submitted,
            self.names.executions_completed,
            group_id=group_id(self.settings),
            max_poll_records=self.settings.recorder_batch_size,
        )
        producer = kafka.producer(self.settings)
        await producer.start()
        await consumer.start()
        log.info("recorder_started", topics=self.names.all(), group=group_id(self.settings))
        try:
            while True:
                batch = await consumer.getmany(
                    timeout_ms=self.settings.recorder_batch_wait_ms, max_records=self.settings.recorder_batch_size
                )
                if batch:
                    offsets = await self.handle(batch, producer)
                    await consumer.commit(offsets)  # only now: the rows are durable
        finally:
            await consumer.stop()
            await producer.stop()
            if self.conn is not None:
                await self.conn.close()
