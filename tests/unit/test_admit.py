"""admit.JobCells (services/recorder/admit.py): is a result, or an expansion, one of its job's cells?

Built from the spec as the jobs table holds it (a JobSubmitted dumped to JSON), so the same decision is made
live, after a restart and in a replay."""

from __future__ import annotations

import json

import pytest

from beacon.infra.catalogues import DEFAULT
from beacon.recorder.admit import JobCells, why_not
from beacon.schemas.events import ProducerInfo, encode
from beacon.submitter.decide import job_submitted, parse_spec
from tests.unit.test_job_languages import NOW


def cells_of_spec(spec: dict) -> JobCells:
    job = job_submitted(
        parse_spec(json.dumps(spec), DEFAULT),
        DEFAULT,
        now=NOW,
        default_deadline_seconds=60,
        producer=ProducerInfo(service="submitter", instance="t"),
    )
    return JobCells.of_spec(json.loads(encode(job)))


JOB = cells_of_spec(
    {
        "job_id": "j",
        "questions": ["math_basic", "taiwan_status"],
        "models": ["mistral-7b"],
        "regions": ["us-east", "asia-pacific"],
        "languages": {"asia-pacific": "zh"},
    }
)
PROBE_JOB = cells_of_spec({"job_id": "p", "questions": [], "models": ["mistral-7b"], "regions": ["eu-west"]})


def test_the_spec_gives_each_region_its_language() -> None:
    assert JOB.languages == {"us-east": "en", "asia-pacific": "zh"}
    assert JOB.models == {"mistral-7b"} and JOB.questions == {"math_basic", "taiwan_status"}


@pytest.mark.parametrize(
    ("job", "cell"),
    [
        (JOB, ("us-east", "mistral-7b", "math_basic", "en")),
        (JOB, ("asia-pacific", "mistral-7b", "taiwan_status", "zh")),
        (PROBE_JOB, ("eu-west", "mistral-7b", None, "en")),
    ],
    ids=["english-region", "chinese-region", "no-question"],
)
def test_a_cell_of_the_job_is_admitted(job: JobCells, cell: tuple) -> None:
    assert job.why_not_result(*cell) is None


@pytest.mark.parametrize(
    ("job", "cell", "why"),
    [
        (JOB, ("eu-west", "mistral-7b", "math_basic", "en"), "region 'eu-west' is not one of job 'j''s regions"),
        (JOB, ("us-east", "llama3.2-1b", "math_basic", "en"), "model 'llama3.2-1b' is not one of job 'j''s models"),
        (JOB, ("us-east", "mistral-7b", "hongkong_2019", "en"), "question 'hongkong_2019' is not one of job 'j''s"),
        (JOB, ("us-east", "mistral-7b", None, "en"), "a result without a question, but job 'j' asks questions"),
        (PROBE_JOB, ("eu-west", "mistral-7b", "math_basic", "en"), "question 'math_basic', but job 'p' asks none"),
        (JOB, ("asia-pacific", "mistral-7b", "math_basic", "en"), "asked in 'en', but job 'j' asks region"),
        (JOB, ("us-east", "mistral-7b", "math_basic", "zh"), "job 'j' asks region 'us-east' in 'en'"),
    ],
    ids=["region", "model", "question", "no-question", "question-of-a-probe-job", "language", "other-language"],
)
def test_what_is_no_cell_of_the_job_is_named(job: JobCells, cell: tuple, why: str) -> None:
    said = job.why_not_result(*cell)
    assert said is not None and why in said


def test_an_expansion_must_be_of_a_region_of_the_job_and_of_its_spec() -> None:
    assert JOB.why_not_expansion("asia-pacific", JOB.spec_sha256) is None
    said = JOB.why_not_expansion("eu-west", JOB.spec_sha256)
    assert said is not None and "region 'eu-west' is not one of job 'j''s regions" in said
    said = JOB.why_not_expansion("us-east", "f" * 64)
    assert said is not None and "expanded a spec ffffffffffff… that is not job 'j''s" in said


def test_why_not_reads_rows_in_the_projections_column_order() -> None:
    result_row = ("j", "asia-pacific", "mistral-7b", "math_basic", "en", "simulated")
    said = why_not(JOB, "executions", result_row)
    assert said is not None and "asked in 'en'" in said
    assert why_not(JOB, "job_regions", ("j", "us-east", JOB.spec_sha256, 2)) is None
