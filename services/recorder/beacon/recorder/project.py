"""Pure: events → the rows of the read model, in the column order of beacon.infra.projection.

PROJECTED names each projected event type with its table and row function; a new one also needs its list
(and its sources) in Rows. tests/unit/test_asyncapi.py checks that PROJECTED, the AsyncAPI document's
recorder operations and the topics the recorder subscribes to say the same."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka.structs import ConsumerRecord

from beacon.infra import kafka
from beacon.schemas.events import ExecutionCompleted, JobExpanded, JobSubmitted

# What the `output` column keeps of the event besides the columns of their own.
_OUTPUT = {"classification", "attempts", "tokens", "producer"}
_OPTIONAL = ("answer_edits", "judgement")  # kept only when set, so other rows stay byte-identical to before


def _output_fields(e: ExecutionCompleted) -> set[str]:
    if e.answer_edits is None and e.judgement is None:
        return _OUTPUT
    return _OUTPUT | {name for name in _OPTIONAL if getattr(e, name) is not None}


def execution_row(e: ExecutionCompleted) -> tuple[Any, ...]:
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
    )


def job_row(e: JobSubmitted) -> tuple[Any, ...]:
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


def job_region_row(e: JobExpanded) -> tuple[Any, ...]:
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


@dataclass
class Rows:
    executions: list[tuple[Any, ...]] = field(default_factory=list)
    jobs: list[tuple[Any, ...]] = field(default_factory=list)
    job_regions: list[tuple[Any, ...]] = field(default_factory=list)
    poison: list[tuple[ConsumerRecord, str]] = field(default_factory=list)  # (record, why)
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
PROJECTED: dict[type, tuple[str, Callable[[Any], tuple[Any, ...]]]] = {
    ExecutionCompleted: ("executions", execution_row),
    JobSubmitted: ("jobs", job_row),
    JobExpanded: ("job_regions", job_region_row),
}


def rows_of(records: list[ConsumerRecord]) -> Rows:
    """Records from the jobs, executions and expansion topics → rows, in consumption order; what cannot be
    an event is returned as poison for the caller to dead-letter (the recorder) or skip (a replay)."""
    out = Rows()
    for record in records:
        try:
            event = kafka.read_event(record, *PROJECTED)
        except kafka.Poison as exc:
            out.poison.append((record, str(exc)))
            continue
        table, row = PROJECTED[type(event)]
        getattr(out, table).append(row(event))
        out.sources(table).append(record)
    return out
