"""Pure decisions of the submitter: parse and validate a spec, turn it into a self-contained JobSubmitted,
and what a job id already registered means for a new submission (a repeat, or a conflict).

A spec that parse_spec accepts always makes a JobSubmitted every consumer accepts: JobSpec and the catalogue
check apply the event's limits (events.py), and the event it makes is built once more here to check what
only the whole event can say: that it fits in one Kafka message (beacon.infra.kafka.MAX_EVENT_BYTES, past
which consumers dead-letter it)."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from beacon.domain import signing
from beacon.domain.catalogue import Catalogue
from beacon.infra.kafka import MAX_EVENT_BYTES
from beacon.schemas.commands import (
    MAX_DEADLINE_SECONDS,
    JobSpec,
    ad_hoc_prompts,
    describe_errors,
    problems_with,
    unknown_ids,
)
from beacon.schemas.events import (
    MAX_INSTANCE_CHARS,
    MAX_SERVICE_CHARS,
    CatalogueRef,
    GenerationParams,
    JobSubmitted,
    ModelRef,
    ProducerInfo,
    QuestionText,
    RegionRef,
    encode,
)


class JobConflict(ValueError):
    """The job id is taken by a job with a different spec."""


def registered(
    fresh: JobSubmitted, existing_sha256: str | None, existing_event: object = None, legacy_sha256: str | None = None
) -> tuple[JobSubmitted, bool]:
    """The event to emit and whether it is a repeat, given what `submissions` holds for the job id (nothing:
    this submission claimed it). The same spec again re-sends the original event, so a resubmission is
    harmless downstream and heals a crash between claiming the id and emitting; another spec is a conflict."""
    if existing_sha256 is None:
        return fresh, False
    if existing_sha256 not in (fresh.spec_sha256, legacy_sha256):
        raise JobConflict(
            f"job {fresh.job_id!r} was already submitted with a different spec; "
            "choose another job_id, or submit exactly the same spec to re-run nothing"
        )
    return JobSubmitted.model_validate(existing_event), True


class InvalidJob(ValueError):
    """The spec cannot be accepted; `problems` holds one line per bad field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid job spec:\n" + "\n".join(f"  {p}" for p in problems))
        self.problems = problems


def parse_spec(raw: bytes | str, catalogue: Catalogue) -> JobSpec:
    """Bytes → a spec the catalogue can answer, or InvalidJob with one line per problem."""
    try:
        spec = JobSpec.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidJob(_with_unknown_ids(describe_errors(exc), raw, catalogue)) from None
    problems = problems_with(spec, catalogue) or _event_problems(spec, catalogue)
    if problems:
        raise InvalidJob(problems)
    return spec


# The largest envelope any submission gets (the longest producer, timestamps with microseconds), so the
# trial event is never smaller than the one the publisher builds.
_TRIAL_NOW = datetime(2026, 1, 1, 0, 0, 0, 999_999, tzinfo=UTC)
_TRIAL_PRODUCER = ProducerInfo(service="s" * MAX_SERVICE_CHARS, instance="i" * MAX_INSTANCE_CHARS)


def _event_problems(spec: JobSpec, catalogue: Catalogue) -> list[str]:
    """What the spec's JobSubmitted itself would refuse: its size in bytes, and (should a check above ever
    miss one of the event's limits) its own validation, as a 400 rather than a failure after acceptance."""
    try:
        event = job_submitted(
            spec,
            catalogue,
            now=_TRIAL_NOW,
            default_deadline_seconds=MAX_DEADLINE_SECONDS,
            producer=_TRIAL_PRODUCER,
        )
    except ValidationError as exc:
        return [f"the job's JobSubmitted event: {line}" for line in describe_errors(exc)]
    size = len(encode(event))
    if size > MAX_EVENT_BYTES:
        return [
            f"questions: the job's JobSubmitted event would be {size} bytes (its prompts in every language it "
            f"asks, system prompts included); an event is at most {MAX_EVENT_BYTES} bytes: ask fewer questions "
            "or languages, or shorter ones"
        ]
    return []


def _with_unknown_ids(problems: list[str], raw: bytes | str, catalogue: Catalogue) -> list[str]:
    """A spec that is wrong in shape is also checked for unknown ids, so one attempt shows every problem."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, or nested too deep: the shape's problems say enough
        return problems
    if not isinstance(data, dict):
        return problems
    order = list(JobSpec.model_fields)
    found = problems + [
        line for kind in ("questions", "models", "regions") for line in unknown_ids(kind, data.get(kind), catalogue)
    ]

    def field_rank(line: str) -> int:
        name = line.split("[", 1)[0].split(":", 1)[0].split(".", 1)[0]
        return order.index(name) if name in order else len(order)

    return sorted(found, key=field_rank)


def new_job_id() -> str:
    return f"job-{uuid.uuid4().hex[:12]}"


def spec_sha256(spec: JobSpec, catalogue: Catalogue) -> str:
    """Fingerprint of what the job asks for (job_id included) and of the words it asks it with, to tell a
    resubmission from a conflict: the same spec under a changed catalogue is a different job. Over the RFC
    8785 canonical JSON of the fields that differ from their defaults, so a field a later version adds with a
    default leaves every earlier job's hash as it was (and `"temperature": 0.1` is the same job as none)."""
    mine = {"spec": spec.model_dump(mode="json", exclude_defaults=True), "catalogue": catalogue.version}
    return signing.sha256_hex(signing.canonical(mine))


def legacy_spec_sha256(spec: JobSpec, catalogue: Catalogue) -> str:
    """The hash jobs registered before 2026-12 hold: of every field, defaults included."""
    return hashlib.sha256(f"{spec.model_dump_json()}|{catalogue.version}".encode()).hexdigest()


def job_submitted(
    spec: JobSpec, catalogue: Catalogue, *, now: datetime, default_deadline_seconds: int, producer: ProducerInfo
) -> JobSubmitted:
    """Resolve every id against the catalogue so the event means the same thing anywhere, any year later:
    it carries the texts of every language it asks, and the catalogue's version."""
    if spec.job_id is None:
        spec = spec.model_copy(update={"job_id": new_job_id()})
    assert spec.job_id is not None
    deadline = now + timedelta(seconds=spec.deadline_seconds or default_deadline_seconds)
    languages = {r: spec.language_of(r, catalogue.default_language) for r in spec.regions}
    asked = list(dict.fromkeys(languages.values()))  # in order, once each

    def texts(by_language: dict[str, str]) -> dict[str, str]:
        return {lang: by_language[lang] for lang in asked if lang in by_language}

    questions = []
    for q in spec.questions:
        if isinstance(q, str):
            entry = catalogue.questions[q]
            prompts, category, ad_hoc = texts(entry.prompts), entry.category, False
        else:
            prompts, category, ad_hoc = texts(ad_hoc_prompts(q, catalogue)), q.category, True
        ident = q if isinstance(q, str) else q.id
        questions.append(QuestionText(id=ident, category=category, prompts=prompts, ad_hoc=ad_hoc))
    regions = [
        RegionRef(
            id=r,
            display=catalogue.regions[r].display,
            language=languages[r],
            system_prompt=catalogue.regions[r].system_prompts[languages[r]],
        )
        for r in spec.regions
    ]
    probe = texts(catalogue.probe_prompts) if not spec.questions else {}
    return JobSubmitted(
        producer=producer,
        occurred_at=now,
        job_id=spec.job_id,
        questions=questions,
        probe_prompts=probe,
        catalogue=CatalogueRef(version=catalogue.version, label=catalogue.label),
        models=[ModelRef(id=m, name=catalogue.models[m].name) for m in spec.models],
        regions=regions,
        params=GenerationParams(temperature=spec.temperature, max_tokens=spec.max_tokens, seed=spec.seed),
        submitted_at=now,
        deadline=deadline,
        expected_executions=spec.expected_executions,
        spec_sha256=spec_sha256(spec, catalogue),
    )
