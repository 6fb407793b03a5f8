"""`beacon runner --region R`: consume JobSubmitted → run this region's cells → emit → commit.

The job's offset is committed only after every cell's ExecutionCompleted is acknowledged by Kafka
(acks=all, idempotent producer). A crash before that means the job is delivered again; the recorder's
unique index keeps the table exact.
"""

from __future__ import annotations

import asyncio

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.structs import TopicPartition

from beacon import kafka, logs, topics
from beacon.settings import Settings
from schemas.catalogue import REGIONS
from schemas.events import JobSubmitted, ProducerInfo, encode
from services.runner import expand
from services.runner.execute import run_cell
from services.runner.providers import Endpoints
from services.runner.routing import Routing

log = logs.get("beacon.runner")


def group_id(settings: Settings, region: str) -> str:
    # One consumer group per region: every region reads every job.
    return f"{settings.topic_namespace}.runner.{region}"


async def run_job(
    job: JobSubmitted,
    region: str,
    endpoints: Endpoints,
    producer: AIOKafkaProducer,
    topic: str,
    info: ProducerInfo,
    concurrency: int,
) -> int:
    """Run this region's cells with at most `concurrency` model calls in flight in all, and no more than
    each endpoint's own limit to any one endpoint; then wait for every ack."""
    todo = iter(expand.cells(job, region))
    acks: list[asyncio.Future] = []

    async def worker() -> None:
        for cell in todo:  # workers share one iterator: no task per cell, no unbounded queue
            endpoint = endpoints.for_model(cell.model.id)
            with structlog.contextvars.bound_contextvars(model_id=cell.model.id, question_id=cell.question_id):
                async with endpoint.slots:
                    event = await run_cell(job, cell, endpoint.provider, info)
                acks.append(await producer.send(topic, encode(event), key=event.key.encode()))
                log.info("cell_done", status=event.status, classification=event.classification.label)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await asyncio.gather(*acks)
    return len(acks)


def load_routing(settings: Settings) -> Routing:
    if settings.routing_file is None:
        return Routing.simulated(settings.simulated_latency_ms)
    return Routing.from_file(settings.routing_file)


async def run(settings: Settings, region: str) -> None:
    if region not in REGIONS:
        raise ValueError(f"unknown region {region!r}; known: {', '.join(REGIONS)}")
    names = topics.Topics.for_settings(settings)
    await topics.ensure(settings)
    endpoints = Endpoints(load_routing(settings), region, REGIONS[region].display)
    info = ProducerInfo(service="runner", region=region, instance=kafka.instance_id(f"runner-{region}"))
    consumer = kafka.consumer(
        settings,
        names.jobs_submitted,
        group_id=group_id(settings, region),
        # A job may take long; the group must not evict us between two polls while it runs.
        max_poll_interval_ms=3_600_000,
    )
    producer = kafka.producer(settings)
    await producer.start()
    await consumer.start()
    structlog.contextvars.bind_contextvars(region=region)
    log.info("runner_started", topic=names.jobs_submitted, group=group_id(settings, region))
    try:
        async for record in consumer:
            try:
                job = kafka.read_event(record, JobSubmitted)
            except kafka.Poison as exc:
                await kafka.dead_letter(producer, record, str(exc), consumer=group_id(settings, region))
            else:
                with structlog.contextvars.bound_contextvars(job_id=job.job_id):
                    if expand.region_of(job, region) is None:
                        log.info("job_skipped", reason="region not in job")
                    else:
                        emitted = await run_job(
                            job,
                            region,
                            endpoints,
                            producer,
                            names.executions_completed,
                            info,
                            settings.runner_concurrency,
                        )
                        log.info("job_done", cells=emitted)
            await consumer.commit({TopicPartition(record.topic, record.partition): record.offset + 1})
    finally:
        await consumer.stop()
        await producer.stop()
        await endpoints.close()
