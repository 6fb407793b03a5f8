"""Kafka clients configured the one way Beacon uses them.

Producers are idempotent with acks=all, so a retried send never writes twice and an acknowledged
event survives a broker loss. Consumers never auto-commit: each service commits an offset only after
the effect of the message is durable (invariant 2), and starts from the earliest offset when its group
is new, so a job submitted before a runner first started is not skipped.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord, TopicPartition
from pydantic import BaseModel, ValidationError

from beacon import logs, metrics
from beacon.settings import Settings
from beacon.topics import dead_letter_topic
from schemas.events import parse_event

log = logs.get("beacon.kafka")

# Larger than any valid event; bigger messages are dead-lettered, not parsed.
MAX_EVENT_BYTES = 1_000_000


def instance_id(service: str) -> str:
    return f"{service}@{socket.gethostname()}:{os.getpid()}"


def producer(settings: Settings, **overrides: object) -> AIOKafkaProducer:
    options: dict[str, object] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 5,
        "max_request_size": MAX_EVENT_BYTES * 2,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def consumer(settings: Settings, *topics: str, group_id: str, **overrides: object) -> AIOKafkaConsumer:
    options: dict[str, object] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


async def dead_letter(producer: AIOKafkaProducer, record: ConsumerRecord, error: str, consumer: str) -> None:
    """Park a message that can never be processed, with its original bytes and where it came from.
    Inside a transaction it becomes visible when the caller commits, together with the offsets."""
    headers = [
        ("beacon.error", error[:4000].encode()),
        ("beacon.consumer", consumer.encode()),
        ("beacon.source.topic", record.topic.encode()),
        ("beacon.source.partition", str(record.partition).encode()),
        ("beacon.source.offset", str(record.offset).encode()),
    ]
    await producer.send_and_wait(dead_letter_topic(record.topic), value=record.value, key=record.key, headers=headers)
    metrics.DEAD_LETTERS.labels(record.topic).inc()
    log.warning(
        "dead_lettered", topic=record.topic, partition=record.partition, offset=record.offset, error=error[:300]
    )


E = TypeVar("E", bound=BaseModel)


class Poison(ValueError):
    """A message that no retry can make valid: it goes to the dead-letter topic."""


def read_event(record: ConsumerRecord, *accepted: type[E]) -> E:
    """Decode one record into one of the accepted event types, or raise Poison saying why not."""
    size = len(record.value or b"")
    if size > MAX_EVENT_BYTES:
        raise Poison(f"message of {size} bytes exceeds the {MAX_EVENT_BYTES}-byte limit")
    try:
        event = parse_event(record.value or b"")
    except ValidationError as exc:
        raise Poison(f"not a valid event: {exc}") from None
    if not isinstance(event, accepted):
        raise Poison(f"{event.event_type} does not belong on {record.topic}")
    return event


# --- reading a topic from a position to its current end (replays, catch-ups, tools) ----------------


async def partitions(consumer: AIOKafkaConsumer, topics: list[str], wait_s: float = 30.0) -> list[TopicPartition]:
    """Every partition of `topics`. A topic created a moment ago (by another service) may not be in the
    brokers' metadata yet: ask again until it is, rather than act as if it had no partitions."""
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        await consumer._client.force_metadata_update()
        found = {t: sorted(consumer.partitions_for_topic(t) or []) for t in topics}
        missing = [t for t, parts in found.items() if not parts]
        if not missing:
            return [TopicPartition(t, p) for t, parts in found.items() for p in parts]
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"topics {missing} have no partitions in the cluster's metadata after {wait_s:.0f} s")
        await asyncio.sleep(0.2)


async def read_until(
    consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]
) -> AsyncIterator[list[ConsumerRecord]]:
    """Yield batches until every partition's position reaches its end offset. Positions, not record
    offsets, decide: transaction markers take offsets too."""
    while pending := [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
        batch = await consumer.getmany(*pending, timeout_ms=500)
        records = [r for recs in batch.values() for r in recs]
        if records:
            yield records
