"""Direct Kafka access for tests: count, read and re-produce what is on a topic."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from beacon import kafka
from beacon.settings import Settings


async def _reader(settings: Settings, topic: str) -> tuple[AIOKafkaConsumer, dict]:
    consumer = kafka.consumer(settings, group_id=None, isolation_level="read_uncommitted")
    await consumer.start()
    tps = await kafka.partitions(consumer, [topic])
    return consumer, (await consumer.end_offsets(tps) if tps else {})


async def _message_count(settings: Settings, topic: str) -> int:
    consumer, ends = await _reader(settings, topic)
    await consumer.stop()
    return sum(ends.values())


def message_count(settings: Settings, topic: str) -> int:
    """Offsets the topic has ever used (messages, plus markers on transactional topics; never shrinks)."""
    return asyncio.run(_message_count(settings, topic))


async def _read_all(settings: Settings, topic: str) -> list[ConsumerRecord]:
    consumer, ends = await _reader(settings, topic)
    try:
        consumer.assign(list(ends))
        if ends:
            await consumer.seek_to_beginning(*ends)
        return [r async for batch in kafka.read_until(consumer, ends) for r in batch]
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
