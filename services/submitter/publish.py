"""The submitter's only effect: JobSubmitted on the jobs topic, keyed by job_id, acknowledged by all replicas."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from beacon import kafka, logs, topics
from beacon.settings import Settings
from schemas.commands import JobSpec
from schemas.events import JobSubmitted, ProducerInfo, encode, now
from services.submitter.decide import job_submitted

log = logs.get("beacon.submitter")


@dataclass(frozen=True)
class Submitted:
    job_id: str
    expected_executions: int

    def as_json(self) -> dict[str, object]:
        return {"job_id": self.job_id, "expected_executions": self.expected_executions}


class Publisher:
    """Holds one producer for the life of the HTTP service; the CLI uses it for a single job."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = topics.Topics.for_settings(settings).jobs_submitted
        self.producer: AIOKafkaProducer | None = None  # made in start(): aiokafka needs the running loop
        self.info = ProducerInfo(service="submitter", instance=kafka.instance_id("submitter"))

    async def start(self) -> None:
        await topics.ensure(self.settings)
        self.producer = kafka.producer(self.settings)
        await self.producer.start()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def submit(self, spec: JobSpec) -> Submitted:
        event: JobSubmitted = job_submitted(
            spec, now=now(), default_deadline_seconds=self.settings.default_deadline_seconds, producer=self.info
        )
        assert self.producer is not None, "Publisher.start() first"
        await self.producer.send_and_wait(self.topic, encode(event), key=event.job_id.encode())
        log.info("job_submitted", job_id=event.job_id, expected_executions=event.expected_executions)
        return Submitted(event.job_id, event.expected_executions)


async def submit_once(settings: Settings, spec: JobSpec) -> Submitted:
    publisher = Publisher(settings)
    await publisher.start()
    try:
        return await publisher.submit(spec)
    finally:
        await publisher.stop()
