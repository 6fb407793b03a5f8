"""Worker (inside `beacon runner`): consume CellScheduled from the region's work topic → admit it against
its job on jobs.submitted (admit.py; a cell of another region, or beyond what its job asks, is
dead-lettered and never run) → call the model → emit ExecutionCompleted (acknowledged) → commit.

At most `window` cells are taken but not yet committed, in all. Offsets are committed per partition
only up to the first unfinished cell, so after a crash (SIGKILL anywhere) the cells run again are at
most `window`: repeated model calls are bounded by the in-flight limit. Several runner instances of one
region share the work topic's partitions; on a rebalance a worker finishes and commits the cells of the
partitions it gives up before letting them go, so in normal operation no cell runs twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import structlog
from aiokafka import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError
from aiokafka.structs import ConsumerRecord, TopicPartition

from beacon.infra import kafka, logs, metrics
from beacon.infra.keys import ServiceKeys
from beacon.providers import Endpoints
from beacon.providers.judge import verdict
from beacon.runner import admit
from beacon.runner.execute import run_cell
from beacon.runner.submitted import SubmittedJobs
from beacon.schemas.events import CellScheduled, ProducerInfo, encode
from beacon.schemas.topics import Topics

log = logs.get("beacon.runner.worker")


class Window:
    """Cells taken but not committed, per partition, in offset order."""

    def __init__(self) -> None:
        self.pending: dict[TopicPartition, dict[int, asyncio.Task[None] | None]] = {}

    def __len__(self) -> int:
        return sum(len(p) for p in self.pending.values())

    def add(self, tp: TopicPartition, offset: int, task: asyncio.Task[None] | None) -> None:
        self.pending.setdefault(tp, {})[offset] = task  # None: nothing to run (dead-lettered)

    def tasks(self, partitions: Iterable[TopicPartition] | None = None) -> list[asyncio.Task[None]]:
        tps = self.pending.keys() if partitions is None else [tp for tp in partitions if tp in self.pending]
        return [t for tp in tps for t in self.pending[tp].values() if t is not None and not t.done()]

    def committable(self) -> dict[TopicPartition, int]:
        """Pop each partition's finished prefix; return the offsets to commit."""
        out = {}
        for tp, cells in self.pending.items():
            last = None
            for offset in sorted(cells):
                task = cells[offset]
                if task is not None and not task.done():
                    break
                if task is not None and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]  # an unacknowledged emit: crash, redeliver
                last = offset
                del cells[offset]
            if last is not None:
                out[tp] = last + 1
        return out

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self.pending.pop(tp, None)


class Worker:
    """Its clients (a consumer of the region's work topic, a producer, the model endpoints) are made in
    bootstrap.py and handed in, so a test can hand it fakes."""

    def __init__(
        self,
        region: str,
        names: Topics,
        group: str,
        window_size: int,
        info: ProducerInfo,
        consumer: Any,
        producer: Any,
        endpoints: Endpoints,
        jobs: SubmittedJobs,
        keys: ServiceKeys,
    ) -> None:
        self.keys = keys  # signs its results as this region's runner; checks the cells' signatures
        self.region = region
        self.names = names
        self.group = group
        self.window_size = window_size
        self.info = info
        self.consumer = consumer  # AIOKafkaConsumer (read_committed, the region's runner group)
        self.producer = producer  # AIOKafkaProducer (acks=all, idempotent)
        self.endpoints = endpoints
        self.jobs = jobs
        self.window = Window()
        self.to_commit: dict[TopicPartition, int] = {}  # finished, not yet committed (a commit can fail)

    async def run_one(self, cell: CellScheduled) -> None:
        endpoint = self.endpoints.for_model(cell.model.id)
        question_id = cell.question.id if cell.question else None
        bound = {"job_id": cell.job_id, "model_id": cell.model.id, "question_id": question_id}
        with structlog.contextvars.bound_contextvars(**bound):
            async with endpoint.slots:
                event = await run_cell(cell, endpoint.provider, self.info)
            judge = self.endpoints.judge()
            if judge is not None and event.status == "completed" and event.answer and event.answer.strip():
                async with judge.slots:
                    event = event.model_copy(
                        update={"judgement": await verdict(judge.provider, cell.prompt, event.answer)}
                    )
            event = self.keys.signer.sign(event)
            await kafka.send(self.producer, self.names.executions_completed, encode(event), key=event.key.encode())
            metrics.EVENTS_PRODUCED.labels(self.names.executions_completed).inc()
            log.info("cell_done", status=event.status, classification=event.classification.label)

    async def take(self, record: ConsumerRecord) -> None:
        tp = TopicPartition(record.topic, record.partition)
        try:
            cell = kafka.read_event(record, CellScheduled, trust=self.keys.trust)
        except kafka.Poison as exc:
            await kafka.dead_letter(self.producer, record, str(exc), consumer=self.group)
            self.window.add(tp, record.offset, None)
            return
        refused = admit.refusal(cell, record.key, self.region, await self.jobs.get(cell.job_id))
        if refused is not None:
            reason, why = refused
            await kafka.dead_letter(self.producer, record, f"refused ({reason}): {why}", consumer=self.group)
            self.window.add(tp, record.offset, None)
            return
        self.window.add(tp, record.offset, asyncio.ensure_future(self.run_one(cell)))

    async def commit(self) -> None:
        self.to_commit.update(self.window.committable())
        if not self.to_commit:
            return
        try:
            await self.consumer.commit(self.to_commit)
            self.to_commit = {}
        except CommitFailedError as exc:  # the group moved on; those cells will be redelivered
            log.warning("commit_failed", error=str(exc))
            self.to_commit = {}
        except Exception as exc:
            if not kafka.is_transient(exc):
                raise
            # The coordinator is moving or away: keep the offsets and commit them on a later round.
            log.warning("commit_deferred", error=kafka.describe(exc))

    async def run(self) -> None:
        worker = self

        class FinishBeforeHandingOver(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
                tasks = worker.window.tasks(revoked)
                if tasks:
                    await asyncio.wait(tasks)
                await worker.commit()
                worker.window.forget(revoked)

            async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
                pass

        self.consumer.subscribe([self.names.work(self.region)], listener=FinishBeforeHandingOver())
        await self.producer.start()
        await self.jobs.start()
        await self.consumer.start()
        log.info("worker_started", group=self.group, window=self.window_size)
        try:
            while True:
                took = 0
                free = self.window_size - len(self.window)
                if free > 0:
                    busy = bool(self.window.tasks())
                    batch = await self.consumer.getmany(timeout_ms=50 if busy else 500, max_records=free)
                    for records in batch.values():
                        for record in records:
                            await self.take(record)
                            took += 1
                if not took and self.window.tasks():  # nothing new to start: wait for a cell to finish
                    await asyncio.wait(self.window.tasks(), timeout=0.5, return_when=asyncio.FIRST_COMPLETED)
                await self.commit()
        finally:
            # Stopping (a restart after a Kafka failure, or shutdown): cells in flight are not committed,
            # so they are delivered again; cancel them rather than let them run against a closed producer.
            for task in self.window.tasks():
                task.cancel()
            await self.consumer.stop()
            await self.jobs.stop()
            await self.producer.stop()
            await self.endpoints.close()
