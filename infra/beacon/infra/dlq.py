"""`beacon dlq list` and `beacon dlq replay`: read the dead-letter topics, and send their messages back.

Replay uses its own consumer group, so each dead letter is re-sent once, however often replay runs.
Several consumers may park the same poison message (every region's runner reads the jobs topic); a
replay re-sends each source message once, identified by its source topic, partition and offset.

Both stream: a dead letter is shown (or re-sent) as it is read, so a dead-letter topic of any size fits in
memory; replay keeps only the set of source keys it has re-sent. Dead letters are hostile input like
anything else on a topic: a header may be missing, repeated, null, not UTF-8 or not a number. Such a header
is shown as '?' (and its number as None) and never raises. A dead letter goes back only to the topic its
dead-letter topic was made for (`<topic>.dlq` → `<topic>`), whatever its source-topic header claims, so a
forged header cannot make replay write to another topic.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition

from beacon.infra import kafka
from beacon.infra.settings import Settings
from beacon.schemas.topics import dead_letter_topic

UNKNOWN = "?"
MAX_HEADER_CHARS = kafka.MAX_ERROR_HEADER_CHARS  # what kafka.dead_letter writes at most
ACK_BATCH = 500  # sends awaited (and offsets committed) this many at a time


def _text(value: object) -> str | None:
    if not isinstance(value, bytes | bytearray):
        return None
    return bytes(value[:MAX_HEADER_CHARS]).decode(errors="replace")


def _number(text: str | None) -> int | None:
    """A partition or offset: ASCII digits only (str.isdigit alone takes '²', which int() refuses)."""
    text = (text or "").strip()
    if not text or not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    return int(text)


@dataclass(frozen=True)
class DeadLetter:
    dlq_topic: str
    dlq_partition: int
    dlq_offset: int
    source_topic: str  # as the header says; UNKNOWN when it is missing or unreadable
    source_partition: int | None
    source_offset: int | None
    consumer: str
    error: str
    key: bytes | None
    value: bytes

    @classmethod
    def of(cls, record: ConsumerRecord) -> DeadLetter:
        headers: dict[str, str | None] = {}
        for item in record.headers or ():
            try:
                name, value = item
            except (TypeError, ValueError):
                continue
            if isinstance(name, str) and name not in headers:  # the first of repeated headers counts
                headers[name] = _text(value)
        return cls(
            dlq_topic=record.topic,
            dlq_partition=record.partition,
            dlq_offset=record.offset,
            source_topic=headers.get("beacon.source.topic") or UNKNOWN,
            source_partition=_number(headers.get("beacon.source.partition")),
            source_offset=_number(headers.get("beacon.source.offset")),
            consumer=headers.get("beacon.consumer") or UNKNOWN,
            error=headers.get("beacon.error") or "",
            key=record.key,
            value=record.value or b"",
        )

    @property
    def target(self) -> str | None:
        """The topic a replay sends it to: the one its dead-letter topic was made for."""
        return self.dlq_topic.removesuffix(".dlq") if self.dlq_topic.endswith(".dlq") else None

    @property
    def source(self) -> tuple[str, int, int] | tuple[str, str]:
        """What identifies the original message, for replay's dedup. Without a readable partition and offset
        the dead letter stands for itself (two unreadable letters are not one message)."""
        if self.source_partition is None or self.source_offset is None:
            return ("dlq", self.dlq_where)
        return (self.source_topic, self.source_partition, self.source_offset)

    @property
    def dlq_where(self) -> str:
        return f"{self.dlq_topic}[{self.dlq_partition}]@{self.dlq_offset}"

    @property
    def source_text(self) -> str:
        partition = UNKNOWN if self.source_partition is None else self.source_partition
        offset = UNKNOWN if self.source_offset is None else self.source_offset
        return f"{self.source_topic}[{partition}]@{offset}"

    @property
    def first_error_line(self) -> str:
        lines = self.error.splitlines()
        return lines[0] if lines else ""

    def as_json(self) -> dict[str, object]:
        return {
            "dlq": self.dlq_where,
            "source": self.source_text,
            "consumer": self.consumer,
            "error": self.error,
            "bytes": len(self.value),
            "preview": self.value[:120].decode(errors="replace"),
        }


@dataclass(frozen=True)
class Replayed:
    letter: DeadLetter
    outcome: Literal["sent", "would-send", "duplicate", "unreplayable"]
    why: str = ""


def dlq_topics(settings: Settings) -> list[str]:
    names = settings.topics
    regions = settings.catalogue.regions  # the regions jobs can name: their runners' work topics
    return [dead_letter_topic(t) for t in [*names.all(), *(names.work(r) for r in regions)]]


async def _read(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> AsyncIterator[DeadLetter]:
    async for batch in kafka.read_until(consumer, await consumer.end_offsets(tps)):
        for record in batch:
            yield DeadLetter.of(record)


async def _assign(consumer: AIOKafkaConsumer, settings: Settings) -> list[TopicPartition]:
    # existing_only: a dead-letter topic nobody has made yet holds no dead letters
    tps = await kafka.partitions(consumer, dlq_topics(settings), existing_only=True)
    if tps:
        consumer.assign(tps)
    return tps


async def list_all(settings: Settings) -> AsyncIterator[DeadLetter]:
    """Every dead letter, as it is read."""
    async with kafka.TopicReader(settings, dlq_topics(settings), existing_only=True) as reader:
        async for batch in reader.to_end():
            for record in batch:
                yield DeadLetter.of(record)


async def replay(settings: Settings, dry_run: bool = False) -> AsyncIterator[Replayed]:
    """Re-send every dead letter not replayed before to its source topic, as it is read; yields what
    became of each. The group's offsets move on after the sends are acknowledged (never with dry_run)."""
    group = settings.groups.dlq_replay
    consumer = kafka.consumer(settings, group_id=group)
    producer = kafka.producer(settings)
    await consumer.start()
    await producer.start()
    try:
        if not (tps := await _assign(consumer, settings)):
            return
        for tp in tps:  # resume after the last replay; from the beginning the first time
            committed = await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)
        seen: set[tuple[object, ...]] = set()
        pending: list[asyncio.Future] = []
        done: dict[TopicPartition, int] = {}  # per dead-letter partition: the offset after the last one handled

        async def settle() -> None:
            """Wait for the sends so far, then let the group move past what they (and the skips) covered."""
            await asyncio.gather(*pending)
            pending.clear()
            if done and not dry_run:
                await consumer.commit(dict(done))

        async for letter in _read(consumer, tps):
            if letter.source in seen:
                outcome = Replayed(letter, "duplicate")
            elif (target := letter.target) is None:
                outcome = Replayed(letter, "unreplayable", f"{letter.dlq_topic} is not a dead-letter topic")
            elif dry_run:
                outcome = Replayed(letter, "would-send")
            else:
                pending.append(
                    await producer.send(
                        target,
                        letter.value,
                        key=letter.key,
                        headers=[("beacon.replayed-from", letter.dlq_where.encode())],
                    )
                )
                claimed = letter.source_topic
                outcome = Replayed(letter, "sent", "" if claimed in (target, UNKNOWN) else f"its header says {claimed}")
            seen.add(letter.source)
            done[TopicPartition(letter.dlq_topic, letter.dlq_partition)] = letter.dlq_offset + 1
            yield outcome
            if len(pending) >= ACK_BATCH:
                await settle()
        await settle()
        if not dry_run:  # every letter handled: the positions (past transaction markers too) are the new start
            await consumer.commit({tp: await consumer.position(tp) for tp in tps})
    finally:
        await consumer.stop()
        await producer.stop()
