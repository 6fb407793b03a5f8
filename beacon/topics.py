"""Topic declarations, once: names, partitions, replication and retention. Applied at service start."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from beacon import logs
from beacon.settings import Settings
from schemas.catalogue import REGIONS

log = logs.get("beacon.topics")

# History is the product: replay and reprocessing read these topics from the beginning.
KEEP_FOREVER = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}
# One record per key is all that matters (the latest): Kafka keeps that and drops the rest.
LATEST_PER_KEY = {"cleanup.policy": "compact"}


@dataclass(frozen=True)
class Topics:
    jobs_submitted: str
    executions_completed: str
    namespace: str

    @classmethod
    def for_settings(cls, settings: Settings) -> Topics:
        ns = settings.topic_namespace
        return cls(f"{ns}.jobs.submitted", f"{ns}.executions.completed", ns)

    def all(self) -> list[str]:
        """The topics that carry the product's facts (and have dead-letter topics)."""
        return [self.jobs_submitted, self.executions_completed]

    def work(self, region: str) -> str:
        """CellScheduled for one region: the cells its runners share, one record per cell."""
        return f"{self.namespace}.work.{region}"

    def expanded(self, region: str) -> str:
        """JobExpanded for one region, compacted by job_id: which jobs that region has already expanded."""
        return f"{self.namespace}.jobs.expanded.{region}"


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str] = field(default_factory=dict)


def declared(settings: Settings) -> list[TopicSpec]:
    topics = Topics.for_settings(settings)
    rf = settings.replication_factor
    config = {**KEEP_FOREVER, "min.insync.replicas": str(min(2, rf))}
    specs = [TopicSpec(name, settings.topic_partitions, rf, config) for name in topics.all()]
    # Dead letters are rare and read by people: one partition keeps them in arrival order.
    specs += [TopicSpec(dead_letter_topic(name), 1, rf, config) for name in topics.all()]
    for region in REGIONS:
        specs.append(TopicSpec(topics.work(region), settings.topic_partitions, rf, config))
        specs.append(TopicSpec(dead_letter_topic(topics.work(region)), 1, rf, config))
        specs.append(TopicSpec(topics.expanded(region), settings.topic_partitions, rf, {**config, **LATEST_PER_KEY}))
    return specs


async def ensure(settings: Settings) -> None:
    """Create the declared topics that are missing; existing ones are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in declared(settings) if t.name not in existing]
        if not missing:
            return
        response = await admin.create_topics(
            [NewTopic(t.name, t.partitions, t.replication_factor, topic_configs=t.config) for t in missing]
        )
        for result in response.to_object()["topic_errors"]:
            code = result["error_code"]
            # Another service may create it between our list and create: the same declaration, fine.
            if code not in (0, TopicAlreadyExistsError.errno):
                raise RuntimeError(
                    f"cannot create topic {result['topic']}: Kafka error {code} "
                    f"({result.get('error_message') or 'see the broker log'})"
                )
        log.info("topics_ready", created=[t.name for t in missing])
    finally:
        await admin.close()
