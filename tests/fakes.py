"""Fakes of the Kafka clients, for unit tests of one service loop's logic (what it sends, in which
transaction, which offsets it commits). Never the evidence that the pipeline works: that is the tests on
a real broker (tests/integration, tests/faults)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiokafka.structs import ConsumerRecord, TopicPartition


class Stop(Exception):
    """Ends a loop under test once the fake consumer has nothing more to give."""


def record(topic: str, offset: int, value: bytes, key: bytes | None = None, partition: int = 0) -> ConsumerRecord:
    return ConsumerRecord(topic, partition, offset, 0, 0, key, value, None, len(key or b""), len(value), [])


class FakeConsumer:
    """Gives the batches it was made with, then empty ones until `done()` holds, then raises Stop."""

    def __init__(self, batches: list[list[ConsumerRecord]], done: Callable[[], bool] = lambda: True) -> None:
        self.batches = list(batches)
        self.done = done
        self.committed: list[dict[TopicPartition, int]] = []
        self.topics: list[str] = []
        self.listener: Any = None
        self.started = self.stopped = False

    def subscribe(self, topics: list[str] | None = None, listener: Any = None, pattern: str | None = None) -> None:
        self.topics = list(topics or [pattern or ""])
        self.listener = listener

    async def start(self) -> None:
        self.started = True
        if self.listener is not None:
            await self.listener.on_partitions_assigned([])

    async def stop(self) -> None:
        self.stopped = True

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> dict:
        if self.batches:
            records = self.batches.pop(0)
            out: dict[TopicPartition, list[ConsumerRecord]] = {}
            for r in records:
                out.setdefault(TopicPartition(r.topic, r.partition), []).append(r)
            return out
        if self.done():
            raise Stop
        await asyncio.sleep(0.005)
        return {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed.append(dict(offsets))

    def assignment(self) -> set[TopicPartition]:
        return set()  # the lag gauge then reports nothing


class FakeProducer:
    """Records what is sent: outside a transaction into `sent`, inside one into that transaction, which lands
    in `committed` when its block ends cleanly and in `aborted` when it raises."""

    def __init__(self, fail_on: Callable[[str, bytes], bool] = lambda topic, value: False) -> None:
        self.fail_on = fail_on
        self.sent: list[tuple[str, bytes | None, bytes, list]] = []
        self.committed: list[list[tuple]] = []
        self.aborted: list[list[tuple]] = []
        self._open: list[tuple] | None = None
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        self._open = []
        try:
            yield
        except BaseException:
            self.aborted.append(self._open)
            raise
        else:
            self.committed.append(self._open)
        finally:
            self._open = None

    async def send(self, topic: str, value: bytes, key: bytes | None = None, headers: list | None = None) -> None:
        if self.fail_on(topic, value):
            raise ConnectionError(f"fake broker refuses {topic}")
        entry = (topic, key, value, headers or [])
        (self._open if self._open is not None else self.sent).append(entry)

    async def send_and_wait(
        self, topic: str, value: bytes, key: bytes | None = None, headers: list | None = None
    ) -> None:
        await self.send(topic, value, key=key, headers=headers)

    async def send_offsets_to_transaction(self, offsets: dict[TopicPartition, int], group: str) -> None:
        assert self._open is not None, "offsets outside a transaction"
        self._open.append(("offsets", dict(offsets), group))


class FakeReader:
    """A kafka.TopicReader that holds `records` (one batch)."""

    def __init__(self, records: list[ConsumerRecord]) -> None:
        self.records = records

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def to_end(self) -> AsyncIterator[list[ConsumerRecord]]:
        if self.records:
            yield self.records


def recorder_on_fakes(settings: Any, consumer: FakeConsumer, producer: FakeProducer, write: Callable[..., Any]) -> Any:
    """A beacon.recorder Recorder on fake Kafka clients, with `write` in place of its PostgreSQL write."""
    from beacon.recorder.main import Clients, Recorder
    from tests.signed import trust

    async def no_connection() -> None:
        raise AssertionError("the fake write needs no database")

    recorder = Recorder(
        settings,
        kafka_clients=lambda: Clients(consumer=consumer, producer=producer),
        connect=no_connection,  # type: ignore[arg-type]
        deadline_clock=lambda: asyncio.sleep(0),
        trust=trust(),
    )
    recorder.write = write  # type: ignore[method-assign]
    return recorder
