"""Event contracts, version 1. These pydantic models are the source of truth; json/ beside this module
(package data) is generated from them by `make schemas`.

Versions are additive; a breaking change is a new schema_version. The accepted versions are the
`schema_version` Literals below: an event of any other version fails parsing and is dead-lettered.

A cell is (job, region, model, question). The language is a property of (job, region): each region of a
job asks in exactly one language (RegionRef.language), so it is not part of the cell or its key.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from beacon.domain.cells import cell_count
from beacon.schemas.ids import ID_DESCRIPTION, ID_PATTERN

# Bounds on what an event may carry, every string, list and table of it. Events are read by every region and
# replayed for years, so the limits are fixed numbers here, not the size of today's catalogue (a shrunken
# catalogue must not turn old jobs into poison); they keep a hostile or buggy event from making a consumer
# build 10^8 cells, store and serve megabytes in a field, or write a value the database refuses (`integer`
# columns, index rows). The one place for each: the submit command (commands.py) and the catalogue
# (beacon.domain.catalogue) import them, so what they accept always fits the event that carries it.
Id = Annotated[str, Field(pattern=ID_PATTERN, description="A catalogue id. " + ID_DESCRIPTION)]
JobId = Annotated[str, Field(pattern=ID_PATTERN, description=ID_DESCRIPTION)]
LANGUAGE_PATTERN = r"^[a-z]{2}(-([A-Z]{2}|[A-Z][a-z]{3}))?$"
Language = Annotated[
    str,
    Field(
        pattern=LANGUAGE_PATTERN,
        description="An ISO 639-1 language code, optionally with a region or script: en, zh, zh-TW.",
    ),
]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="A SHA-256 digest, 64 lower-case hex digits.")]
MAX_QUESTIONS_PER_JOB = 1000
MAX_MODELS_PER_JOB = 100
MAX_REGIONS_PER_JOB = 100
MAX_CELLS_PER_JOB = 100_000
MAX_PROMPT_CHARS = 20_000
MAX_LANGUAGES_PER_JOB = 20
MAX_CATEGORY_CHARS = 100
MAX_MODEL_NAME_CHARS = 200
MAX_REGION_DISPLAY_CHARS = 100
MAX_LABEL_CHARS = 100
MAX_PROVIDER_CHARS = 100
MAX_SERVICE_CHARS = 100
# service@host:pid, where the service may name a region (expander-<region>) and a host name is up to 253.
MAX_INSTANCE_CHARS = 400
# Largest answer an event may carry. Runners cap answers lower while reading (Route.max_answer_chars) and
# shrink an event until it fits the broker's message limit, so a valid event is never refused there.
MAX_ANSWER_CHARS = 200_000
MAX_MESSAGE_CHARS = 2_000
MAX_ATTEMPTS = 50
Count = Annotated[int, Field(ge=0, le=2**31 - 1)]
Provider = Annotated[str, Field(max_length=MAX_PROVIDER_CHARS, description="A provider's name, e.g. 'simulated'.")]

# The status and classification names, once: the API's filters, the SQL CHECKs (tested against these) and
# the job-status derivation (status.py) all read them from here.
ExecutionStatus = Literal["completed", "failed", "timeout"]
ClassificationLabel = Literal["answered", "refused", "empty", "error"]
EXECUTION_STATUSES: tuple[str, ...] = get_args(ExecutionStatus)
CLASSIFICATIONS: tuple[str, ...] = get_args(ClassificationLabel)


def now() -> datetime:
    return datetime.now(UTC)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProducerInfo(_Frozen):
    service: str = Field(max_length=MAX_SERVICE_CHARS)
    region: Id | None = None
    instance: str = Field(max_length=MAX_INSTANCE_CHARS, description="Which process: service@host:pid.")


SALT_PATTERN = r"^[0-9a-f]{32}$"


class Signature(_Frozen):
    """Ed25519 by the producing service over the event's canonical view (beacon.domain.signing): carried in
    the event, so it goes wherever the fact is copied."""

    key_id: str = Field(pattern=r"^ed25519:[0-9a-f]{16}$", description="The signing key: a trusted-keys entry.")
    value: str = Field(
        min_length=88, max_length=88, pattern=r"^[A-Za-z0-9+/]{86}==$", description="The 64-byte signature, base64."
    )
    salts: dict[Annotated[str, Field(pattern=ID_PATTERN)], Annotated[str, Field(pattern=SALT_PATTERN)]] = Field(
        default_factory=dict,
        max_length=MAX_QUESTIONS_PER_JOB,
        description="The salts of the commitments to what a published bundle may withhold (a result's answer, "
        "a question's prompts): kept out of what is signed.",
    )


class _Envelope(_Frozen):
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    occurred_at: AwareDatetime = Field(default_factory=now)
    producer: ProducerInfo
    signature: Signature | None = Field(None, description="Set by the producer; consumers refuse events without.")


# --- JobSubmitted -------------------------------------------------------------------------------


Texts = Annotated[
    dict[Language, Annotated[str, Field(min_length=1, max_length=MAX_PROMPT_CHARS)]],
    Field(max_length=MAX_LANGUAGES_PER_JOB, description="Text by language, for the languages the job asks in."),
]


class QuestionText(_Frozen):
    id: Id
    category: str = Field(max_length=MAX_CATEGORY_CHARS)
    prompts: Texts = Field(
        min_length=1,
        description="In a JobSubmitted: the text in every language some region of the job asks in; in a "
        "CellScheduled: the text in its region's language only.",
    )
    ad_hoc: bool = Field(False, description="Given inline by the job, not taken from the catalogue.")


class ModelRef(_Frozen):
    id: Id
    name: str = Field(max_length=MAX_MODEL_NAME_CHARS)


class RegionRef(_Frozen):
    id: Id
    display: str = Field(max_length=MAX_REGION_DISPLAY_CHARS)
    language: Language = Field(description="The one language this region's cells are asked in.")
    system_prompt: str = Field(max_length=MAX_PROMPT_CHARS, description="The region's system prompt, in `language`.")


class CatalogueRef(_Frozen):
    """Which catalogue the job's texts were taken from (beacon.domain.catalogue: a hash of its content)."""

    version: str = Field(pattern=r"^sha256:[0-9a-f]{16}$")
    label: str | None = Field(None, max_length=MAX_LABEL_CHARS)


class GenerationParams(_Frozen):
    temperature: float = Field(ge=0.0, le=2.0)
    max_tokens: int = Field(ge=1, le=1_000_000)
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)


def _unique_ids(items: list[QuestionText] | list[ModelRef] | list[RegionRef], what: str) -> None:
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{what} ids must be unique")


class JobSubmitted(_Envelope):
    """A validated job, self-contained: a runner anywhere can act on it without the catalogue."""

    event_type: Literal["JobSubmitted"] = "JobSubmitted"
    schema_version: Literal[1] = 1
    job_id: JobId
    questions: list[QuestionText] = Field(max_length=MAX_QUESTIONS_PER_JOB)
    # Set only when `questions` is empty: the prompt of the one call per (region, model), by language.
    probe_prompts: Texts = Field(default_factory=dict)
    catalogue: CatalogueRef
    models: list[ModelRef] = Field(min_length=1, max_length=MAX_MODELS_PER_JOB)
    regions: list[RegionRef] = Field(min_length=1, max_length=MAX_REGIONS_PER_JOB)
    params: GenerationParams
    submitted_at: AwareDatetime
    deadline: AwareDatetime
    expected_executions: int = Field(ge=1, le=MAX_CELLS_PER_JOB)
    # SHA-256 of the canonical spec: tells an identical resubmission from a conflicting one.
    spec_sha256: Sha256

    @model_validator(mode="after")
    def _consistent(self) -> JobSubmitted:
        """The event must mean what it says: consumers build cells from it and trust the count."""
        _unique_ids(self.questions, "question")
        _unique_ids(self.models, "model")
        _unique_ids(self.regions, "region")
        if self.questions and self.probe_prompts:
            raise ValueError("probe_prompts is for a job without questions")
        for region in self.regions:  # every cell's words are in the event: runners need no catalogue
            lang = region.language
            if not self.questions and lang not in self.probe_prompts:
                raise ValueError(f"region {region.id} asks in {lang!r} but the probe prompt has no text in it")
            for q in self.questions:
                if lang not in q.prompts:
                    raise ValueError(f"region {region.id} asks in {lang!r} but question {q.id} has no text in it")
        cells = cell_count(len(self.regions), len(self.models), len(self.questions))
        if self.expected_executions != cells:
            raise ValueError(f"expected_executions is {self.expected_executions}, but the job has {cells} cells")
        return self

    @property
    def key(self) -> str:
        """Its Kafka key: the job id."""
        return self.job_id


# --- the per-region work log -------------------------------------------------------------------


class CellScheduled(_Envelope):
    """One cell to run, on its region's work topic; self-contained like the job it came from."""

    event_type: Literal["CellScheduled"] = "CellScheduled"
    schema_version: Literal[1] = 1
    job_id: JobId
    region: RegionRef
    model: ModelRef
    question: QuestionText | None = Field(description="None for a job without questions: ask probe_prompt.")
    probe_prompt: str | None = Field(None, min_length=1, max_length=MAX_PROMPT_CHARS)
    params: GenerationParams
    deadline: AwareDatetime

    @model_validator(mode="after")
    def _has_prompt(self) -> CellScheduled:
        if self.question is None and self.probe_prompt is None:
            raise ValueError("a cell without a question needs a probe_prompt")
        if self.question is not None and self.region.language not in self.question.prompts:
            raise ValueError(
                f"question {self.question.id} has no text in the region's language {self.region.language!r}"
            )
        return self

    @property
    def prompt(self) -> str:
        """The text this cell asks, in its region's language."""
        if self.question is not None:
            return self.question.prompts[self.region.language]
        assert self.probe_prompt is not None  # the validator above
        return self.probe_prompt

    @property
    def key(self) -> str:
        return execution_key(self.job_id, self.region.id, self.model.id, self.question.id if self.question else None)


class JobExpanded(_Envelope):
    """A region has turned a job into CellScheduled records (compacted by job_id: one per job and region)."""

    event_type: Literal["JobExpanded"] = "JobExpanded"
    schema_version: Literal[1] = 1
    job_id: JobId
    region: Id
    spec_sha256: Sha256
    cells: int = Field(ge=0, le=MAX_CELLS_PER_JOB)
    providers: dict[Id, Provider] = Field(
        default_factory=dict,
        max_length=MAX_MODELS_PER_JOB,
        description="Model id → the provider this region's runner sends it to.",
    )
    unrouted: list[Id] = Field(
        default_factory=list,
        max_length=MAX_MODELS_PER_JOB,
        description="Models of the job with no route of their own in this region's routing file (they go to its "
        "default route).",
    )

    @property
    def key(self) -> str:
        """Its Kafka key: the job id (the topic is compacted by it)."""
        return self.job_id


# --- ExecutionCompleted -------------------------------------------------------------------------


class Classification(_Frozen):
    label: ClassificationLabel
    classifier_version: str = Field(max_length=100)
    evidence: str | None = Field(None, max_length=MAX_MESSAGE_CHARS, description="The rule or phrase that decided.")
    language: Language | None = Field(None, description="ISO 639-1 code of the answer's detected language, if known.")


HttpStatus = Annotated[int, Field(ge=100, le=999)]


class Failure(_Frozen):
    code: str = Field(max_length=100)
    stage: str = Field(max_length=100)
    transient: bool
    http_status: HttpStatus | None = None
    message: str = Field(max_length=MAX_MESSAGE_CHARS, description="Bounded, with secrets redacted.")


class Attempt(_Frozen):
    number: int = Field(ge=1, le=MAX_ATTEMPTS)
    started_at: AwareDatetime
    completed_at: AwareDatetime
    outcome: Literal["ok", "error", "timeout"]
    http_status: HttpStatus | None = None
    failure: Failure | None = None


class TokenCounts(_Frozen):
    prompt: Count | None = None
    completion: Count | None = None


class AnswerEdits(_Frozen):
    """What the runner changed in a model's answer before recording it, so the original stays provable."""

    truncated: bool = Field(description="The answer was cut at the route's max_answer_chars (or to fit an event).")
    replaced_characters: Count = Field(description="NUL bytes and lone surrogates replaced by U+FFFD.")
    original_chars: Count = Field(description="Length of the answer as received (up to where reading stopped).")
    original_sha256: Sha256 = Field(description="SHA-256 of the answer as received (UTF-8, surrogates passed through).")


class Judgement(_Frozen):
    """A judge model's verdict on an answer, recorded beside the rules' classification, never instead."""

    label: ClassificationLabel
    judge_version: str = Field(max_length=100, description="The rubric's version.")
    judge_model: str | None = Field(None, max_length=200)
    reason: str = Field(max_length=MAX_MESSAGE_CHARS, description="The judge's one-line reason, or why it failed.")


class Receipt(_Frozen):
    provider: Provider
    endpoint_region: Id
    endpoint: str | None = Field(
        None, max_length=2000, description="The URL called, without user-info or query; None for simulated."
    )
    prompt_sha256: Sha256
    system_prompt_sha256: Sha256
    params_sha256: Sha256
    answer_sha256: Sha256 | None


class ExecutionCompleted(_Envelope):
    """The outcome of one cell: (job_id, region, model_id, question_id)."""

    event_type: Literal["ExecutionCompleted"] = "ExecutionCompleted"
    schema_version: Literal[1] = 1
    job_id: JobId
    region: Id
    model_id: Id
    question_id: Id | None = Field(description="None for a job without questions.")
    language: Language = Field(description="The language asked in: the region's language in the job.")
    provider: Provider = Field(description="Adapter that answered, e.g. 'simulated', 'ollama', 'openai'.")
    provider_model: str | None = Field(None, max_length=200)
    status: ExecutionStatus
    answer: str | None = Field(max_length=MAX_ANSWER_CHARS)
    answer_edits: AnswerEdits | None = Field(None, description="Set when the answer was truncated or cleaned.")
    classification: Classification
    judgement: Judgement | None = Field(None, description="Set when a judge route is configured.")
    attempts: list[Attempt] = Field(max_length=MAX_ATTEMPTS)
    tokens: TokenCounts | None = None
    started_at: AwareDatetime
    completed_at: AwareDatetime
    receipt: Receipt

    @property
    def key(self) -> str:
        return execution_key(self.job_id, self.region, self.model_id, self.question_id)


def execution_key(job_id: str, region: str, model_id: str, question_id: str | None) -> str:
    """The Kafka key of a cell, `job|region|model|question`: same cell → same partition → same order.
    No question → an empty fourth part."""
    return f"{job_id}|{region}|{model_id}|{question_id or ''}"


# --- parsing ------------------------------------------------------------------------------------

Event = Annotated[JobSubmitted | ExecutionCompleted | CellScheduled | JobExpanded, Field(discriminator="event_type")]
_EVENT = TypeAdapter(Event)


def parse_event(raw: bytes) -> JobSubmitted | ExecutionCompleted | CellScheduled | JobExpanded:
    """Bytes from Kafka → event. Raises pydantic.ValidationError on anything it cannot accept."""
    return _EVENT.validate_json(raw)


def encode(event: BaseModel) -> bytes:
    return event.model_dump_json().encode()
