"""Transient Kafka failures are waited out; fatal ones end the component, with no real sleeps here."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import errors

from beacon.infra import kafka


@pytest.mark.parametrize(
    "exc",
    [
        errors.NodeNotReadyError("node 3"),
        errors.KafkaConnectionError("refused"),
        errors.NotLeaderForPartitionError(),
        errors.CoordinatorNotAvailableError(),
        errors.CoordinatorLoadInProgressError(),
        errors.NotCoordinatorForGroupError(),
        errors.RequestTimedOutError(),
        errors.KafkaTimeoutError(),
        errors.NotEnoughReplicasError(),
        errors.CommitFailedError("rebalanced"),
        errors.IllegalStateError("transaction aborted"),
        ConnectionResetError(),
        TimeoutError(),
    ],
)
def test_transient_failures(exc: BaseException) -> None:
    assert kafka.is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        errors.ProducerFenced(),
        errors.TopicAuthorizationFailedError(),
        errors.TransactionalIdAuthorizationFailed(),
        errors.UnsupportedVersionError(),
        ValueError("a bug"),
        KeyError("x"),
    ],
)
def test_fatal_failures(exc: BaseException) -> None:
    assert not kafka.is_transient(exc)


def test_backoff_grows_with_jitter_up_to_its_ceiling_and_starts_over() -> None:
    top = kafka.Backoff(first=0.2, most=10.0, rand=lambda: 1.0)
    assert [round(top.next(), 2) for _ in range(8)] == [0.6, 1.0, 1.8, 3.4, 6.6, 10.2, 10.2, 10.2]
    top.reset()
    assert round(top.next(), 2) == 0.6
    bottom = kafka.Backoff(first=0.2, most=10.0, rand=lambda: 0.0)
    assert {bottom.next() for _ in range(5)} == {0.2}


def test_retrying_waits_out_transient_failures_and_returns() -> None:
    slept: list[float] = []
    failures = [errors.NodeNotReadyError("n"), errors.KafkaConnectionError("c")]
    waited: list[str] = []

    async def op() -> str:
        if failures:
            raise failures.pop(0)
        return "done"

    async def sleep(s: float) -> None:
        slept.append(s)

    result = asyncio.run(kafka.retrying("x", op, sleep=sleep, on_wait=lambda error, s: waited.append(error)))
    assert result == "done" and len(slept) == 2
    assert waited == ["NodeNotReadyError: n", "KafkaConnectionError: c"]


def test_retrying_raises_fatal_failures_at_once_and_transient_ones_after_its_patience() -> None:
    async def fenced() -> None:
        raise errors.ProducerFenced()

    async def sleep(s: float) -> None:
        raise AssertionError("a fatal failure is not waited for")

    with pytest.raises(errors.ProducerFenced):
        asyncio.run(kafka.retrying("x", fenced, sleep=sleep))

    async def down() -> None:
        raise errors.KafkaConnectionError("refused")

    async def no_sleep(s: float) -> None:
        pass

    with pytest.raises(errors.KafkaConnectionError):
        asyncio.run(kafka.retrying("x", down, give_up_after_s=0.0, sleep=no_sleep))


def test_supervised_starts_a_loop_again_after_a_transient_failure_and_stops_on_a_fatal_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kafka.Backoff, "next", lambda self: 0.0)
    runs: list[int] = []

    async def loop() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise errors.NodeNotReadyError("node 2")
        raise errors.ProducerFenced()

    with pytest.raises(errors.ProducerFenced):
        asyncio.run(kafka.supervised("test", loop))
    assert len(runs) == 3
