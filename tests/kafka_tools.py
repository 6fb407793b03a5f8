"""Direct Kafka access for tests: count, read and re-produce what is on a topic."""

from __future__ import annotations

import asyncio

from aiokafka.structs import ConsumerRecord

from beacon.infra import kafka
from beacon.infra.settings import Settings


def _reader(settings: Settings, topic: str) -> kafka.TopicReader:
    return kafka.TopicReader(settings, [topic], isolation_level="read_uncommitted")


async def _message_count(settings: Settings, topic: str) -> int:
    async with _reader(settings, topic) as reader:
        return sum((await reader.end_offsets()).values())


def message_count(settings: Settings, topic: str) -> int:
    """Offsets the topic has ever used (messages, plus markers on transactional topics; never shrinks)."""
    return asyncio.run(_message_count(settings, topic))


async def _read_all(settings: Settings, topic: str) -> list[ConsumerRecord]:
    async with _reader(settings, topic) as reader:
        return [r async for batch in reader.to_end() for r in batch]


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


# --- "nothing more happens": a consumer group has consumed everything (instead of sleeping) ---------


async def _unconsumed(settings: Settings, group: str, topics: list[str]) -> dict[str, int]:
    """Records on `topics` that `group` has not committed past, per "topic[partition]" (those with any).

    Records, not offsets: the marker a transaction leaves takes an offset too, so a group that has
    consumed a transactional topic to its end still sits one offset short of the end offset. So from
    each partition's committed offset (its beginning when the group has none, as auto_offset_reset
    says) to the end, the records are read, read_committed as the services read them, and counted."""
    admin = kafka.admin_client(settings)
    consumer = kafka.consumer(settings, group_id=None)
    try:
        await admin.start()
        await consumer.start()
        committed = await admin.list_consumer_group_offsets(group)  # before the ends: never optimistic
        tps = await kafka.partitions(consumer, topics)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        starts.update({tp: c.offset for tp, c in committed.items() if tp in starts and c.offset >= 0})
        behind = {tp: end for tp, end in ends.items() if starts[tp] < end}
        left: dict[str, int] = {}
        if behind:
            consumer.assign(list(behind))
            for tp in behind:
                consumer.seek(tp, starts[tp])
            async for records in kafka.read_until(consumer, behind):
                for r in records:
                    name = f"{r.topic}[{r.partition}]"
                    left[name] = left.get(name, 0) + 1
        return left
    finally:
        await consumer.stop()
        await admin.close()


async def _lag_zero_by(settings: Settings, group: str, topics: list[str], deadline: float) -> None:
    """Ask until nothing is left, or raise once the event loop's clock passes `deadline`."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            left: dict[str, int] | str = await _unconsumed(settings, group, topics)
        except Exception as exc:  # a broker moving or coming back (fault tests): ask again
            if not kafka.is_transient(exc):
                raise
            left = kafka.describe(exc)
        if left == {}:
            return
        if loop.time() > deadline:
            raise AssertionError(f"consumer group {group} still has records to consume on {topics}: {left}")
        await asyncio.sleep(0.1)


def wait_for_lag_zero(settings: Settings, group: str, topics: list[str], timeout: float = 60) -> None:
    """Wait until consumer group `group` has committed past every record now on `topics`. A group commits
    only once a record's effect is durable, so then everything it was given has taken effect."""

    async def wait() -> None:
        await _lag_zero_by(settings, group, list(topics), asyncio.get_running_loop().time() + timeout)

    asyncio.run(wait())


def wait_for_quiet(settings: Settings, regions: list[str], timeout: float = 60) -> None:
    """Wait until the pipeline has nothing left to do: the expanders of `regions` have decided every job
    on the jobs topic, then the runners of `regions` have finished every cell on their work topics, then
    the recorder has recorded every result — each stage after the one that feeds it, so a late cell or a
    duplicate result, if any could come, is in the table when this returns. `regions`: those with a
    runner (the groups of one that is not running never catch up)."""
    topics, groups = settings.topics, settings.groups
    stages = [(groups.expander(r), [topics.jobs_submitted]) for r in regions]
    stages += [(groups.runner(r), [topics.work(r)]) for r in regions]
    stages.append((groups.recorder, topics.all()))

    async def wait() -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        for group, names in stages:
            await _lag_zero_by(settings, group, names, deadline)

    asyncio.run(wait())
