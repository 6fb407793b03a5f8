"""Contracts: the committed JSON Schema files match the models; events round-trip; bad events fail."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from beacon.infra.catalogues import DEFAULT
from beacon.schemas.commands import JobSpec
from beacon.schemas.events import ProducerInfo, execution_key, parse_event
from beacon.submitter.decide import job_submitted
from tools.contracts import CONTRACTS, JSON_DIR, OPENAPI_DIR, openapi_documents, render

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PRODUCER = ProducerInfo(service="test", instance="t1")


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_committed_json_schema_matches_model(name: str) -> None:
    path = JSON_DIR / name
    assert path.exists(), f"{path} missing: run `make schemas` and commit it"
    assert path.read_text() == render(CONTRACTS[name]), f"{name} drifted from its model: run `make schemas`"


@pytest.mark.parametrize("name", ["read-api.openapi.json", "submitter.openapi.json"])
def test_committed_openapi_matches_the_apps(name: str) -> None:
    path = OPENAPI_DIR / name
    assert path.exists(), f"{path} missing: run `make schemas` and commit it"
    assert path.read_text() == openapi_documents()[name], f"{name} drifted from its app: run `make schemas`"


def test_catalogue_facts() -> None:
    assert len(DEFAULT.questions) == 8 and len(DEFAULT.models) == 3 and len(DEFAULT.regions) == 3
    assert DEFAULT.questions["math_basic"].prompts["en"] == "What is 2+2?"
    assert [r.display for r in DEFAULT.regions.values()] == ["US", "EU", "ASIA"]
    us = DEFAULT.regions["us-east"].system_prompts["en"]
    assert us.startswith("You are a helpful, honest, and harmless AI assistant based in the US.")
    assert "based in Asia." in DEFAULT.regions["asia-pacific"].system_prompts["en"]
    assert DEFAULT.languages() == ["en", "zh"] and DEFAULT.label == "seed"


def test_job_submitted_round_trips_through_bytes() -> None:
    spec = JobSpec(job_id="j1", questions=["math_basic"], models=["mistral-7b"], regions=["eu-west"])
    event = job_submitted(spec, DEFAULT, now=NOW, default_deadline_seconds=60, producer=PRODUCER)
    assert parse_event(event.model_dump_json().encode()) == event
    assert event.deadline == datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    assert event.probe_prompts == {}


def test_no_question_job_carries_its_probe_prompt() -> None:
    spec = JobSpec(questions=[], models=["mistral-7b"], regions=["eu-west"])
    event = job_submitted(spec, DEFAULT, now=NOW, default_deadline_seconds=60, producer=PRODUCER)
    assert event.probe_prompts == {"en": DEFAULT.probe_prompts["en"]}
    assert event.expected_executions == 1 and event.job_id.startswith("job-")


def test_spec_hash_tells_specs_apart() -> None:
    a = JobSpec(job_id="j", questions=["math_basic"], models=["mistral-7b"], regions=["eu-west"])
    b = a.model_copy(update={"regions": ["us-east"]})
    ea, eb = (job_submitted(s, DEFAULT, now=NOW, default_deadline_seconds=60, producer=PRODUCER) for s in (a, b))
    assert ea.spec_sha256 != eb.spec_sha256
    assert (
        ea.spec_sha256 == job_submitted(a, DEFAULT, now=NOW, default_deadline_seconds=9, producer=PRODUCER).spec_sha256
    )


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: e.update(event_type="JobCancelled"),
        lambda e: e.update(schema_version=2),
        lambda e: e.pop("job_id"),
        lambda e: e.update(occurred_at="2026-01-01T00:00:00"),  # no time zone
        lambda e: e.update(surprise=1),
    ],
    ids=["unknown-type", "unknown-version", "missing-field", "naive-time", "extra-field"],
)
def test_events_that_do_not_fit_are_rejected(mutate) -> None:
    spec = JobSpec(job_id="j1", questions=["math_basic"], models=["mistral-7b"], regions=["eu-west"])
    data = json.loads(
        job_submitted(spec, DEFAULT, now=NOW, default_deadline_seconds=60, producer=PRODUCER).model_dump_json()
    )
    mutate(data)
    with pytest.raises(ValidationError):
        parse_event(json.dumps(data).encode())


def test_execution_key() -> None:
    # The cell, job|region|model|question: the language is the region's, not part of the key.
    assert execution_key("j", "us-east", "m", "q") == "j|us-east|m|q"
    assert execution_key("j", "us-east", "m", None) == "j|us-east|m|"
