"""Window.committable (services/runner/worker.py): which offsets a runner may commit, per partition.

The rule under test: a partition's offset advances only over its finished prefix (in offset order), so a
crash re-runs at most the cells still in the window, never skips one. Tasks are asyncio futures of a
loop that never runs: done or not, succeeded or failed, exactly when the test says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from aiokafka.structs import TopicPartition

from beacon.runner.worker import Window

P0, P1, P2 = (TopicPartition("ns.work.us-east", p) for p in range(3))
DONE, PENDING, DEAD_LETTERED = "done", "pending", "dead-lettered"


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def fill(loop: asyncio.AbstractEventLoop, cells: dict[TopicPartition, dict[int, str]]) -> tuple[Window, dict]:
    """A window holding `cells` (partition → offset → state), added in the order given; returns it and
    the futures by (partition, offset), to finish later."""
    window = Window()
    futures: dict[tuple[TopicPartition, int], asyncio.Future[None]] = {}
    for tp, offsets in cells.items():
        for offset, state in offsets.items():
            if state == DEAD_LETTERED:
                window.add(tp, offset, None)
                continue
            future: asyncio.Future[None] = loop.create_future()
            if state == DONE:
                future.set_result(None)
            futures[tp, offset] = future
            window.add(tp, offset, future)  # type: ignore[arg-type]  # a Task is a Future; the Window asks no more
    return window, futures


CASES = [
    pytest.param({P0: {0: DONE, 1: DONE, 2: DONE}}, {P0: 3}, 0, id="all-done"),
    pytest.param({P0: {0: PENDING, 1: DONE, 2: DONE}}, {}, 3, id="first-pending-blocks-all"),
    pytest.param({P0: {0: DONE, 1: PENDING, 2: DONE}}, {P0: 1}, 2, id="gap-stops-at-first-unfinished"),
    pytest.param({P0: {7: DONE, 5: DONE, 6: PENDING}}, {P0: 6}, 2, id="added-out-of-offset-order"),
    pytest.param({P0: {0: DEAD_LETTERED, 1: DONE, 2: DEAD_LETTERED}}, {P0: 3}, 0, id="dead-lettered-count-as-done"),
    pytest.param({P0: {0: DEAD_LETTERED, 1: PENDING, 2: DEAD_LETTERED}}, {P0: 1}, 2, id="dead-letter-behind-a-gap"),
    pytest.param(
        {P0: {5: DONE, 6: PENDING, 7: DONE}, P1: {10: DONE, 11: DONE}, P2: {20: PENDING, 21: DONE}},
        {P0: 6, P1: 12},
        4,
        id="gaps-across-partitions",
    ),
    pytest.param({P0: {40: DONE}, P1: {3: DONE}}, {P0: 41, P1: 4}, 0, id="each-partition-its-own-offset"),
    pytest.param({}, {}, 0, id="empty"),
]


@pytest.mark.parametrize(("cells", "committable", "left"), CASES)
def test_committable_is_each_partitions_finished_prefix(
    loop: asyncio.AbstractEventLoop, cells: dict, committable: dict, left: int
) -> None:
    window, _ = fill(loop, cells)
    assert window.committable() == committable
    assert len(window) == left
    assert window.committable() == {}  # the prefix was popped: never offered twice


def test_out_of_order_completion_commits_only_once_the_gap_closes(loop: asyncio.AbstractEventLoop) -> None:
    window, futures = fill(loop, {P0: {0: PENDING, 1: PENDING, 2: PENDING, 3: PENDING}})
    steps = [(2, {}), (3, {}), (0, {P0: 1}), (1, {P0: 4})]  # finish this offset → then committable
    for offset, expected in steps:
        futures[P0, offset].set_result(None)
        assert window.committable() == expected, f"after offset {offset} finished"
    assert len(window) == 0 and window.tasks() == []


def test_later_cells_join_the_prefix_after_a_commit(loop: asyncio.AbstractEventLoop) -> None:
    window, futures = fill(loop, {P0: {0: DONE, 1: PENDING}})
    assert window.committable() == {P0: 1}
    window.add(P0, 2, None)  # a dead-lettered record arrives behind the pending cell
    assert window.committable() == {}
    futures[P0, 1].set_result(None)
    assert window.committable() == {P0: 3}


def test_a_failed_cell_raises_instead_of_being_committed(loop: asyncio.AbstractEventLoop) -> None:
    window, futures = fill(loop, {P0: {0: DONE, 1: PENDING, 2: DONE}, P1: {0: DONE}})
    boom = RuntimeError("emit not acknowledged")
    futures[P0, 1].set_exception(boom)
    with pytest.raises(RuntimeError) as raised:
        window.committable()
    assert raised.value is boom
    # Nothing from offset 1 on is popped: the failed cell and the ones behind it stay uncommitted.
    assert sorted(window.pending[P0]) == [1, 2]


def test_tasks_lists_only_unfinished_cells_of_the_partitions_asked(loop: asyncio.AbstractEventLoop) -> None:
    window, futures = fill(loop, {P0: {0: DONE, 1: PENDING, 2: DEAD_LETTERED}, P1: {0: PENDING}, P2: {9: DONE}})
    assert window.tasks([P0]) == [futures[P0, 1]]
    assert set(window.tasks()) == {futures[P0, 1], futures[P1, 0]}
    assert window.tasks([P2]) == []
    assert window.tasks([TopicPartition("other", 0)]) == []
    assert len(window) == 5


def test_rebalance_finish_commit_then_forget_the_revoked_partition(loop: asyncio.AbstractEventLoop) -> None:
    """What FinishBeforeHandingOver does: wait for the revoked partitions' cells, commit, forget them;
    the partitions kept go on untouched."""
    window, futures = fill(loop, {P0: {0: DONE, 1: PENDING}, P1: {4: PENDING, 5: DONE}})
    revoked = [P0]
    assert window.tasks(revoked) == [futures[P0, 1]]
    futures[P0, 1].set_result(None)  # finished before handing over
    assert window.committable() == {P0: 2}
    window.forget(revoked)
    assert P0 not in window.pending and len(window) == 2
    # The partition comes back later (assigned again) from its committed offset: no stale entries.
    window.add(P0, 2, None)
    futures[P1, 4].set_result(None)
    assert window.committable() == {P0: 3, P1: 6}


def test_forgetting_a_partition_with_cells_in_flight_drops_them_uncommitted(loop: asyncio.AbstractEventLoop) -> None:
    window, _ = fill(loop, {P0: {0: PENDING, 1: DONE}, P1: {0: DONE}})
    window.forget([P0, P2])  # P2 unknown: ignored
    assert window.committable() == {P1: 1}
    assert window.tasks() == [] and len(window) == 0
