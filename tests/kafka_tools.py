"""Direct Kafka access for tests: count, read and re-produce what is on a topic."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition

from beacon import kafka
from beacon.settings import Settings


async def _end_offsets(settings: Settings, topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()  # the topic may be new to this client
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        return await consumer.end_offsets(tps) if tps else {}
    finally:
        await consumer.stop()


def message_count(settings: Settings, topic: str) -> int:
    """How many messages the topic has ever held (sum of end offsets; retention keeps them all)."""
    return sum(asyncio.run(_end_offsets(settings, topic)).values())


async def _read_all(settings: Settings, topic: str) -> list[ConsumerRecord]:
    ends = await _end_offsets(settings, topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        todo = {tp: end for tp, end in ends.items() if end > 0}
        if not todo:
            return []
        consumer.assign(list(todo))
        await consumer.seek_to_beginning(*todo)
        while todo:
            batch = await consumer.getmany(timeout_ms=1000)
            for recs in batch.values():
                records.extend(recs)
            # Positions, not record offsets: transaction markers take offsets too.
            todo = {tp: end for tp, end in todo.items() if await consumer.position(tp) < end}
        return records
    finally:
        await consumer.stop()


def read_all(settings: Settings, topic: str) -> list[ConsumerRecord]:
    return asyncio.run(_read_all(settings, topic))


async def _produce(settings: Settings, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    producer = kafka.producer(settings)
    await producer.start()
    try:
        acks = [await producer.send(topic, value, key=key) for key, value in messages]
        await asyncio.gather(*acks)
    finally:
        await producer.stop()


def produce(settings: Settings, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    asyncio.run(_produce(settings, topic, messages))
