"""expand.decide (services/runner/beacon/runner/expand.py): what one region emits for one JobSubmitted.

A pure function of (job, region, the jobs already expanded: job_id → spec hash, routing): it never writes
that set (Expander.handle does, once the transaction is committed); no Kafka client exists here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from beacon.domain.cells import cell_count
from beacon.providers.routing import Routing
from beacon.runner import expand
from beacon.runner.expand import Record
from beacon.schemas.events import (
    CatalogueRef,
    CellScheduled,
    GenerationParams,
    JobExpanded,
    JobSubmitted,
    ModelRef,
    ProducerInfo,
    QuestionText,
    RegionRef,
    parse_event,
)
from beacon.schemas.topics import Topics
from tests.signed import service_keys, trust

TOPICS = Topics("unit")
WORK = "unit.work.eu-west"
EXPANDED = "unit.jobs.expanded.eu-west"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
PROMPTS = {"math_basic": "What is 2+2?", "taiwan_status": "What is the current status of Taiwan?"}
PROBE = "Which assistant are you?"


def job(
    job_id: str = "j1",
    questions: tuple[str, ...] = ("math_basic", "taiwan_status"),
    models: tuple[str, ...] = ("mistral-7b", "qwen2.5-1.5b"),
    regions: tuple[str, ...] = ("us-east", "eu-west"),
    temperature: float = 0.1,
) -> JobSubmitted:
    """A JobSubmitted (every region in English: one cell per region, model and question), built here so
    nothing depends on today's catalogue; its spec hash changes with anything it asks."""
    spec = repr((job_id, questions, models, regions, temperature)).encode()
    return JobSubmitted(
        producer=ProducerInfo(service="submitter", instance="test"),
        job_id=job_id,
        questions=[QuestionText(id=q, category="test", prompts={"en": PROMPTS[q]}) for q in questions],
        probe_prompts={} if questions else {"en": PROBE},
        catalogue=CatalogueRef(version="sha256:" + "0" * 16),
        models=[ModelRef(id=m, name=m.upper()) for m in models],
        regions=[RegionRef(id=r, display=r.upper(), language="en", system_prompt=f"Serving {r}.") for r in regions],
        params=GenerationParams(temperature=temperature, max_tokens=500),
        submitted_at=T0,
        deadline=T0 + timedelta(seconds=60),
        expected_executions=cell_count(len(regions), len(models), len(questions)),
        spec_sha256=hashlib.sha256(spec).hexdigest(),
    )


@dataclass
class Region:
    """One region's expander state: its id and the jobs it has expanded (job_id → spec hash)."""

    region: str = "eu-west"
    known: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def expander() -> Region:
    return Region()


def decide(state: Region, j: JobSubmitted) -> list[Record]:
    info = ProducerInfo(service="runner", region=state.region, instance="test")
    sign = service_keys("runner", state.region).signer.sign
    return expand.decide(j, state.region, state.known, Routing.simulated(), info, TOPICS, sign).records


def test_a_new_job_gives_one_cell_per_model_and_question_then_the_expansion(expander: Region) -> None:
    j = job()
    out = decide(expander, j)
    assert [(topic, key) for topic, key, _ in out] == [
        (WORK, b"j1|eu-west|mistral-7b|math_basic"),
        (WORK, b"j1|eu-west|mistral-7b|taiwan_status"),
        (WORK, b"j1|eu-west|qwen2.5-1.5b|math_basic"),
        (WORK, b"j1|eu-west|qwen2.5-1.5b|taiwan_status"),
        (EXPANDED, b"j1"),  # last: in the same transaction, keyed by job id (compacted)
    ]
    cells = [parse_event(value) for _, _, value in out[:-1]]
    assert all(isinstance(c, CellScheduled) for c in cells)
    assert {c.region.id for c in cells} == {"eu-west"} and {c.job_id for c in cells} == {"j1"}
    assert [c.key.encode() for c in cells] == [key for _, key, _ in out[:-1]]  # the key is the cell's own
    assert all(c.deadline == j.deadline and c.params == j.params for c in cells)
    assert cells[0].producer.service == "runner" and cells[0].producer.region == "eu-west"
    assert [c.prompt for c in cells if c.question] == [PROMPTS["math_basic"], PROMPTS["taiwan_status"]] * 2
    assert {c.region.system_prompt for c in cells} == {"Serving eu-west."}  # self-contained: its own words
    done = parse_event(out[-1][2])
    assert isinstance(done, JobExpanded)
    assert (done.job_id, done.region, done.spec_sha256, done.cells) == ("j1", "eu-west", j.spec_sha256, 4)
    # Each signed by eu-west's runner, as every consumer checks it.
    assert [trust().refusal(value) for _, _, value in out] == [None] * 5


def test_decide_does_not_mark_the_job_expanded_itself(expander: Region) -> None:
    """Only a committed transaction makes it a fact (handle()); an aborted one must leave the job to redo."""
    j = job()
    assert decide(expander, j)
    assert expander.known == {}
    assert len(decide(expander, j)) == 5  # still undecided: the same records again


def test_a_job_without_questions_gives_one_probe_cell_per_model(expander: Region) -> None:
    j = job("probe", questions=())
    out = decide(expander, j)
    assert [key for _, key, _ in out] == [b"probe|eu-west|mistral-7b|", b"probe|eu-west|qwen2.5-1.5b|", b"probe"]
    cells = [parse_event(value) for _, _, value in out[:-1]]
    assert all(c.question is None and c.probe_prompt == PROBE for c in cells)
    assert parse_event(out[-1][2]).cells == 2


@pytest.mark.parametrize(
    ("known", "resubmitted", "why"),
    [
        ({"j1": job().spec_sha256}, job(), "same spec again: a redelivery or an identical resubmission"),
        ({"j1": job(temperature=0.9).spec_sha256}, job(), "changed spec under the same id: still never twice"),
        ({"j1": job().spec_sha256}, job(regions=("eu-west",)), "changed regions, same id"),
    ],
    ids=["same-spec", "changed-spec", "changed-regions"],
)
def test_a_job_already_expanded_by_this_region_emits_nothing(
    expander: Region, known: dict[str, str], resubmitted: JobSubmitted, why: str
) -> None:
    assert (known["j1"] == resubmitted.spec_sha256) is why.startswith("same")  # the case is what it says
    expander.known.update(known)
    assert decide(expander, resubmitted) == [], why
    assert expander.known == known  # nothing rewritten: the first expansion stands


def test_another_job_id_is_not_affected_by_what_is_known(expander: Region) -> None:
    expander.known["j1"] = job().spec_sha256
    out = decide(expander, job("j2"))
    assert len(out) == 5 and out[-1][:2] == (EXPANDED, b"j2")


@pytest.mark.parametrize("regions", [("us-east",), ("us-east", "asia-pacific")])
def test_a_job_without_this_region_emits_nothing(expander: Region, regions: tuple[str, ...]) -> None:
    j = job(regions=regions)
    assert decide(expander, j) == []
    assert decide(Region("us-east"), j) != []  # the region it does name expands it


def test_each_region_expands_only_its_own_cells() -> None:
    j = job(regions=("us-east", "eu-west", "asia-pacific"))
    for region in ("us-east", "eu-west", "asia-pacific"):
        out = decide(Region(region), j)
        assert {topic for topic, _, _ in out} == {f"unit.work.{region}", f"unit.jobs.expanded.{region}"}
        assert all(key.split(b"|")[1] == region.encode() for _, key, _ in out[:-1])
        assert len(out) == 4 + 1


def test_a_region_asks_in_its_own_language_and_its_cells_carry_only_those_texts(expander: Region) -> None:
    fr = {"math_basic": "Combien font 2+2 ?"}
    j = JobSubmitted(
        producer=ProducerInfo(service="submitter", instance="test"),
        job_id="langs",
        questions=[
            QuestionText(
                id="math_basic", category="test", prompts={"en": PROMPTS["math_basic"], "fr": fr["math_basic"]}
            )
        ],
        catalogue=CatalogueRef(version="sha256:" + "0" * 16),
        models=[ModelRef(id="mistral-7b", name="M")],
        regions=[
            RegionRef(id="us-east", display="US", language="en", system_prompt="Serving the US."),
            RegionRef(id="eu-west", display="EU", language="fr", system_prompt="Au service de l'Europe."),
        ],
        params=GenerationParams(temperature=0.1, max_tokens=500),
        submitted_at=T0,
        deadline=T0 + timedelta(seconds=60),
        expected_executions=2,
        spec_sha256="2" * 64,
    )
    out = decide(expander, j)
    assert [key for _, key, _ in out] == [b"langs|eu-west|mistral-7b|math_basic", b"langs"]
    [french] = (parse_event(value) for _, _, value in out[:-1])
    assert french.region.language == "fr" and french.question.prompts == {"fr": "Combien font 2+2 ?"}
    assert french.prompt == "Combien font 2+2 ?" and french.region.system_prompt == "Au service de l'Europe."
    assert parse_event(out[-1][2]).cells == 1
