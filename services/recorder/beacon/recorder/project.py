"""Pure: records → events → the rows of the read model, in the column order of beacon.infra.projection.

PROJECTED names each projected event type with its table and row function; a new one also needs its list
(and its sources) in Rows. tests/unit/test_asyncapi.py checks that PROJECTED, the AsyncAPI document's
recorder operations and the topics the recorder subscribes to say the same.

A record is poison when it is no event, or an event that cannot be what it claims wherever its job is: on a
topic not of its type, under a Kafka key that is not its own, or (a result or an expansion) produced by
another region than the one it is of. Whether it is a cell of its job is decided when the job is known
(admit.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka.structs import ConsumerRecord

from beacon.infra import kafka
from beacon.infra.keys import Verifier
from beacon.schemas.events import ExecutionCompleted, JobExpanded, JobSubmitted
from beacon.schemas.topics import Topics

# Why a record is dead-lettered as a stray (the metric's reason label; admit.py adds out_of_spec and
# pending.py job_never_arrived).
WRONG_TOPIC = "wrong_topic"
KEY_MISMATCH = "key_mismatch"
PRODUCER_REGION = "producer_region"

# What the `output` column keeps of the event besides the columns of their own.
_OUTPUT = {"classification", "attempts", "tokens", "producer"}
_OPTIONAL = ("answer_edits", "judgement")  # kept only when set, so other rows stay byte-identical to before


def _output_fields(e: ExecutionCompleted) -> set[str]:
    if e.answer_edits is None and e.judgement is None:
        return _OUTPUT
    return _OUTPUT | {name for name in _OPTIONAL if getattr(e, name) is not None}


def execution_row(e: ExecutionCompleted, raw: bytes) -> tuple[Any, ...]:
    # model_dump_json serialises in pydantic's compiled core: 9 µs per bench event against 22 µs for
    # dumping to dicts and json.dumps, and the recorder's throughput is bounded by this Python work.
    return (
        e.job_id,
        e.region,
        e.model_id,
        e.question_id,
        e.language,
        e.provider,
        e.provider_model,
        e.status,
        e.classification.label,
        e.classification.classifier_version,
        e.answer,
        e.model_dump_json(include=_output_fields(e)),
        e.receipt.model_dump_json(),
        e.started_at,
        e.completed_at,
        e.event_id,
        raw.decode(),  # valid UTF-8: it parsed
    )


def job_row(e: JobSubmitted, raw: bytes) -> tuple[Any, ...]:
    return (
        e.job_id,
        e.spec_sha256,
        e.expected_executions,
        e.submitted_at,
        e.deadline,
        e.model_dump_json(),
        e.event_id,
        e.catalogue.version if e.catalogue else None,
    )


def job_region_row(e: JobExpanded, raw: bytes) -> tuple[Any, ...]:
    return (
        e.job_id,
        e.region,
        e.spec_sha256,
        e.cells,
        json.dumps(e.providers),
        json.dumps(e.unrouted),
        e.occurred_at,
        e.event_id,
    )


@dataclass(frozen=True)
class Poisoned:
    record: ConsumerRecord
    why: str
    reason: str | None = None  # a stray's reason label; None: not an event at all


@dataclass
class Rows:
    executions: list[tuple[Any, ...]] = field(default_factory=list)
    jobs: list[tuple[Any, ...]] = field(default_factory=list)
    job_regions: list[tuple[Any, ...]] = field(default_factory=list)
    poison: list[Poisoned] = field(default_factory=list)
    # The record each row came from, index for index: a row the database refuses is dead-lettered as it.
    execution_sources: list[ConsumerRecord] = field(default_factory=list)
    job_sources: list[ConsumerRecord] = field(default_factory=list)
    job_region_sources: list[ConsumerRecord] = field(default_factory=list)

    def extend(self, other: Rows) -> None:
        self.executions += other.executions
        self.jobs += other.jobs
        self.poison += other.poison
        self.execution_sources += other.execution_sources
        self.job_sources += other.job_sources
        self.job_regions += other.job_regions
        self.job_region_sources += other.job_region_sources

    def sources(self, table: str) -> list[ConsumerRecord]:
        return {"executions": self.execution_sources, "jobs": self.job_sources, "job_regions": self.job_region_sources}[
            table
        ]


# Each event type the recorder projects: its table (a list of Rows) and the function making its row.
PROJECTED: dict[type, tuple[str, Callable[[Any, bytes], tuple[Any, ...]]]] = {
    ExecutionCompleted: ("executions", execution_row),
    JobSubmitted: ("jobs", job_row),
    JobExpanded: ("job_regions", job_region_row),
}


def misplaced(record: ConsumerRecord, event: Any, names: Topics) -> tuple[str, str] | None:
    """(reason, why) when the event cannot be what it claims: wrong topic, wrong key, wrong producer region."""
    key = event.key
    if isinstance(event, JobSubmitted):
        topic = names.jobs_submitted
    elif isinstance(event, ExecutionCompleted):
        topic = names.executions_completed
    else:
        topic = names.expanded(event.region)
    if record.topic != topic:
        return WRONG_TOPIC, f"{event.event_type} of {key!r} belongs on {topic}, not on {record.topic}"
    if record.key != key.encode():
        got = record.key.decode(errors="replace")[:200] if record.key is not None else None
        return KEY_MISMATCH, f"Kafka key {got!r} is not the event's own key {key!r}"
    if isinstance(event, JobSubmitted):
        return None
    producer = event.producer
    if isinstance(event, ExecutionCompleted) and producer.service == "recorder" and producer.region is None:
        if event.status == "timeout":  # the recorder's deadline clock records unanswered cells of every region
            return None
        return PRODUCER_REGION, f"a {event.status} result produced by the recorder; it produces only timeouts"
    if producer.region != event.region:
        return PRODUCER_REGION, (
            f"{event.event_type} of region {event.region!r} produced by {producer.service!r} of region "
            f"{producer.region!r}: only that region's runner produces it"
        )
    return None


def rows_of(records: list[ConsumerRecord], names: Topics, trust: Verifier) -> Rows:
    """Records from the jobs, executions and expansion topics → rows, in consumption order; what cannot be
    an event, or is misplaced, is returned as poison for the caller to dead-letter (the recorder) or skip
    (a replay)."""
    out = Rows()
    for record in records:
        try:
            event = kafka.read_event(record, *PROJECTED, trust=trust)
        except kafka.Poison as exc:
            out.poison.append(Poisoned(record, str(exc)))
            continue
        wrong = misplaced(record, event, names)
        if wrong is not None:
            out.poison.append(Poisoned(record, wrong[1], wrong[0]))
            continue
        table, row = PROJECTED[type(event)]
        getattr(out, table).append(row(event, record.value or b""))
        out.sources(table).append(record)
    return out
