"""Pure decisions of the submitter: parse and validate a spec, turn it into a self-contained JobSubmitted."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta

from pydantic import ValidationError

from beacon.schemas.catalogue import MODELS, PROBE_PROMPT, QUESTIONS, REGIONS, system_prompt
from beacon.schemas.commands import JobSpec, describe_errors
from beacon.schemas.events import (
    GenerationParams,
    JobSubmitted,
    ModelRef,
    ProducerInfo,
    QuestionText,
    RegionRef,
)


class InvalidJob(ValueError):
    """The spec cannot be accepted; `problems` holds one line per bad field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid job spec:\n" + "\n".join(f"  {p}" for p in problems))
        self.problems = problems


def parse_spec(raw: bytes | str) -> JobSpec:
    try:
        return JobSpec.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidJob(describe_errors(exc)) from None


def new_job_id() -> str:
    return f"job-{uuid.uuid4().hex[:12]}"


def spec_sha256(spec: JobSpec) -> str:
    """Fingerprint of what the job asks for (job_id included), to tell a resubmission from a conflict."""
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()


def job_submitted(
    spec: JobSpec, *, now: datetime, default_deadline_seconds: int, producer: ProducerInfo
) -> JobSubmitted:
    """Resolve every id against the catalogue so the event means the same thing anywhere, any year later."""
    if spec.job_id is None:
        spec = spec.model_copy(update={"job_id": new_job_id()})
    assert spec.job_id is not None
    deadline = now + timedelta(seconds=spec.deadline_seconds or default_deadline_seconds)
    return JobSubmitted(
        producer=producer,
        occurred_at=now,
        job_id=spec.job_id,
        questions=[
            QuestionText(id=q, category=QUESTIONS[q].category, prompt=QUESTIONS[q].prompt) for q in spec.questions
        ],
        probe_prompt=None if spec.questions else PROBE_PROMPT,
        models=[ModelRef(id=m, name=MODELS[m].name) for m in spec.models],
        regions=[RegionRef(id=r, display=REGIONS[r].display, system_prompt=system_prompt(r)) for r in spec.regions],
        params=GenerationParams(temperature=spec.temperature, max_tokens=spec.max_tokens, seed=spec.seed),
        submitted_at=now,
        deadline=deadline,
        expected_executions=spec.expected_executions,
        spec_sha256=spec_sha256(spec),
    )
