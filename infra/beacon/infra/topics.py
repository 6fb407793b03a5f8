"""Topic declarations, once: partitions, replication and retention (the names: beacon.schemas.topics).
Applied at service start."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAlreadyExistsError, TopicAuthorizationFailedError

from beacon.infra import kafka, logs
from beacon.infra.settings import Settings
from beacon.schemas.topics import KEEP_FOREVER, LATEST_PER_KEY, dead_letter_topic

# One partition per dead-letter topic: people read them in arrival order.
DEAD_LETTER_PARTITIONS = 1

log = logs.get("beacon.infra.topics")

# KEEP_FOREVER (history is the product) and LATEST_PER_KEY (compaction) live in beacon.schemas.topics, beside
# the names, so the AsyncAPI document describes the same policies this module applies.


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str] = field(default_factory=dict)


def declared(settings: Settings, regions: Iterable[str] = (), work: bool = True) -> list[TopicSpec]:
    """The product's topics and, for each region given, its work and expansion topics (a runner declares its
    own region's: regions come from the catalogue, which runners do not need). Without `work`, no work topics:
    the central cluster of the regional topology, where no runner runs, holds only the expansions."""
    topics = settings.topics
    rf = settings.replication_factor
    config = {**KEEP_FOREVER, "min.insync.replicas": str(min(2, rf))}
    specs = [TopicSpec(name, settings.topic_partitions, rf, config) for name in topics.all()]
    # Dead letters are rare and read by people: one partition keeps them in arrival order.
    specs += [TopicSpec(dead_letter_topic(name), DEAD_LETTER_PARTITIONS, rf, config) for name in topics.all()]
    for region in regions:
        if work:
            specs.append(TopicSpec(topics.work(region), settings.topic_partitions, rf, config))
            specs.append(TopicSpec(dead_letter_topic(topics.work(region)), DEAD_LETTER_PARTITIONS, rf, config))
        specs.append(TopicSpec(topics.expanded(region), settings.topic_partitions, rf, {**config, **LATEST_PER_KEY}))
        specs.append(
            TopicSpec(dead_letter_topic(topics.expanded(region)), DEAD_LETTER_PARTITIONS, rf, config)
        )  # the recorder's
    return specs


async def ensure(settings: Settings, regions: Iterable[str] = (), specs: Iterable[TopicSpec] | None = None) -> None:
    """Create the declared topics (or those of `specs`) that are missing; existing ones are left as they are."""
    await kafka.authenticate(settings)  # every service's first Kafka call: a wrong password stops it here
    admin = kafka.admin_client(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = declared(settings, regions) if specs is None else list(specs)
        missing = [t for t in wanted if t.name not in existing]
        if not missing:
            return
        response = await admin.create_topics(
            [NewTopic(t.name, t.partitions, t.replication_factor, topic_configs=t.config) for t in missing]
        )
        refused = []
        for result in response.to_object()["topic_errors"]:
            code = result["error_code"]
            # A service principal sees (DESCRIBE) only its own topics and creates none: the admin made them
            # (beacon.deploy.local.access); ones it may not see are someone else's, not missing.
            if code == TopicAuthorizationFailedError.errno:
                refused.append(result["topic"])
                continue
            # Another service may create it between our list and create: the same declaration, fine.
            if code not in (0, TopicAlreadyExistsError.errno):
                raise RuntimeError(
                    f"cannot create topic {result['topic']}: Kafka error {code} "
                    f"({result.get('error_message') or 'see the broker log'})"
                )
        created = [t.name for t in missing if t.name not in refused]
        if created:
            log.info("topics_ready", created=created)
    finally:
        await admin.close()
