"""The bookkeeping of kafka.TopicReader, the one way Beacon reads topics outside a group: where each
partition starts, and when reading to the end is done. No broker here (tests/integration and
tests/faults read real topics with it)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.structs import ConsumerRecord, OffsetAndTimestamp, TopicPartition

from beacon.infra import kafka

A0, A1, B0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)


def test_unfinished_compares_positions_with_ends() -> None:
    assert kafka.unfinished({A0: 0, A1: 5, B0: 7}, {A0: 3, A1: 5, B0: 9}) == [A0, B0]
    assert kafka.unfinished({A0: 3, A1: 5}, {A0: 3, A1: 5}) == []
    assert kafka.unfinished({}, {}) == []


def test_a_position_past_the_end_counts_as_done() -> None:
    # the end was taken at the start; records written since may carry the position beyond it
    assert kafka.unfinished({A0: 12}, {A0: 10}) == []


def test_empty_partitions_are_done_at_once() -> None:
    assert kafka.unfinished({A0: 0, A1: 4}, {A0: 0, A1: 4}) == []


def test_start_offsets_from_times() -> None:
    found = {A0: OffsetAndTimestamp(17, 1_000), A1: None}
    # nothing at or after the time (None, or not answered at all): every record there is older, start at the end
    assert kafka.start_offsets(found, {A0: 40, A1: 9, B0: 3}) == {A0: 17, A1: 9, B0: 3}


def _record(tp: TopicPartition, offset: int) -> ConsumerRecord:
    return ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, None, b"v", None, 1, 1, [])


class _Scripted:
    """Just what read_until uses of a consumer: position and getmany, over fixed partition contents.
    `gaps` are offsets taken by transaction markers: they move the position but yield no record."""

    def __init__(self, contents: dict[TopicPartition, int], gaps: dict[TopicPartition, set[int]] | None = None):
        self.contents, self.gaps = contents, gaps or {}
        self.at = dict.fromkeys(contents, 0)
        self.asked: list[tuple[TopicPartition, ...]] = []

    async def position(self, tp: TopicPartition) -> int:
        return self.at[tp]

    async def getmany(self, *tps: TopicPartition, timeout_ms: int) -> dict:
        self.asked.append(tps)
        out = {}
        for tp in tps:  # two offsets per fetch
            got = [o for o in range(self.at[tp], min(self.at[tp] + 2, self.contents[tp]))]
            self.at[tp] += len(got)
            if records := [_record(tp, o) for o in got if o not in self.gaps.get(tp, set())]:
                out[tp] = records
        return out


async def _read(consumer: _Scripted, ends: dict[TopicPartition, int]) -> list[list[ConsumerRecord]]:
    return [batch async for batch in kafka.read_until(consumer, ends)]  # type: ignore[arg-type]


def test_read_until_stops_at_the_ends_and_asks_only_for_unfinished_partitions() -> None:
    consumer = _Scripted({A0: 5, A1: 1})
    batches = asyncio.run(_read(consumer, {A0: 5, A1: 1}))
    assert sorted((r.partition, r.offset) for b in batches for r in b) == [(0, o) for o in range(5)] + [(1, 0)]
    assert consumer.asked == [(A0, A1), (A0,), (A0,)]


def test_read_until_gets_past_a_trailing_transaction_marker_without_an_empty_batch() -> None:
    # offsets 0-2 are records, 3 is a commit marker: the last record is offset 2, the end is 4
    consumer = _Scripted({A0: 4}, gaps={A0: {3}})
    batches = asyncio.run(_read(consumer, {A0: 4}))
    assert [[r.offset for r in b] for b in batches] == [[0, 1], [2]]
    assert consumer.at[A0] == 4


def test_read_until_leaves_what_arrives_later_for_the_next_call() -> None:
    consumer = _Scripted({A0: 10})
    assert sum(len(b) for b in asyncio.run(_read(consumer, {A0: 4}))) == 4
    assert sum(len(b) for b in asyncio.run(_read(consumer, {A0: 10}))) == 6


def test_a_reader_must_be_started_before_reading() -> None:
    reader = kafka.TopicReader(None, ["a"])  # type: ignore[arg-type]

    async def read() -> None:
        async for _ in reader.to_end():
            pass

    with pytest.raises(RuntimeError, match="before start"):
        asyncio.run(read())
    asyncio.run(reader.stop())  # stopping one never started is harmless
