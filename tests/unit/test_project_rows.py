"""rows_of (services/recorder/project.py): consumed records → the rows of the read model, plus poison.

Records are real aiokafka ConsumerRecords with the bytes (and keys) a producer would have written. What is
checked: the values in each column (beacon/projection.py's order), the source record kept index for index
beside each row, and what becomes poison (to be dead-lettered) and why: no event, or an event on a topic not
of its type, under a key not its own, produced by another region than its own, or not signed by the key of
its binding (tests/signed.py signs each record as its producer would).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord

from beacon.domain import results
from beacon.domain.cells import cells_of
from beacon.infra import kafka
from beacon.infra.projection import EXECUTION_COLUMNS, JOB_COLUMNS, JOB_REGION_COLUMNS
from beacon.recorder import project
from beacon.recorder.project import Rows, execution_row, job_row
from beacon.runner import expand
from beacon.schemas.events import (
    AnswerEdits,
    Attempt,
    CatalogueRef,
    GenerationParams,
    JobExpanded,
    JobSubmitted,
    ModelRef,
    ProducerInfo,
    QuestionText,
    RegionRef,
    encode,
    parse_event,
)
from beacon.schemas.topics import Topics
from tests.signed import service_keys, signed, trust

NAMES = Topics("ns")
JOBS, EXECUTIONS, EXPANDED = NAMES.jobs_submitted, NAMES.executions_completed, NAMES.expanded("eu-west")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
RUNNER = ProducerInfo(service="runner", region="eu-west", instance="r1")
JOB = JobSubmitted(
    producer=ProducerInfo(service="submitter", instance="s1"),
    job_id="j1",
    questions=[QuestionText(id="math_basic", category="control", prompts={"en": "What is 2+2?"})],
    catalogue=CatalogueRef(version="sha256:" + "0" * 16),
    models=[ModelRef(id="mistral-7b", name="Mistral 7B")],
    regions=[RegionRef(id="eu-west", display="EU", language="en", system_prompt="Serving Europe.")],
    params=GenerationParams(temperature=0.1, max_tokens=500),
    submitted_at=T0,
    deadline=T0 + timedelta(seconds=60),
    expected_executions=1,
    spec_sha256="a" * 64,
)


TRUST = trust()


def rows_of(records: list[ConsumerRecord]) -> Rows:
    return project.rows_of(records, NAMES, TRUST)


def record(topic: str, offset: int, value: bytes | None, key: bytes | None = None, partition: int = 0):
    return ConsumerRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=1_767_225_600_000 + offset,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value or b""),
        headers=(),
    )


def rec(topic: str, offset: int, event: Any, partition: int = 0) -> ConsumerRecord:
    """The record a producer writes for an event: its signed bytes under its own key."""
    return record(topic, offset, signed(event), event.key.encode(), partition)


def as_read(source: ConsumerRecord) -> Any:
    """The event a consumer reads from a record (with its signature)."""
    return parse_event(source.value)


def completed(answer: str = "4", **extra: object):
    [cell] = cells_of(JOB)
    asked = results.Asked.of_job(JOB, cell)
    attempt = Attempt(number=1, started_at=T0, completed_at=T0 + timedelta(seconds=2), outcome="ok", http_status=200)
    return results.result(
        asked,
        producer=RUNNER,
        provider="simulated",
        status="completed",
        answer=answer,
        attempts=[attempt],
        started_at=T0,
        completed_at=T0 + timedelta(seconds=2),
        **extra,
    )


def test_a_good_execution_becomes_one_row_in_column_order() -> None:
    event = completed()
    source = rec(EXECUTIONS, 7, event)
    rows = rows_of([source])
    assert rows.jobs == [] and rows.poison == [] and rows.job_sources == []
    assert rows.execution_sources == [source]
    [row] = rows.executions
    assert len(row) == len(EXECUTION_COLUMNS)
    by_column = dict(zip(EXECUTION_COLUMNS, row, strict=True))
    named = ("job_id", "region", "model_id", "question_id", "provider", "provider_model", "status")
    assert {k: by_column[k] for k in (*named, "classification", "classifier_version", "answer")} == {
        "job_id": "j1",
        "region": "eu-west",
        "model_id": "mistral-7b",
        "question_id": "math_basic",
        "provider": "simulated",
        "provider_model": None,
        "status": "completed",
        "classification": "answered",
        "classifier_version": event.classification.classifier_version,
        "answer": "4",
    }
    assert by_column["event_id"] == event.event_id
    assert by_column["event"] == source.value.decode()  # the signed event as it arrived
    assert (by_column["started_at"], by_column["completed_at"]) == (T0, T0 + timedelta(seconds=2))
    output = json.loads(by_column["output"])
    assert set(output) == {"classification", "attempts", "tokens", "producer"}  # the optional ones left out
    assert output["producer"] == {"service": "runner", "region": "eu-west", "instance": "r1"}
    receipt = json.loads(by_column["receipt"])
    assert receipt["prompt_sha256"] == results.sha256("What is 2+2?")
    assert receipt["answer_sha256"] == results.sha256("4")


def test_answer_edits_are_kept_in_output_only_when_set() -> None:
    edits = AnswerEdits(truncated=True, replaced_characters=0, original_chars=9, original_sha256="ab" * 32)
    event = completed(edits=edits)
    [row] = rows_of([rec(EXECUTIONS, 0, event)]).executions
    output = json.loads(row[EXECUTION_COLUMNS.index("output")])
    assert set(output) == {"classification", "attempts", "tokens", "producer", "answer_edits"}
    assert output["answer_edits"]["truncated"] is True


def test_a_duplicate_within_a_batch_gives_two_rows_each_with_its_own_source() -> None:
    """rows_of does not deduplicate: the table's unique index keeps the first (store.py). It must keep
    both rows and their sources aligned, so a refused row is dead-lettered as the right record."""
    event = completed()
    first = rec(EXECUTIONS, 3, event)
    again = record(EXECUTIONS, 4, first.value, first.key)  # the same record delivered again
    rows = rows_of([first, again])
    assert rows.executions == [execution_row(as_read(first), first.value)] * 2
    assert rows.execution_sources == [first, again]
    assert rows.poison == []


def test_a_job_submitted_becomes_a_job_row() -> None:
    source = rec(JOBS, 0, JOB)
    rows = rows_of([source])
    assert rows.executions == [] and rows.poison == []
    assert rows.job_sources == [source]
    [row] = rows.jobs
    assert row == job_row(as_read(source), source.value)
    by_column = dict(zip(JOB_COLUMNS, row, strict=True))
    assert by_column["job_id"] == "j1"
    assert by_column["spec_sha256"] == JOB.spec_sha256 and by_column["expected_executions"] == 1
    assert (by_column["submitted_at"], by_column["deadline"]) == (T0, T0 + timedelta(seconds=60))
    assert json.loads(by_column["spec"])["questions"][0]["prompts"] == {"en": "What is 2+2?"}
    assert by_column["event_id"] == JOB.event_id


def test_an_expansion_becomes_a_job_region_row() -> None:
    done = JobExpanded(
        producer=RUNNER, job_id="j1", region="eu-west", spec_sha256=JOB.spec_sha256, cells=1, providers={"m": "x"}
    )
    source = rec(EXPANDED, 0, done)
    rows = rows_of([source])
    assert rows.executions == [] and rows.jobs == [] and rows.poison == []
    assert rows.job_region_sources == [source]
    [row] = rows.job_regions
    by_column = dict(zip(JOB_REGION_COLUMNS, row, strict=True))
    assert (by_column["job_id"], by_column["region"], by_column["cells"]) == ("j1", "eu-west", 1)
    assert by_column["spec_sha256"] == JOB.spec_sha256 and json.loads(by_column["providers"]) == {"m": "x"}


CELL = expand.cells(JOB, "eu-west", RUNNER)[0]
POISON = [
    pytest.param(b"not json at all", "not a valid event", id="garbage"),
    pytest.param(b"", "not a valid event", id="empty"),
    pytest.param(None, "not a valid event", id="tombstone"),
    pytest.param(
        b'{"event_type": "ExecutionCompleted", "schema_version": 1}', "not a valid event", id="fields-missing"
    ),
    pytest.param(
        signed(completed()).replace(b'"schema_version":1', b'"schema_version":99'),
        "not a valid event",
        id="unknown-schema-version",
    ),
    pytest.param(b"\xff\xfe\x00binary", "not a valid event", id="binary"),
    pytest.param(b"{" + b" " * kafka.MAX_EVENT_BYTES + b"}", "exceeds the 1000000-byte limit", id="too-large"),
    pytest.param(signed(CELL), f"CellScheduled does not belong on {EXECUTIONS}", id="cell-on-executions"),
]


@pytest.mark.parametrize(("value", "why"), POISON)
def test_what_cannot_be_a_row_is_poison_with_the_reason(value: bytes | None, why: str) -> None:
    source = record(EXECUTIONS, 11, value)
    rows = rows_of([source])
    assert rows.executions == [] and rows.jobs == [] and rows.execution_sources == [] and rows.job_sources == []
    [poisoned] = rows.poison
    assert poisoned.record is source and poisoned.reason is None  # not an event at all: no stray
    assert why in poisoned.why


UNTRUSTED = [
    pytest.param(encode(completed()), "refused (unsigned): ExecutionCompleted carries no signature", id="unsigned"),
    pytest.param(
        signed(completed("4")).replace(b'"answer":"4"', b'"answer":"5"'),
        "refused (bad_signature): the signature of ed25519:",
        id="answer-edited-after-signing",
    ),
    pytest.param(
        encode(service_keys("runner", "us-east").signer.sign(completed())),
        "a runner of us-east key; this is 'eu-west''s",
        id="another-regions-runner",
    ),
    pytest.param(
        encode(service_keys("submitter").signer.sign(completed())),
        "a submitter key; this needs a runner key",
        id="the-submitters-key",
    ),
]


@pytest.mark.parametrize(("value", "why"), UNTRUSTED)
def test_a_result_not_signed_by_its_regions_runner_is_poison_and_no_row(value: bytes, why: str) -> None:
    source = record(EXECUTIONS, 0, value, b"j1|eu-west|mistral-7b|math_basic")
    rows = rows_of([source])
    assert rows.executions == [] and rows.execution_sources == []
    [poisoned] = rows.poison
    assert poisoned.record is source and poisoned.reason is None
    assert why in poisoned.why


def test_a_mixed_batch_keeps_consumption_order_and_sources_index_for_index() -> None:
    good, other = completed("4"), completed("Four.")
    batch = [
        rec(JOBS, 0, JOB),
        record(EXECUTIONS, 0, b"junk", partition=2),
        rec(EXECUTIONS, 1, good, partition=2),
        rec(JOBS, 1, CELL),  # a wrong event type on the jobs topic
        rec(EXECUTIONS, 2, other, partition=2),
    ]
    rows = rows_of(batch)
    assert rows.executions == [execution_row(as_read(r), r.value) for r in (batch[2], batch[4])]
    assert [row[EXECUTION_COLUMNS.index("answer")] for row in rows.executions] == [good.answer, other.answer]
    assert rows.execution_sources == [batch[2], batch[4]]
    assert rows.jobs == [job_row(as_read(batch[0]), batch[0].value)] and rows.job_sources == [batch[0]]
    assert [p.record for p in rows.poison] == [batch[1], batch[3]]
    assert f"CellScheduled does not belong on {JOBS}" in rows.poison[1].why


def test_rows_extend_concatenates_every_list_in_order() -> None:
    a = rows_of([rec(JOBS, 0, JOB), record(EXECUTIONS, 0, b"x")])
    b = rows_of([rec(EXECUTIONS, 1, completed())])
    merged = Rows()
    merged.extend(a)
    merged.extend(b)
    assert merged.jobs == a.jobs and merged.job_sources == a.job_sources
    assert merged.executions == b.executions and merged.execution_sources == b.execution_sources
    assert merged.poison == a.poison and len(merged.poison) == 1


def test_no_records_no_rows() -> None:
    assert rows_of([]) == Rows()


def test_event_ids_survive_as_uuids() -> None:
    event = completed()
    [row] = rows_of([rec(EXECUTIONS, 0, event)]).executions
    event_id = row[EXECUTION_COLUMNS.index("event_id")]
    assert isinstance(event_id, uuid.UUID) and event_id == event.event_id


# --- misplaced: an event that cannot be what it claims, wherever its job is -----------------------------

EXPANSION = JobExpanded(producer=RUNNER, job_id="j1", region="eu-west", spec_sha256=JOB.spec_sha256, cells=1)
MISPLACED = [
    pytest.param(
        rec(JOBS, 0, completed()),
        project.WRONG_TOPIC,
        f"ExecutionCompleted of 'j1|eu-west|mistral-7b|math_basic' belongs on {EXECUTIONS}, not on {JOBS}",
        id="result-on-the-jobs-topic",
    ),
    pytest.param(
        rec(EXECUTIONS, 0, JOB),
        project.WRONG_TOPIC,
        f"JobSubmitted of 'j1' belongs on {JOBS}, not on {EXECUTIONS}",
        id="job-on-the-executions-topic",
    ),
    pytest.param(
        rec(NAMES.expanded("us-east"), 0, EXPANSION),
        project.WRONG_TOPIC,
        f"belongs on {EXPANDED}, not on {NAMES.expanded('us-east')}",
        id="expansion-on-another-regions-topic",
    ),
    pytest.param(
        record(EXECUTIONS, 0, signed(completed()), b"j1|eu-west|mistral-7b|taiwan_status"),
        project.KEY_MISMATCH,
        "Kafka key 'j1|eu-west|mistral-7b|taiwan_status' is not the event's own key 'j1|eu-west|mistral-7b|math_basic'",
        id="result-under-another-cells-key",
    ),
    pytest.param(
        record(EXECUTIONS, 0, signed(completed()), None),
        project.KEY_MISMATCH,
        "Kafka key None is not the event's own key",
        id="result-without-a-key",
    ),
    pytest.param(
        record(JOBS, 0, signed(JOB), b"j2"),
        project.KEY_MISMATCH,
        "Kafka key 'j2' is not the event's own key 'j1'",
        id="job-under-another-id",
    ),
    pytest.param(
        rec(
            EXECUTIONS, 0, completed().model_copy(update={"producer": RUNNER.model_copy(update={"region": "us-east"})})
        ),
        project.PRODUCER_REGION,
        "ExecutionCompleted of region 'eu-west' produced by 'runner' of region 'us-east'",
        id="result-from-another-region",
    ),
    pytest.param(
        rec(EXPANDED, 0, EXPANSION.model_copy(update={"producer": ProducerInfo(service="runner", instance="x")})),
        project.PRODUCER_REGION,
        "JobExpanded of region 'eu-west' produced by 'runner' of region None",
        id="expansion-from-no-region",
    ),
    pytest.param(
        rec(EXECUTIONS, 0, completed().model_copy(update={"producer": ProducerInfo(service="recorder", instance="d")})),
        project.PRODUCER_REGION,
        "a completed result produced by the recorder; it produces only timeouts",
        id="a-completed-result-from-the-recorder",
    ),
]


@pytest.mark.parametrize(("source", "reason", "why"), MISPLACED)
def test_a_misplaced_event_is_poison_with_its_stray_reason(source: ConsumerRecord, reason: str, why: str) -> None:
    rows = rows_of([source])
    assert rows.executions == rows.jobs == rows.job_regions == []
    [poisoned] = rows.poison
    assert poisoned.record is source and poisoned.reason == reason
    assert why in poisoned.why


def test_the_recorders_own_timeout_for_any_region_is_no_stray() -> None:
    [cell] = cells_of(JOB)
    timeout = results.timeout(JOB, cell, T0 + timedelta(minutes=5), ProducerInfo(service="recorder", instance="d"))
    rows = rows_of([rec(EXECUTIONS, 0, timeout)])
    assert rows.poison == [] and len(rows.executions) == 1


@pytest.mark.parametrize(
    "source",
    [rec(JOBS, 0, JOB), rec(EXECUTIONS, 0, completed()), rec(EXPANDED, 0, EXPANSION)],
    ids=["job", "result", "expansion"],
)
def test_an_event_on_its_topic_under_its_key_from_its_region_is_not_misplaced(source: ConsumerRecord) -> None:
    event = kafka.read_event(source, *project.PROJECTED, trust=TRUST)
    assert project.misplaced(source, event, NAMES) is None
    rows = rows_of([source])
    assert rows.poison == [] and len(rows.executions) + len(rows.jobs) + len(rows.job_regions) == 1
