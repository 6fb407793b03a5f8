"""Expander (one per region, inside `beacon runner`): consume JobSubmitted → decide (expand.decide, pure) →
in ONE Kafka transaction emit this region's CellScheduled records, a JobExpanded record and the consumed
offset. Its clients are made in bootstrap.py and handed in, so a test can hand it fakes.

Why this is the "no duplicate work" mechanism:
- The transaction makes "job expanded" and "job consumed" one fact: a crash either leaves neither (the
  job is consumed again, nothing was scheduled) or both (it is not consumed again). Consumers read
  with isolation_level=read_committed, so an aborted expansion is never seen.
- JobExpanded is kept in a compacted topic keyed by job_id. Whenever jobs-topic partitions are assigned
  to it, the expander catches up on that topic; a job already expanded by this region (a redelivery, or
  a resubmission of the same job) is skipped, so its cells are never scheduled, nor models called, twice.
- Cells then live on the region's work topic, spread over partitions, so several runner instances of
  the region share one job's cells (worker.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRebalanceListener
from aiokafka.structs import TopicPartition

from beacon.infra import kafka, logs
from beacon.infra.keys import ServiceKeys, TrustFile
from beacon.providers.routing import Routing
from beacon.runner import expand
from beacon.schemas.events import JobExpanded, JobSubmitted, ProducerInfo
from beacon.schemas.topics import Topics

log = logs.get("beacon.runner.expander")


class ExpandedJobs:
    """Which jobs this region has expanded (job_id → spec hash), read from the compacted topic by a
    kafka.TopicReader (no group: every instance reads it all)."""

    def __init__(self, reader: Any, trust: TrustFile) -> None:
        self.reader = reader
        self.trust = trust
        self.known: dict[str, str] = {}

    async def start(self) -> None:
        await self.reader.start()
        await self.catch_up()

    async def catch_up(self) -> None:
        """Read up to the last committed record, so a decision sees every expansion committed before it."""
        async for records in self.reader.to_end():
            for record in records:
                try:
                    done = kafka.read_event(record, JobExpanded, trust=self.trust)
                except kafka.Poison:
                    continue  # written only by expanders; a bad one cannot mark a job as done
                self.known[done.job_id] = done.spec_sha256

    async def stop(self) -> None:
        await self.reader.stop()


@dataclass
class Expander:
    region: str
    routing: Routing
    names: Topics
    group: str
    info: ProducerInfo
    consumer: Any  # AIOKafkaConsumer (read_committed, this region's expander group)
    producer: Any  # AIOKafkaProducer with a transactional id
    expanded: ExpandedJobs
    keys: ServiceKeys  # signs its cells and expansions as this region's runner; checks the jobs' signatures

    def decide(self, job: JobSubmitted) -> expand.Expansion:
        return expand.decide(
            job, self.region, self.expanded.known, self.routing, self.info, self.names, self.keys.signer.sign
        )

    async def run(self) -> None:
        expanded = self.expanded

        class CatchUpOnAssign(ConsumerRebalanceListener):
            """A job id always lands on the same partition of the jobs topic, so only the instance that
            owns that partition expands it. Catching up when partitions are assigned (including those
            another instance owned until now) is enough for the in-memory set to be complete."""

            async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
                await expanded.catch_up()

            async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
                pass

        self.consumer.subscribe([self.names.jobs_submitted], listener=CatchUpOnAssign())
        await self.expanded.start()
        await self.producer.start()
        await self.consumer.start()
        log.info("expander_started", group=self.group, known_jobs=len(self.expanded.known))
        try:
            while True:
                batch = await self.consumer.getmany(timeout_ms=1000, max_records=50)
                if batch:
                    await self.handle(batch)
        finally:
            await self.consumer.stop()
            await self.producer.stop()
            await self.expanded.stop()

    async def handle(self, batch: dict) -> None:
        expanded_now: dict[str, str] = {}
        async with self.producer.transaction():
            for records in batch.values():
                for record in records:
                    try:
                        job = kafka.read_event(record, JobSubmitted, trust=self.keys.trust)
                    except kafka.Poison as exc:
                        await kafka.dead_letter(
                            self.producer, record, str(exc), consumer=self.group, in_transaction=True
                        )
                        continue
                    if job.job_id in expanded_now:
                        continue  # the same job twice in one batch
                    decision = self.decide(job)
                    if decision.skipped not in (None, expand.NOT_THIS_REGION):
                        log.info(
                            "job_already_expanded",
                            job_id=job.job_id,
                            same_spec=decision.skipped == expand.ALREADY_EXPANDED,
                        )
                    for topic, key, value in decision.records:
                        await self.producer.send(topic, value, key=key)
                    if decision.records:
                        expanded_now[job.job_id] = job.spec_sha256
                        log.info("job_expanded", job_id=job.job_id, cells=decision.cells)
            offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
            await self.producer.send_offsets_to_transaction(offsets, self.group)
        self.expanded.known.update(expanded_now)  # committed: now it is a fact
