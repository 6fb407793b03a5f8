"""Expander (one per region, inside `beacon runner`): consume JobSubmitted → decide → in ONE Kafka
transaction emit this region's CellScheduled records, a JobExpanded record and the consumed offset.

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

from aiokafka import AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.structs import TopicPartition

from beacon.infra import kafka, logs
from beacon.infra.settings import Settings
from beacon.providers.routing import Routing
from beacon.runner import expand
from beacon.schemas.events import JobExpanded, JobSubmitted, ProducerInfo, encode

log = logs.get("beacon.runner.expander")


class ExpandedJobs:
    """Which jobs this region has expanded (job_id → spec hash), read from the compacted topic."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self.known: dict[str, str] = {}
        # No group: every instance reads it all. A short fetch wait: catching up must not idle on markers.
        self.reader = kafka.TopicReader(settings, [topic], fetch_max_wait_ms=10)

    async def start(self) -> None:
        await self.reader.start()
        await self.catch_up()

    async def catch_up(self) -> None:
        """Read up to the last committed record, so a decision sees every expansion committed before it."""
        async for records in self.reader.to_end():
            for record in records:
                try:
                    done = kafka.read_event(record, JobExpanded)
                except kafka.Poison:
                    continue  # written only by expanders; a bad one cannot mark a job as done
                self.known[done.job_id] = done.spec_sha256

    async def stop(self) -> None:
        await self.reader.stop()


class Expander:
    def __init__(self, settings: Settings, region: str, routing: Routing | None = None) -> None:
        self.settings = settings
        self.region = region
        self.routing = routing or Routing.simulated()
        self.names = settings.topics
        self.group = settings.groups.expander(region)
        self.info = ProducerInfo(service="runner", region=region, instance=kafka.instance_id(f"expander-{region}"))
        self.expanded = ExpandedJobs(settings, self.names.expanded(region))

    async def decide(self, job: JobSubmitted) -> list[tuple[str, bytes, bytes]]:
        """What to emit for one job: (topic, key, value) records, none when there is nothing to do."""
        if expand.region_of(job, self.region) is None:
            return []
        if job.job_id in self.expanded.known:
            same = self.expanded.known[job.job_id] == job.spec_sha256
            log.info("job_already_expanded", job_id=job.job_id, same_spec=same)
            return []
        cells = expand.cells(job, self.region, self.info)
        # Which provider each model goes to here, and which have no route of their own: the recorder
        # projects this, so `beacon status` shows it while the job runs, not only at its deadline.
        routes = {m.id: self.routing.route(self.region, m.id).provider for m in job.models}
        unrouted = [m.id for m in job.models if not self.routing.has_own_route(self.region, m.id)]
        done = JobExpanded(
            producer=self.info,
            job_id=job.job_id,
            region=self.region,
            spec_sha256=job.spec_sha256,
            cells=len(cells),
            providers=routes,
            unrouted=unrouted,
        )
        out = [(self.names.work(self.region), c.key.encode(), encode(c)) for c in cells]
        out.append((self.names.expanded(self.region), job.job_id.encode(), encode(done)))
        return out

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

        consumer = kafka.consumer(self.settings, group_id=self.group)
        consumer.subscribe([self.names.jobs_submitted], listener=CatchUpOnAssign())
        # A unique transactional id per process: a restarted expander never has to wait for the previous
        # one's transaction to time out. The price is no zombie fencing across instances; a stalled zombie
        # could at worst schedule cells twice, and the recorder's unique index keeps the rows exact.
        txn_id = f"{self.group}.{self.info.instance}"
        producer: AIOKafkaProducer = kafka.producer(self.settings, transactional_id=txn_id)
        await self.expanded.start()
        await producer.start()
        await consumer.start()
        log.info("expander_started", group=self.group, known_jobs=len(self.expanded.known))
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=1000, max_records=50)
                if batch:
                    await self.handle(batch, producer)
        finally:
            await consumer.stop()
            await producer.stop()
            await self.expanded.stop()

    async def handle(self, batch: dict, producer: AIOKafkaProducer) -> None:
        expanded_now: dict[str, str] = {}
        async with producer.transaction():
            for records in batch.values():
                for record in records:
                    try:
                        job = kafka.read_event(record, JobSubmitted)
                    except kafka.Poison as exc:
                        await kafka.dead_letter(producer, record, str(exc), consumer=self.group, in_transaction=True)
                        continue
                    if job.job_id in expanded_now:
                        continue  # the same job twice in one batch
                    out = await self.decide(job)
                    for topic, key, value in out:
                        await producer.send(topic, value, key=key)
                    if out:
                        expanded_now[job.job_id] = job.spec_sha256
                        log.info("job_expanded", job_id=job.job_id, cells=len(out) - 1)
            offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
            await producer.send_offsets_to_transaction(offsets, self.group)
        self.expanded.known.update(expanded_now)  # committed: now it is a fact
