"""The recorder's consume loop driven through its seam (bootstrap.py hands it its clients): fake Kafka
clients and a fake write in place of PostgreSQL. Offsets are committed only after the batch's write has
finished; poison is dead-lettered, never written. The same loop on real servers, killed between the
database commit and the offset commit, is tests/faults/test_crashes.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from beacon.domain import results
from beacon.domain.cells import cells_of
from beacon.infra.settings import Settings
from beacon.recorder import project, store
from beacon.schemas.events import ExecutionCompleted, ProducerInfo, encode
from beacon.schemas.topics import dead_letter_topic
from tests.fakes import FakeConsumer, FakeProducer, Stop, record, recorder_on_fakes
from tests.signed import service_keys, signed
from tests.unit.test_runner_loops import a_job

SETTINGS = Settings.from_env({"BEACON_TOPIC_NAMESPACE": "unit", "BEACON_RECORDER_PORT": "0"})


def three_timeouts() -> list[ExecutionCompleted]:
    """The deadline clock's timeouts of a job's first three cells."""
    job = a_job()
    deadlines = ProducerInfo(service="recorder", instance="deadlines")
    return [results.timeout(job, c, datetime(2026, 1, 1, tzinfo=UTC), deadlines) for c in cells_of(job)[:3]]


def test_offsets_are_committed_only_after_the_write_and_poison_is_dead_lettered() -> None:
    names = SETTINGS.topics
    j = a_job()
    deadlines = ProducerInfo(service="recorder", instance="deadlines")  # the recorder's own timeout
    done = results.timeout(j, cells_of(j)[0], datetime(2026, 1, 1, tzinfo=UTC), deadlines)
    topic = names.executions_completed
    batch = [record(topic, 0, signed(done), key=done.key.encode()), record(topic, 1, b"[]")]
    producer = FakeProducer()
    consumer = FakeConsumer([batch], done=lambda: bool(consumer.committed))
    written: list[project.Rows] = []
    release = asyncio.Event()
    commits_before_release: list[int] = []

    async def write(rows: project.Rows) -> store.Recorded:
        await asyncio.sleep(0.05)
        commits_before_release.append(len(consumer.committed))
        written.append(rows)
        release.set()
        return store.Recorded(store.Written(len(rows.executions), 0, 0))

    recorder = recorder_on_fakes(SETTINGS, consumer, producer, write)
    with pytest.raises(Stop):
        asyncio.run(recorder.consume())
    assert commits_before_release == [0]  # nothing was committed while the write was under way
    assert [len(rows.executions) for rows in written] == [1] and written[0].poison == []
    assert [list(c.values()) for c in consumer.committed] == [[2]]  # the poison's offset too: it is parked
    (dead,) = producer.sent
    assert dead[0] == dead_letter_topic(topic) and dead[2] == b"[]"
    assert consumer.topics == [names.projected()] and consumer.stopped and producer.stopped


def test_misplaced_records_strays_and_refused_rows_are_dead_lettered_with_their_reasons_and_counted() -> None:
    """What rows_of finds misplaced is dead-lettered before the write, with its stray reason counted; what the
    write returns as a stray (no cell of its job) or as refused by PostgreSQL is dead-lettered after it, before
    the offsets are committed."""
    from prometheus_client import REGISTRY

    from beacon.recorder import admit

    def strays(reason: str) -> float:
        return REGISTRY.get_sample_value("beacon_recorder_stray_results_total", {"reason": reason}) or 0.0

    topic = SETTINGS.topics.executions_completed
    first, second, third = three_timeouts()
    batch = [
        record(topic, 0, signed(first), key=b"another|key"),  # misplaced: not its own key
        record(topic, 1, signed(second), key=second.key.encode()),  # the write finds it no cell of its job
        record(topic, 2, signed(third), key=third.key.encode()),  # the write says PostgreSQL refused it
    ]
    producer = FakeProducer()
    consumer = FakeConsumer([batch], done=lambda: bool(consumer.committed))
    before = {reason: strays(reason) for reason in (project.KEY_MISMATCH, admit.OUT_OF_SPEC)}
    sent_before_write: list[int] = []

    async def write(rows: project.Rows) -> store.Recorded:
        sent_before_write.append(len(producer.sent))
        assert rows.execution_sources == batch[1:]  # the misplaced record is no row
        return store.Recorded(
            store.Written(0, 0, 0),
            refused=[store.Refused(rows.execution_sources[1], "DataError: a NUL byte")],
            strays=[store.Stray(rows.execution_sources[0], "model 'x' is not one of job 'j''s models")],
        )

    recorder = recorder_on_fakes(SETTINGS, consumer, producer, write)
    with pytest.raises(Stop):
        asyncio.run(recorder.consume())
    assert sent_before_write == [1]  # the misplaced record went before the write
    errors = {
        int(dict(headers)["beacon.source.offset"]): dict(headers)["beacon.error"].decode()
        for _, _, _, headers in producer.sent
    }
    assert errors == {
        0: f"Kafka key 'another|key' is not the event's own key {first.key!r}",
        1: admit.NOT_A_CELL + "model 'x' is not one of job 'j''s models",
        2: "PostgreSQL refused the row: DataError: a NUL byte",
    }
    assert {t for t, *_ in producer.sent} == {dead_letter_topic(topic)}
    assert [list(c.values()) for c in consumer.committed] == [[3]]
    assert strays(project.KEY_MISMATCH) == before[project.KEY_MISMATCH] + 1
    assert strays(admit.OUT_OF_SPEC) == before[admit.OUT_OF_SPEC] + 1


def test_results_not_signed_by_their_binding_are_dead_lettered_and_never_written() -> None:

    topic = SETTINGS.topics.executions_completed
    first, second, third = three_timeouts()
    batch = [
        record(topic, 0, encode(first), key=first.key.encode()),  # unsigned
        # the recorder's own timeout, signed by a runner's key
        record(topic, 1, encode(service_keys("runner", "eu-west").signer.sign(second)), key=second.key.encode()),
        record(topic, 2, signed(third), key=third.key.encode()),  # the good one
    ]
    producer = FakeProducer()
    consumer = FakeConsumer([batch], done=lambda: bool(consumer.committed))
    written: list[project.Rows] = []

    async def write(rows: project.Rows) -> store.Recorded:
        written.append(rows)
        return store.Recorded(store.Written(len(rows.executions), 0, 0))

    recorder = recorder_on_fakes(SETTINGS, consumer, producer, write)
    with pytest.raises(Stop):
        asyncio.run(recorder.consume())
    assert [rows.execution_sources for rows in written] == [[batch[2]]]
    errors = [dict(headers)["beacon.error"].decode() for _, _, _, headers in producer.sent]
    assert errors[0] == "refused (unsigned): ExecutionCompleted carries no signature"
    assert errors[1].startswith("refused (wrong_role): signed by ed25519:")
    assert errors[1].endswith("a runner of eu-west key; this needs a recorder key")
    assert [value for _, _, value, _ in producer.sent] == [batch[0].value, batch[1].value]
    assert [list(c.values()) for c in consumer.committed] == [[3]]
