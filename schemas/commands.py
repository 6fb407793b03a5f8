"""The submit command: what a user asks for, validated against the catalogue."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from beacon.schemas.catalogue import DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE, MODELS, QUESTIONS, REGIONS
from beacon.schemas.cells import cell_count

# Job ids travel inside Kafka keys joined with "|", in URLs and in file names: keep them plain.
JOB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
JobId = Annotated[str, Field(pattern=JOB_ID_PATTERN, description="Letters, digits, '.', '_' or '-'; 1-64.")]

MAX_DEADLINE_SECONDS = 7 * 24 * 3600


def _check_ids(values: list[str], known: dict, what: str) -> list[str]:
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value not in known:
            raise ValueError(f"[{i}] unknown {what} id {value!r}; known: {', '.join(known)}")
        if value in seen:
            raise ValueError(f"[{i}] {what} id {value!r} is listed twice")
        seen.add(value)
    return values


class JobSpec(BaseModel):
    """`beacon submit FILE` / `POST /jobs` body."""

    model_config = ConfigDict(extra="forbid")

    job_id: JobId | None = Field(
        None, description="Chosen by the client to make resubmission idempotent; generated when absent."
    )
    questions: list[str] = Field(
        description="Question ids from the catalogue. An empty list means one execution per (region, model)."
    )
    models: list[str] = Field(min_length=1, description="Model ids from the catalogue.")
    regions: list[str] = Field(min_length=1, description="Region ids from the catalogue.")
    temperature: float = Field(DEFAULT_TEMPERATURE, ge=0.0, le=2.0)
    max_tokens: int = Field(DEFAULT_MAX_TOKENS, ge=1, le=32768)
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1, description="Sent to the model; a 64-bit integer.")
    deadline_seconds: int | None = Field(
        None, ge=1, le=MAX_DEADLINE_SECONDS, description="Time the job may take; the settings' default when absent."
    )

    @field_validator("questions")
    @classmethod
    def _known_questions(cls, v: list[str]) -> list[str]:
        return _check_ids(v, QUESTIONS, "question")

    @field_validator("models")
    @classmethod
    def _known_models(cls, v: list[str]) -> list[str]:
        return _check_ids(v, MODELS, "model")

    @field_validator("regions")
    @classmethod
    def _known_regions(cls, v: list[str]) -> list[str]:
        return _check_ids(v, REGIONS, "region")

    @property
    def expected_executions(self) -> int:
        return cell_count(len(self.regions), len(self.models), len(self.questions))


def describe_errors(exc: ValidationError) -> list[str]:
    """One line per problem, each naming the field, e.g. "questions[2]: unknown question id 'x'"."""
    lines = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(p) for p in err["loc"]) or "body"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "json_invalid":
            field, msg = "body", f"not valid JSON ({err.get('ctx', {}).get('error', msg)})"
        if msg.startswith("["):  # our own validators put the list index first
            index, _, msg = msg.partition("] ")
            field = f"{field}{index}]"
        lines.append(f"{field}: {msg}")
    return lines
