"""`beacon dlq list` and `beacon dlq replay`: read the dead-letter topics, and send their messages back.

Replay uses its own consumer group, so each dead letter is re-sent once, however often replay runs.
Several consumers may park the same poison message (every region's runner reads the jobs topic); a
replay re-sends each source message once, identified by its source topic, partition and offset.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition

from beacon import kafka
from beacon.settings import Settings
from beacon.topics import Topics, dead_letter_topic
from schemas.catalogue import REGIONS


@dataclass(frozen=True)
class DeadLetter:
    dlq_topic: str
    dlq_offset: int
    source_topic: str
    source_partition: int
    source_offset: int
    consumer: str
    error: str
    key: bytes | None
    value: bytes

    @classmethod
    def of(cls, record: ConsumerRecord) -> DeadLetter:
        h = {name: value.decode(errors="replace") for name, value in record.headers}
        return cls(
            record.topic,
            record.offset,
            h.get("beacon.source.topic", "?"),
            int(h.get("beacon.source.partition", -1)),
            int(h.get("beacon.source.offset", -1)),
            h.get("beacon.consumer", "?"),
            h.get("beacon.error", ""),
            record.key,
            record.value or b"",
        )

    @property
    def source(self) -> tuple[str, int, int]:
        return (self.source_topic, self.source_partition, self.source_offset)

    def as_json(self) -> dict[str, object]:
        return {
            "dlq": f"{self.dlq_topic}@{self.dlq_offset}",
            "source": f"{self.source_topic}[{self.source_partition}]@{self.source_offset}",
            "consumer": self.consumer,
            "error": self.error,
            "bytes": len(self.value),
            "preview": self.value[:120].decode(errors="replace"),
        }


def dlq_topics(settings: Settings) -> list[str]:
    names = Topics.for_settings(settings)
    return [dead_letter_topic(t) for t in [*names.all(), *(names.work(r) for r in REGIONS)]]


async def _read(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> list[DeadLetter]:
    return [
        DeadLetter.of(r) async for batch in kafka.read_until(consumer, await consumer.end_offsets(tps)) for r in batch
    ]


async def _assign(consumer: AIOKafkaConsumer, settings: Settings) -> list[TopicPartition]:
    tps = await kafka.partitions(consumer, dlq_topics(settings))
    if tps:
        consumer.assign(tps)
    return tps


async def list_all(settings: Settings) -> list[DeadLetter]:
    consumer = kafka.consumer(settings, group_id=None)
    await consumer.start()
    try:
        if not (tps := await _assign(consumer, settings)):
            return []
        await consumer.seek_to_beginning(*tps)
        return await _read(consumer, tps)
    finally:
        await consumer.stop()


async def replay(settings: Settings, dry_run: bool = False) -> list[DeadLetter]:
    """Re-send every dead letter not replayed before to its source topic; returns what was re-sent."""
    group = f"{settings.topic_namespace}.dlq-replay"
    consumer = kafka.consumer(settings, group_id=group)
    producer = kafka.producer(settings)
    await consumer.start()
    await producer.start()
    try:
        if not (tps := await _assign(consumer, settings)):
            return []
        for tp in tps:  # resume after the last replay; from the beginning the first time
            committed = await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)
        letters = await _read(consumer, tps)
        sent: dict[tuple[str, int, int], DeadLetter] = {}
        for letter in letters:
            sent.setdefault(letter.source, letter)
        if dry_run:
            return list(sent.values())
        acks = [
            await producer.send(
                letter.source_topic,
                letter.value,
                key=letter.key,
                headers=[("beacon.replayed-from", f"{letter.dlq_topic}@{letter.dlq_offset}".encode())],
            )
            for letter in sent.values()
        ]
        await asyncio.gather(*acks)
        await consumer.commit({tp: await consumer.position(tp) for tp in tps})
        return list(sent.values())
    finally:
        await consumer.stop()
        await producer.stop()
