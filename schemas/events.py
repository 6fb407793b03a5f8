"""Event contracts. These pydantic models are the source of truth; schemas/json/ is generated from them.

Versions are additive; a breaking change is a new schema_version. The accepted versions are the
`schema_version` Literals below: an event of any other version fails parsing and is dead-lettered.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from schemas.commands import JobId

ExecutionStatus = Literal["completed", "failed", "timeout"]
ClassificationLabel = Literal["answered", "refused", "empty", "error"]


def now() -> datetime:
    return datetime.now(UTC)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProducerInfo(_Frozen):
    service: str
    region: str | None = None
    instance: str


class _Envelope(_Frozen):
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    occurred_at: AwareDatetime = Field(default_factory=now)
    producer: ProducerInfo


# --- JobSubmitted -------------------------------------------------------------------------------


class QuestionText(_Frozen):
    id: str
    category: str
    prompt: str


class ModelRef(_Frozen):
    id: str
    name: str


class RegionRef(_Frozen):
    id: str
    display: str
    system_prompt: str


class GenerationParams(_Frozen):
    temperature: float
    max_tokens: int
    seed: int | None = None


class JobSubmitted(_Envelope):
    """A validated job, self-contained: a runner anywhere can act on it without the catalogue."""

    event_type: Literal["JobSubmitted"] = "JobSubmitted"
    schema_version: Literal[1] = 1
    job_id: JobId
    questions: list[QuestionText]
    # Set only when `questions` is empty: the prompt of the one call per (region, model).
    probe_prompt: str | None = None
    models: list[ModelRef]
    regions: list[RegionRef]
    params: GenerationParams
    submitted_at: AwareDatetime
    deadline: AwareDatetime
    expected_executions: int = Field(ge=1)
    # SHA-256 of the canonical spec: tells an identical resubmission from a conflicting one.
    spec_sha256: str


# --- the per-region work log -------------------------------------------------------------------


class CellScheduled(_Envelope):
    """One cell to run, on its region's work topic; self-contained like the job it came from."""

    event_type: Literal["CellScheduled"] = "CellScheduled"
    schema_version: Literal[1] = 1
    job_id: JobId
    region: RegionRef
    model: ModelRef
    question: QuestionText | None = Field(description="None for a job without questions: ask probe_prompt.")
    probe_prompt: str | None = None
    params: GenerationParams
    deadline: AwareDatetime

    @property
    def key(self) -> str:
        return execution_key(self.job_id, self.region.id, self.model.id, self.question.id if self.question else None)


class JobExpanded(_Envelope):
    """A region has turned a job into CellScheduled records (compacted by job_id: one per job and region)."""

    event_type: Literal["JobExpanded"] = "JobExpanded"
    schema_version: Literal[1] = 1
    job_id: JobId
    region: str
    spec_sha256: str
    cells: int


# --- ExecutionCompleted -------------------------------------------------------------------------


class Classification(_Frozen):
    label: ClassificationLabel
    classifier_version: str
    evidence: str | None = Field(None, description="The rule or phrase that decided.")


class Failure(_Frozen):
    code: str
    stage: str
    transient: bool
    http_status: int | None = None
    message: str


class Attempt(_Frozen):
    number: int = Field(ge=1)
    started_at: AwareDatetime
    completed_at: AwareDatetime
    outcome: Literal["ok", "error", "timeout"]
    http_status: int | None = None
    failure: Failure | None = None


class TokenCounts(_Frozen):
    prompt: int | None = None
    completion: int | None = None


class Receipt(_Frozen):
    provider: str
    endpoint_region: str
    endpoint: str | None = Field(None, description="The URL called (never with credentials); None for simulated.")
    prompt_sha256: str
    system_prompt_sha256: str
    params_sha256: str
    answer_sha256: str | None


class ExecutionCompleted(_Envelope):
    """The outcome of one cell: (job_id, region, model_id, question_id)."""

    event_type: Literal["ExecutionCompleted"] = "ExecutionCompleted"
    schema_version: Literal[1] = 1
    job_id: JobId
    region: str
    model_id: str
    question_id: str | None = Field(description="None for a job without questions.")
    provider: str = Field(description="Adapter that answered, e.g. 'simulated', 'ollama', 'openai'.")
    provider_model: str | None = None
    status: ExecutionStatus
    answer: str | None
    classification: Classification
    attempts: list[Attempt]
    tokens: TokenCounts | None = None
    started_at: AwareDatetime
    completed_at: AwareDatetime
    receipt: Receipt

    @property
    def key(self) -> str:
        return execution_key(self.job_id, self.region, self.model_id, self.question_id)


def execution_key(job_id: str, region: str, model_id: str, question_id: str | None) -> str:
    """The Kafka key of a cell: same cell → same partition → same order. No question → empty last part."""
    return f"{job_id}|{region}|{model_id}|{question_id or ''}"


# --- parsing ------------------------------------------------------------------------------------

Event = Annotated[JobSubmitted | ExecutionCompleted | CellScheduled | JobExpanded, Field(discriminator="event_type")]
_EVENT = TypeAdapter(Event)


def parse_event(raw: bytes) -> JobSubmitted | ExecutionCompleted | CellScheduled | JobExpanded:
    """Bytes from Kafka → event. Raises pydantic.ValidationError on anything it cannot accept."""
    return _EVENT.validate_json(raw)


def encode(event: BaseModel) -> bytes:
    return event.model_dump_json().encode()
