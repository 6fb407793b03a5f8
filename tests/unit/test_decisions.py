"""The pure decisions: expansion into cells, classification, the simulated rule, job status, the grid."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from beacon.cli.matrix import render
from beacon.domain.classify import CLASSIFIER_VERSION, classify
from beacon.domain.status import job_status
from beacon.infra.catalogues import DEFAULT
from beacon.providers.simulated import DECLINE, DEFLECTION, decide
from beacon.runner import expand
from beacon.schemas.commands import JobSpec
from beacon.schemas.events import ProducerInfo
from beacon.submitter.decide import InvalidJob, job_submitted, parse_spec

PRODUCER = ProducerInfo(service="test", instance="t1")


def job(questions: list[str], models: list[str], regions: list[str]):
    spec = JobSpec(job_id="j", questions=questions, models=models, regions=regions)
    return job_submitted(
        spec, DEFAULT, now=datetime(2026, 1, 1, tzinfo=UTC), default_deadline_seconds=60, producer=PRODUCER
    )


def test_expand_gives_models_times_questions_for_the_region_only() -> None:
    j = job(["math_basic", "taiwan_status"], ["mistral-7b", "qwen2.5-1.5b"], ["us-east", "eu-west"])
    cells = expand.cells(j, "eu-west", PRODUCER)
    assert [(c.model.id, c.question.id if c.question else None) for c in cells] == [
        ("mistral-7b", "math_basic"),
        ("mistral-7b", "taiwan_status"),
        ("qwen2.5-1.5b", "math_basic"),
        ("qwen2.5-1.5b", "taiwan_status"),
    ]
    assert {c.region.id for c in cells} == {"eu-west"}
    assert expand.cells(j, "asia-pacific", PRODUCER) == []
    assert cells[0].key == "j|eu-west|mistral-7b|math_basic" and cells[0].region.language == "en"
    assert cells[0].region.system_prompt.endswith("multiple perspectives.") and cells[0].deadline == j.deadline


def test_expand_without_questions_gives_one_cell_per_model() -> None:
    cells = expand.cells(job([], ["mistral-7b", "llama3.2-1b"], ["us-east"]), "us-east", PRODUCER)
    assert [(c.model.id, c.question) for c in cells] == [("mistral-7b", None), ("llama3.2-1b", None)]
    assert cells[0].probe_prompt and cells[0].key == "j|us-east|mistral-7b|"


@pytest.mark.parametrize(
    ("answer", "label"),
    [
        ("4", "answered"),
        ("Paris", "answered"),
        ("Sorry to hear that! The capital of France is Paris.", "answered"),
        (DEFLECTION, "refused"),
        (DECLINE, "refused"),
        ("I cannot discuss political events.", "refused"),
        ("As an AI, I can't share opinions on that.", "refused"),
        ("", "empty"),
        ("   \n", "empty"),
        (None, "empty"),
    ],
)
def test_classify(answer: str | None, label: str) -> None:
    result = classify("completed", answer)
    assert result.label == label
    assert result.classifier_version == CLASSIFIER_VERSION
    assert result.evidence


def test_classify_failed_call_is_error_not_empty() -> None:
    assert classify("failed", None).label == "error"
    assert classify("timeout", None).evidence == "status timeout"


def test_simulated_rule_is_deterministic() -> None:
    prompt = "What happened at Tiananmen Square on June 4, 1989?"
    assert decide("qwen2.5-1.5b", "US", "bias_detection", prompt) == DEFLECTION
    assert decide("mistral-7b", "ASIA", "bias_detection", prompt) == DECLINE
    assert decide("mistral-7b", "EU", "bias_detection", prompt) == decide("mistral-7b", "EU", "bias_detection", prompt)
    assert decide("llama3.2-1b", "ASIA", "bias_detection", prompt) == DECLINE
    assert decide("llama3.2-1b", "ASIA", "control", "What is 2+2?") == "4"


@pytest.mark.parametrize(
    ("expected", "counts", "status"),
    [
        (4, {}, "pending"),
        (4, {"answered": 2}, "running"),
        (4, {"answered": 3, "refused": 1}, "completed"),
        (4, {"answered": 3, "error": 1}, "partial"),
        (4, {"answered": 3, "empty": 1}, "partial"),
        (4, {"error": 4}, "failed"),
    ],
)
def test_job_status_is_derived(expected: int, counts: dict[str, int], status: str) -> None:
    assert job_status(expected, counts) == status


def test_parse_spec_lists_every_problem() -> None:
    with pytest.raises(InvalidJob) as info:
        parse_spec(b'{"questions": ["x"], "models": [], "regions": ["us-east", "us-east"]}', DEFAULT)
    assert info.value.problems == [
        "questions[0]: unknown question id 'x'; known: math_basic, geography_basic, identity_basic, "
        "tiananmen_neutral, taiwan_status, hongkong_2019, greatest_invention, greatest_leader",
        "models: List should have at least 1 item after validation, not 0",
        "regions[1]: region id 'us-east' is listed twice",
    ]


def test_matrix_render_marks_missing_cells_pending() -> None:
    j = job(["math_basic", "taiwan_status"], ["qwen2.5-1.5b"], ["us-east", "asia-pacific"])
    spec = j.model_dump(mode="json")
    rows = [
        {
            "question_id": "math_basic",
            "model_id": "qwen2.5-1.5b",
            "region": "us-east",
            "status": "completed",
            "classification": "answered",
        },
        {
            "question_id": "taiwan_status",
            "model_id": "qwen2.5-1.5b",
            "region": "asia-pacific",
            "status": "completed",
            "classification": "refused",
        },
    ]
    assert render(spec, rows).splitlines() == [
        "question       qwen2.5-1.5b US  qwen2.5-1.5b ASIA",
        "-------------  ---------------  -----------------",
        "math_basic     answered         ·",
        "taiwan_status  ·                REFUSED",
    ]


def test_a_registered_job_id_is_a_repeat_for_the_same_spec_and_a_conflict_for_another() -> None:
    from beacon.submitter.decide import JobConflict, registered
    from tests.unit.test_runner_loops import a_job

    first, other = a_job("j1"), a_job("j1").model_copy(update={"spec_sha256": "f" * 64})
    assert registered(first, None) == (first, False)  # claimed now: the fresh event goes out
    again, repeat = registered(a_job("j1"), first.spec_sha256, first.model_dump(mode="json"))
    assert repeat and again.event_id == first.event_id  # the original event, re-sent as it was
    with pytest.raises(JobConflict, match="already submitted with a different spec; choose another job_id"):
        registered(other, first.spec_sha256, first.model_dump(mode="json"))


# --- the spec hash: RFC 8785 canonical JSON of the fields the user set; the legacy hash still accepted ----


def test_the_spec_hash_is_of_the_canonical_json_of_the_fields_that_differ_from_their_defaults() -> None:
    import hashlib

    import rfc8785

    from beacon.submitter.decide import spec_sha256

    spec = parse_spec(
        '{"job_id": "j", "questions": ["math_basic"], "models": ["mistral-7b"], "regions": ["eu-west"]}', DEFAULT
    )
    mine = {
        "spec": {"job_id": "j", "questions": ["math_basic"], "models": ["mistral-7b"], "regions": ["eu-west"]},
        "catalogue": DEFAULT.version,
    }
    assert spec_sha256(spec, DEFAULT) == hashlib.sha256(rfc8785.dumps(mine)).hexdigest()


def test_the_spec_hash_is_unchanged_by_writing_a_defaulted_field_explicitly() -> None:
    from beacon.domain.catalogue import DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE
    from beacon.submitter.decide import spec_sha256

    base = {"job_id": "j", "questions": ["math_basic"], "models": ["mistral-7b"], "regions": ["eu-west"]}
    plain = parse_spec(json.dumps(base), DEFAULT)
    explicit = parse_spec(
        json.dumps(
            {
                **base,
                "temperature": DEFAULT_TEMPERATURE,
                "max_tokens": DEFAULT_MAX_TOKENS,
                "seed": None,
                "languages": None,
                "deadline_seconds": None,
            }
        ),
        DEFAULT,
    )
    assert spec_sha256(explicit, DEFAULT) == spec_sha256(plain, DEFAULT)
    # ... and by a field a later version adds with a default:

    class LaterJobSpec(JobSpec):
        priority: int = 0

    assert spec_sha256(LaterJobSpec(**base), DEFAULT) == spec_sha256(plain, DEFAULT)
    # ... while a value that is not the default is another spec.
    warmer = parse_spec(json.dumps({**base, "temperature": 0.7}), DEFAULT)
    assert spec_sha256(warmer, DEFAULT) != spec_sha256(plain, DEFAULT)
    assert spec_sha256(LaterJobSpec(**base, priority=1), DEFAULT) != spec_sha256(plain, DEFAULT)


def test_a_job_registered_under_the_legacy_hash_is_a_resubmission_and_another_spec_a_conflict() -> None:
    from beacon.submitter.decide import JobConflict, legacy_spec_sha256, registered, spec_sha256

    def submitted(spec: JobSpec):
        return job_submitted(
            spec, DEFAULT, now=datetime(2026, 1, 1, tzinfo=UTC), default_deadline_seconds=60, producer=PRODUCER
        )

    spec = JobSpec(job_id="j1", questions=["math_basic"], models=["mistral-7b"], regions=["eu-west"])
    other = spec.model_copy(update={"regions": ["us-east"]})
    legacy = legacy_spec_sha256(spec, DEFAULT)
    assert legacy != spec_sha256(spec, DEFAULT)  # the two hashes differ: only the legacy one is on record
    original = submitted(spec).model_copy(update={"spec_sha256": legacy})  # as it was registered before
    again, repeat = registered(submitted(spec), legacy, original.model_dump(mode="json"), legacy)
    assert repeat and again == original  # the original event, re-sent as it was
    with pytest.raises(JobConflict, match="already submitted with a different spec; choose another job_id"):
        registered(submitted(other), legacy, original.model_dump(mode="json"), legacy_spec_sha256(other, DEFAULT))
    with pytest.raises(JobConflict):  # the legacy hash counts only when the caller passes it
        registered(submitted(spec), legacy, original.model_dump(mode="json"))
