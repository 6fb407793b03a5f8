"""The cells of a job and the deadline's `timeout` events (schemas/cells.py, schemas/results.py).

missing_cells decides which cells the recorder's deadline clock records as `timeout`; results.timeout
builds that event. Checked: which cells, in which order, cells the job does not have ignored; and every
field of the event that the projection, the receipts and Kafka's partitioning rely on. Jobs are built here,
texts and all, so nothing depends on today's catalogue.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from beacon.domain import results
from beacon.domain.cells import cell_count, cells_of, missing_cells, question_slots
from beacon.domain.classify import CLASSIFIER_VERSION, classify
from beacon.schemas.events import (
    CatalogueRef,
    ExecutionCompleted,
    GenerationParams,
    JobSubmitted,
    ModelRef,
    ProducerInfo,
    QuestionText,
    RegionRef,
    encode,
    execution_key,
    parse_event,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
DEADLINE = T0 + timedelta(seconds=60)
AT = DEADLINE + timedelta(seconds=3)  # the recorder's clock when it sweeps
RECORDER = ProducerInfo(service="recorder", instance="deadlines")
PARAMS = GenerationParams(temperature=0.1, max_tokens=500, seed=7)
PROMPTS = {"math_basic": "What is 2+2?", "taiwan_status": "What is the current status of Taiwan?"}
PROBE = "Which assistant are you?"
CATALOGUE = CatalogueRef(version="sha256:" + "0" * 16)


def system(region: str) -> str:
    return f"You are a helpful assistant serving users in {region}."


def job(questions: list[str], models: list[str], regions: list[str], job_id: str = "j") -> JobSubmitted:
    """A JobSubmitted asking every region in English: one cell per (region, model, question)."""
    return JobSubmitted(
        producer=ProducerInfo(service="submitter", instance="s"),
        job_id=job_id,
        questions=[QuestionText(id=q, category="test", prompts={"en": PROMPTS[q]}) for q in questions],
        probe_prompts={} if questions else {"en": PROBE},
        catalogue=CATALOGUE,
        models=[ModelRef(id=m, name=m.upper()) for m in models],
        regions=[RegionRef(id=r, display=r.upper(), language="en", system_prompt=system(r)) for r in regions],
        params=PARAMS,
        submitted_at=T0,
        deadline=DEADLINE,
        expected_executions=cell_count(len(regions), len(models), len(questions)),
        spec_sha256="0" * 64,
    )


WITH_QUESTIONS = job(["math_basic", "taiwan_status"], ["mistral-7b", "llama3.2-1b"], ["us-east", "asia-pacific"])
WITHOUT_QUESTIONS = job([], ["mistral-7b", "llama3.2-1b"], ["eu-west"], job_id="bare")
# Each region asks in its own language: us-east in English, asia-pacific in Chinese.
ZH = {"math_basic": "2加2等于几？"}
ZH_SYSTEM = "你是一个乐于助人的助手。"
IN_LANGUAGES = JobSubmitted(
    producer=ProducerInfo(service="submitter", instance="s"),
    job_id="langs",
    questions=[
        QuestionText(id="math_basic", category="test", prompts={"en": PROMPTS["math_basic"], "zh": ZH["math_basic"]})
    ],
    catalogue=CATALOGUE,
    models=[ModelRef(id="mistral-7b", name="M")],
    regions=[
        RegionRef(id="us-east", display="US", language="en", system_prompt=system("us-east")),
        RegionRef(id="asia-pacific", display="Asia", language="zh", system_prompt=ZH_SYSTEM),
    ],
    params=PARAMS,
    submitted_at=T0,
    deadline=DEADLINE,
    expected_executions=2,
    spec_sha256="1" * 64,
)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- the cells ---------------------------------------------------------------------------------------


def test_cells_of_a_job_with_questions_regions_outermost() -> None:
    assert cells_of(WITH_QUESTIONS) == [
        ("us-east", "mistral-7b", "math_basic"),
        ("us-east", "mistral-7b", "taiwan_status"),
        ("us-east", "llama3.2-1b", "math_basic"),
        ("us-east", "llama3.2-1b", "taiwan_status"),
        ("asia-pacific", "mistral-7b", "math_basic"),
        ("asia-pacific", "mistral-7b", "taiwan_status"),
        ("asia-pacific", "llama3.2-1b", "math_basic"),
        ("asia-pacific", "llama3.2-1b", "taiwan_status"),
    ]
    assert len(cells_of(WITH_QUESTIONS)) == WITH_QUESTIONS.expected_executions == 8


def test_cells_of_a_job_without_questions_one_per_region_and_model() -> None:
    assert cells_of(WITHOUT_QUESTIONS) == [
        ("eu-west", "mistral-7b", None),
        ("eu-west", "llama3.2-1b", None),
    ]
    assert WITHOUT_QUESTIONS.expected_executions == 2


def test_cells_of_a_job_whose_regions_ask_different_languages_one_per_region() -> None:
    assert cells_of(IN_LANGUAGES) == [
        ("us-east", "mistral-7b", "math_basic"),
        ("asia-pacific", "mistral-7b", "math_basic"),
    ]


@pytest.mark.parametrize(
    ("ids", "slots"), [([], [None]), (["a"], ["a"]), (["b", "a"], ["b", "a"])], ids=["none", "one", "order-kept"]
)
def test_question_slots(ids: list[str], slots: list[str | None]) -> None:
    assert question_slots(ids) == slots


MISSING = [
    pytest.param(WITH_QUESTIONS, set(), cells_of(WITH_QUESTIONS), id="nothing-recorded"),
    pytest.param(WITH_QUESTIONS, set(cells_of(WITH_QUESTIONS)), [], id="all-recorded"),
    pytest.param(
        WITH_QUESTIONS,
        {c for c in cells_of(WITH_QUESTIONS) if c[0] == "us-east"} | {("asia-pacific", "llama3.2-1b", "math_basic")},
        [
            ("asia-pacific", "mistral-7b", "math_basic"),
            ("asia-pacific", "mistral-7b", "taiwan_status"),
            ("asia-pacific", "llama3.2-1b", "taiwan_status"),
        ],
        id="some-recorded-order-kept",
    ),
    pytest.param(
        WITH_QUESTIONS,
        {
            ("us-east", "mistral-7b", None),  # the "no question" cell: not a cell of a job with questions
            ("eu-west", "mistral-7b", "math_basic"),  # a region the job does not name
            ("us-east", "qwen2.5-1.5b", "math_basic"),  # a model it does not name
            ("us-east", "mistral-7b", "tiananmen_neutral"),  # a question it does not ask
        },
        cells_of(WITH_QUESTIONS),
        id="strays-fill-no-place",
    ),
    pytest.param(
        WITHOUT_QUESTIONS,
        set(),
        [("eu-west", "mistral-7b", None), ("eu-west", "llama3.2-1b", None)],
        id="no-questions-nothing-recorded",
    ),
    pytest.param(
        WITHOUT_QUESTIONS,
        {("eu-west", "mistral-7b", None), ("eu-west", "llama3.2-1b", "math_basic")},  # 2nd: a stray
        [("eu-west", "llama3.2-1b", None)],
        id="no-questions-with-a-stray",
    ),
    pytest.param(
        IN_LANGUAGES,
        {("asia-pacific", "mistral-7b", "math_basic")},
        [("us-east", "mistral-7b", "math_basic")],
        id="regions-in-different-languages",
    ),
]


@pytest.mark.parametrize(("j", "recorded", "missing"), MISSING)
def test_missing_cells(j: JobSubmitted, recorded: set, missing: list) -> None:
    assert missing_cells(j, recorded) == missing


# --- the timeout event -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("j", "cell", "language", "prompt", "system_prompt", "key"),
    [
        (
            WITH_QUESTIONS,
            ("asia-pacific", "llama3.2-1b", "taiwan_status"),
            "en",
            PROMPTS["taiwan_status"],
            system("asia-pacific"),
            "j|asia-pacific|llama3.2-1b|taiwan_status",
        ),
        (
            WITHOUT_QUESTIONS,
            ("eu-west", "mistral-7b", None),
            "en",
            PROBE,
            system("eu-west"),
            "bare|eu-west|mistral-7b|",
        ),
        (
            IN_LANGUAGES,
            ("asia-pacific", "mistral-7b", "math_basic"),
            "zh",
            ZH["math_basic"],
            ZH_SYSTEM,
            "langs|asia-pacific|mistral-7b|math_basic",
        ),
    ],
    ids=["question", "no-question", "language"],
)
def test_timeout_event(j: JobSubmitted, cell: tuple, language: str, prompt: str, system_prompt: str, key: str) -> None:
    region, model, question = cell
    event = results.timeout(j, cell, AT, RECORDER)
    assert (event.job_id, event.region, event.model_id, event.question_id) == (j.job_id, region, model, question)
    assert event.language == language
    assert event.status == "timeout" and event.answer is None and event.answer_edits is None
    assert event.provider == "deadline" and event.producer == RECORDER
    # Classified like any other result that did not complete.
    assert event.classification == classify("timeout", None)
    assert event.classification.label == "error" and event.classification.classifier_version == CLASSIFIER_VERSION
    # What was asked, provably: the hashes of the cell's real prompt and its region's system prompt.
    receipt = event.receipt
    assert receipt.prompt_sha256 == sha(prompt)
    assert receipt.system_prompt_sha256 == sha(system_prompt)
    assert receipt.params_sha256 == sha(json.dumps(PARAMS.model_dump(mode="json"), sort_keys=True))
    assert receipt.answer_sha256 is None and receipt.endpoint is None
    assert (receipt.provider, receipt.endpoint_region) == ("deadline", region)
    # From the deadline to the sweep, on the recorder's clock.
    assert (event.started_at, event.completed_at, event.occurred_at) == (DEADLINE, AT, AT)
    [attempt] = event.attempts
    assert (attempt.number, attempt.outcome, attempt.started_at, attempt.completed_at) == (1, "timeout", DEADLINE, AT)
    assert attempt.failure is not None
    assert (attempt.failure.code, attempt.failure.stage, attempt.failure.transient) == ("deadline", "job", False)
    assert DEADLINE.isoformat() in attempt.failure.message
    # The key a runner's result for the cell has: same partition, so the first event for the cell wins.
    assert event.key == key == execution_key(j.job_id, region, model, question)


def test_timeout_events_for_the_missing_cells_are_valid_and_distinct() -> None:
    recorded = set(cells_of(WITH_QUESTIONS)[:5])
    events = [results.timeout(WITH_QUESTIONS, c, AT, RECORDER) for c in missing_cells(WITH_QUESTIONS, recorded)]
    assert [e.key for e in events] == [
        "j|asia-pacific|mistral-7b|taiwan_status",
        "j|asia-pacific|llama3.2-1b|math_basic",
        "j|asia-pacific|llama3.2-1b|taiwan_status",
    ]
    assert len({e.event_id for e in events}) == 3
    for e in events:
        assert isinstance(e, ExecutionCompleted)
        assert parse_event(encode(e)) == e  # what goes on the wire reads back as the same event


def test_timeout_receipt_matches_a_runner_result_for_the_same_cell() -> None:
    """A late real result and the timeout describe the same question: their prompt hashes agree."""
    cell = ("us-east", "mistral-7b", "math_basic")
    asked = results.Asked.of_job(WITH_QUESTIONS, cell)
    assert (asked.prompt, asked.system_prompt) == ("What is 2+2?", system("us-east"))
    real = results.result(
        asked,
        producer=RECORDER,
        provider="simulated",
        status="completed",
        answer="4",
        attempts=[],
        started_at=T0,
        completed_at=T0,
    )
    late = results.timeout(WITH_QUESTIONS, cell, AT, RECORDER)
    for field in ("prompt_sha256", "system_prompt_sha256", "params_sha256"):
        assert getattr(real.receipt, field) == getattr(late.receipt, field), field
    assert real.key == late.key
    assert real.receipt.answer_sha256 == sha("4") and late.receipt.answer_sha256 is None
