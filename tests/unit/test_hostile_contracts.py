"""Hostile input against the contracts (issue 20, points 2, 6 and 7), each refused with a clear error and
nothing emitted or changed:

- a spec past one of the event's limits is a 400 from POST /jobs (exit 2 from `beacon submit`) naming the
  limit and the field, never a 500 while the event is built (point 2);
- an event with an oversized or malformed field is refused by decoding, so every consumer dead-letters it,
  and the event models have no unbounded string, list or table left (point 6);
- an id that would collide with a derived topic name (a region `x.dlq` is region x's dead-letter topic) is
  refused wherever a region id enters: the job spec, the catalogue, routing files, the runner's --region and
  the events (point 7).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from beacon.domain import results
from beacon.domain.catalogue import CatalogueError, parse
from beacon.domain.cells import cells_of
from beacon.infra import kafka
from beacon.infra.catalogues import default
from beacon.infra.settings import Settings
from beacon.infra.tokens import Token
from beacon.providers.routing import Routing, RoutingError
from beacon.recorder import project, store
from beacon.recorder.project import rows_of
from beacon.runner import expand
from beacon.schemas import commands, events
from beacon.schemas.commands import ONE_LANGUAGE_PER_REGION, JobSpec
from beacon.schemas.events import Event, JobExpanded, JobSubmitted, ProducerInfo, encode, parse_event
from beacon.schemas.ids import DEAD_LETTER_SUFFIX, ID_PATTERN, topic_twin
from beacon.schemas.topics import Topics, dead_letter_topic
from beacon.submitter import decide
from beacon.submitter.decide import InvalidJob, job_submitted, parse_spec
from beacon.submitter.http import create_app
from beacon.submitter.publish import Submitted
from tests.fakes import FakeConsumer, FakeProducer, Stop, record, recorder_on_fakes
from tests.signed import signed, trust

DEFAULT = default()
GOOD = {"questions": ["math_basic"], "models": ["mistral-7b"], "regions": ["us-east"]}
NOW = datetime(2026, 1, 1, tzinfo=UTC)
PRODUCER = ProducerInfo(service="submitter", instance="test")
LANGUAGES = "en zh fr de es it pt ru ja ko ar hi nl sv pl tr uk vi th id ms".split()  # 21 codes


def catalogue_text(questions: int = 1, models: int = 1, regions: int = 1, prompt: str = "Why?") -> str:
    return (
        'default_language = "en"\n[probe]\nprompts.en = "Who are you?"\n'
        + "".join(f'[questions.q{i}]\ncategory = "c"\nprompts.en = "{prompt}"\n' for i in range(questions))
        + "".join(f'[models.m{i}]\nname = "Model {i}"\n' for i in range(models))
        + "".join(f'[regions.r{i}]\ndisplay = "R{i}"\nsystem_prompts.en = "Serve."\n' for i in range(regions))
    )


# --- point 2: a spec past an event limit is a 400 naming the limit and the field, and nothing is emitted ---


class RecordingPublisher:
    """Stands in for the Kafka + PostgreSQL publisher: builds the event as the real one does and keeps it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.emitted: list[JobSubmitted] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def token(self, token: str) -> Token:
        """Any well-formed token is a live one with room to spare: these tests are about the body."""
        return Token("0a1b2c3d", "unit", True, 10**9, 10**9, NOW, None)

    async def submit(self, spec: JobSpec, token: Token | None = None) -> Submitted:
        event = job_submitted(spec, self.settings.catalogue, now=NOW, default_deadline_seconds=3600, producer=PRODUCER)
        self.emitted.append(JobSubmitted.model_validate_json(encode(event)))  # what a consumer would decode
        return Submitted(event.job_id, event.expected_executions)


# A client with a token, on a host the service answers to (tests/integration/test_api_tokens.py: without).
AUTHORIZED = {"authorization": "Bearer beacon_0a1b2c3d_" + "a" * 43}


def client_of(app: Any) -> TestClient:
    return TestClient(app, base_url="http://localhost", headers=AUTHORIZED)


def settings_with(tmp_path: Path, text: str | None) -> Settings:
    if text is None:
        return Settings.from_env({})
    path = tmp_path / "catalogue.toml"
    path.write_text(text)
    return Settings.from_env({"BEACON_CATALOGUE_FILE": str(path)})


@pytest.fixture
def submitter(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[TestClient, RecordingPublisher]]:
    settings = settings_with(tmp_path, getattr(request, "param", None))
    publisher = RecordingPublisher(settings)
    with client_of(create_app(settings, publisher=publisher)) as client:  # type: ignore[arg-type]
        yield client, publisher


def adhoc(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"id": f"adhoc-{i}", "prompt": "Why is the sky blue?", **extra} for i in range(n)]


OVER_THE_LIMITS = [
    pytest.param(
        {**GOOD, "questions": adhoc(1001)},
        "questions: List should have at most 1000 items, not 1001",
        id="1001-ad-hoc-questions",
    ),
    pytest.param(
        {**GOOD, "models": [f"m{i}" for i in range(101)]},
        "models: List should have at most 100 items, not 101",
        id="101-models",
    ),
    pytest.param(
        {**GOOD, "regions": [f"r{i}" for i in range(101)]},
        "regions: List should have at most 100 items, not 101",
        id="101-regions",
    ),
    pytest.param(
        {**GOOD, "languages": LANGUAGES}, f"languages: {ONE_LANGUAGE_PER_REGION}", id="a-list-of-21-languages"
    ),
    pytest.param(
        {**GOOD, "regions": ["us-east", "eu-west"], "languages": {"us-east": "en", "eu-west": LANGUAGES[10:]}},
        f"languages: {ONE_LANGUAGE_PER_REGION}",
        id="a-list-of-languages-for-one-region",
    ),
    pytest.param(
        {**GOOD, "questions": [{"id": "a", "prompts": dict.fromkeys(LANGUAGES, "Why?")}]},
        "questions[0].prompts: Dictionary should have at most 20 items",
        id="ad-hoc-prompts-in-21-languages",
    ),
    pytest.param(
        {**GOOD, "questions": [{"id": "a", "prompt": "x" * 20_001}]},
        "questions[0].prompt: String should have at most 20000 characters",
        id="ad-hoc-prompt-of-20001-characters",
    ),
    pytest.param(
        {
            "questions": adhoc(1000),
            "models": [*DEFAULT.models, *(f"m{i}" for i in range(8))],
            "regions": [*DEFAULT.regions, *(f"r{i}" for i in range(7))],
        },
        "body: the job has 110000 cells (regions × models × questions); a job may have at most 100000",
        id="110000-cells",
    ),
]


@pytest.mark.parametrize(("spec", "message"), OVER_THE_LIMITS)
def test_a_spec_past_an_event_limit_is_refused_when_parsed(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidJob) as refused:
        parse_spec(json.dumps(spec), DEFAULT)
    assert message in refused.value.problems


@pytest.mark.parametrize(("spec", "message"), OVER_THE_LIMITS)
def test_post_jobs_answers_400_naming_the_limit_and_emits_nothing(
    submitter: tuple[TestClient, RecordingPublisher], spec: dict[str, Any], message: str
) -> None:
    client, publisher = submitter
    response = client.post("/jobs", json=spec)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid job spec"
    assert message in response.json()["problems"]
    assert publisher.emitted == []


def test_the_fake_publisher_does_emit_a_spec_at_the_limits(submitter: tuple[TestClient, RecordingPublisher]) -> None:
    """The other side of the tests above: 1,000 ad-hoc questions in two languages, asked in one, is accepted and
    emitted."""
    client, publisher = submitter
    spec = {**GOOD, "questions": adhoc(1000), "languages": "zh"}
    spec["questions"] = [{"id": q["id"], "prompts": {"en": "Why?", "zh": "为什么？"}} for q in spec["questions"]]
    response = client.post("/jobs", json=spec)
    assert response.status_code == 202, response.text
    [event] = publisher.emitted
    assert len(event.questions) == 1000 and event.expected_executions == 1000
    assert event.questions[0].prompts == {"zh": "为什么？"}  # only the language the job asks in travels


def test_a_job_whose_event_would_pass_the_message_limit_is_refused_naming_its_size(tmp_path: Path) -> None:
    """60 catalogue questions of 19,000 characters each: every text fits, the event (1.14 MB) does not fit
    the 1 MB consumers accept; before, the broker took it (the producer allows 2 MB) and every consumer
    dead-lettered it."""
    settings = settings_with(tmp_path, catalogue_text(questions=60, prompt="x" * 19_000))
    spec = {"questions": [f"q{i}" for i in range(60)], "models": ["m0"], "regions": ["r0"]}
    publisher = RecordingPublisher(settings)
    with client_of(create_app(settings, publisher=publisher)) as client:  # type: ignore[arg-type]
        response = client.post("/jobs", json=spec)
        assert response.status_code == 400, response.text
        [problem] = response.json()["problems"]
        assert problem.startswith("questions: the job's JobSubmitted event would be 114")
        assert f"an event is at most {kafka.MAX_EVENT_BYTES} bytes" in problem
        assert publisher.emitted == []
        fewer = client.post("/jobs", json={**spec, "questions": spec["questions"][:50]})  # 950 KB: it fits
        assert fewer.status_code == 202, fewer.text
        [event] = publisher.emitted
        assert len(encode(event)) <= kafka.MAX_EVENT_BYTES


def test_beacon_submit_exits_2_naming_the_limit_and_submits_nothing(tmp_path: Path) -> None:
    """The real command, as a user runs it, with no broker or database to reach: it is refused before it
    would try (a spec it accepted would fail on them instead, with another exit code)."""
    job = tmp_path / "job.json"
    job.write_text(json.dumps({**GOOD, "questions": adhoc(1001)}))
    env = {
        "PATH": os.environ.get("PATH", ""),
        "BEACON_STATE_DIR": str(tmp_path),
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
        "BEACON_KAFKA_WAIT_SECONDS": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "beacon.cli", "submit", str(job)], capture_output=True, env=env, timeout=120
    )
    assert result.returncode == 2, result.stderr.decode()
    assert "questions: List should have at most 1000 items, not 1001" in result.stderr.decode()


def test_a_catalogue_with_more_models_than_an_event_carries_stops_the_submitter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """101 models: before, the catalogue allowed 1,000 and a job naming them all was a 500. Now the
    catalogue is refused when it is read, naming the limit, and the submitter never serves."""
    from beacon.infra import http
    from beacon.submitter.__main__ import serve

    monkeypatch.setattr(http, "server", lambda *a, **k: pytest.fail("the submitter must not serve"))
    settings = settings_with(tmp_path, catalogue_text(models=101))
    with pytest.raises(CatalogueError) as refused:
        serve(settings, "127.0.0.1", 0)
    [problem] = refused.value.problems
    assert problem.startswith("line ") and "models: more than 100 entries" in problem
    assert "a JobSubmitted carries at most 100 models" in problem


def test_the_limits_are_the_events_constants_imported_not_repeated() -> None:
    from beacon.domain import catalogue

    assert catalogue.MAX_ENTRIES == {
        "questions": events.MAX_QUESTIONS_PER_JOB,
        "models": events.MAX_MODELS_PER_JOB,
        "regions": events.MAX_REGIONS_PER_JOB,
    }
    assert commands.JobId is events.JobId and commands.Language is events.Language
    schema = JobSpec.model_json_schema()
    props = schema["properties"]
    assert props["questions"]["maxItems"] == events.MAX_QUESTIONS_PER_JOB
    assert props["models"]["maxItems"] == events.MAX_MODELS_PER_JOB
    assert props["regions"]["maxItems"] == events.MAX_REGIONS_PER_JOB
    adhoc_prompt = schema["$defs"]["AdHocQuestion"]["properties"]["prompt"]["anyOf"][0]
    assert adhoc_prompt["maxLength"] == events.MAX_PROMPT_CHARS
    # The numbers that used to be repeated beside the events' are gone.
    assert not hasattr(commands, "MAX_LANGUAGES_PER_REGION") and not hasattr(catalogue, "MAX_TEXT_CHARS")


def test_a_catalogue_at_its_limits_makes_valid_events_at_the_event_limits() -> None:
    """100 models × 100 regions × 10 questions = 100,000 cells, the most a job may have: accepted, and its
    event decodes; one more question is refused when parsed."""
    catalogue = parse(catalogue_text(questions=10, models=100, regions=100))
    spec = {
        "questions": [f"q{i}" for i in range(10)],
        "models": list(catalogue.models),
        "regions": list(catalogue.regions),
    }
    event = job_submitted(
        parse_spec(json.dumps(spec), catalogue), catalogue, now=NOW, default_deadline_seconds=60, producer=PRODUCER
    )
    assert parse_event(encode(event)).expected_executions == events.MAX_CELLS_PER_JOB
    with pytest.raises(InvalidJob) as refused:
        parse_spec(json.dumps({**spec, "questions": [*spec["questions"], {"id": "more", "prompt": "?"}]}), catalogue)
    assert refused.value.problems[0].startswith("body: the job has 110000 cells")


# --- point 6: every string, list and table of an event is bounded; a hostile one is dead-lettered --------


def a_job() -> JobSubmitted:
    spec = parse_spec(json.dumps({**GOOD, "job_id": "j1", "regions": ["us-east", "eu-west"]}), DEFAULT)
    return job_submitted(spec, DEFAULT, now=NOW, default_deadline_seconds=60, producer=PRODUCER)


JOB = a_job()
CELL = expand.cells(JOB, "eu-west", ProducerInfo(service="runner", region="eu-west", instance="r1"))[0]
DONE = results.timeout(JOB, cells_of(JOB)[0], NOW + timedelta(minutes=5), PRODUCER)
EXPANDED = JobExpanded(
    producer=PRODUCER, job_id="j1", region="eu-west", spec_sha256=JOB.spec_sha256, cells=1, providers={"m": "simulated"}
)
SCRIPT = "<script>alert(1)</script>"


def hostile(event: Any, path: str, value: Any) -> bytes:
    """The event's JSON, signed by its producer, with the field at the dotted `path` then set to `value`, as
    another producer could write it."""
    data = json.loads(signed(event))
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node[part]
    node[last] = value
    return json.dumps(data).encode()


def with_edits(event: Any) -> Any:
    edits = {"truncated": True, "replaced_characters": 0, "original_chars": 3, "original_sha256": "ab" * 32}
    return event.model_copy(update={"answer_edits": events.AnswerEdits(**edits)})


HOSTILE_EVENTS = [
    pytest.param(JOB, "producer.service", "s" * 800_000, id="producer-service-800KB"),
    pytest.param(JOB, "producer.instance", "i" * 800_000, id="producer-instance-800KB"),
    pytest.param(JOB, "producer.region", "r" * 10_000, id="producer-region-not-an-id"),
    pytest.param(DONE, "receipt.prompt_sha256", SCRIPT * 30_000, id="receipt-prompt-sha256-750KB-script"),
    pytest.param(DONE, "receipt.system_prompt_sha256", SCRIPT, id="receipt-system-prompt-sha256-script"),
    pytest.param(DONE, "receipt.params_sha256", "A" * 64, id="receipt-params-sha256-upper-case"),
    pytest.param(DONE, "receipt.answer_sha256", "0" * 65, id="receipt-answer-sha256-65-digits"),
    pytest.param(with_edits(DONE), "answer_edits.original_sha256", SCRIPT * 1000, id="answer-edits-sha256"),
    pytest.param(DONE, "classification.language", "x" * 100_000, id="classification-language-100KB"),
    pytest.param(DONE, "classification.language", "english", id="classification-language-not-a-code"),
    pytest.param(DONE, "provider", "p" * 10_000, id="execution-provider"),
    pytest.param(EXPANDED, "spec_sha256", SCRIPT * 10, id="expanded-spec-sha256-script"),
    pytest.param(EXPANDED, "providers", {f"m{i}": "simulated" for i in range(20_000)}, id="expanded-20000-providers"),
    pytest.param(EXPANDED, "providers", {"m": "p" * 100_000}, id="expanded-provider-name-100KB"),
    pytest.param(EXPANDED, "providers", {SCRIPT: "simulated"}, id="expanded-provider-key-not-an-id"),
    pytest.param(EXPANDED, "unrouted", [f"m{i}" for i in range(20_000)], id="expanded-20000-unrouted"),
    pytest.param(EXPANDED, "cells", 10**9, id="expanded-a-billion-cells"),
    pytest.param(EXPANDED, "region", "eu-west.dlq", id="expanded-region-dead-letter-suffix"),
    pytest.param(DONE, "region", "us-east_dlq", id="execution-region-dead-letter-suffix"),
    pytest.param(CELL, "producer.instance", "i" * 800_000, id="cell-producer-instance-800KB"),
]


@pytest.mark.parametrize(("event", "path", "value"), HOSTILE_EVENTS)
def test_a_hostile_event_is_refused_by_decoding_and_becomes_poison(event: Any, path: str, value: Any) -> None:
    raw = hostile(event, path, value)
    assert len(raw) <= kafka.MAX_EVENT_BYTES  # within the size limit: only the field's own bound refuses it
    topic = {"JobSubmitted": "ns.jobs.submitted", "JobExpanded": "ns.jobs.expanded.eu-west"}.get(
        event.event_type, "ns.executions.completed"
    )
    kafka.read_event(record(topic, 4, signed(event)), type(event), trust=trust())  # the untouched event is valid
    with pytest.raises(ValidationError) as refused:
        parse_event(raw)
    assert path.split(".")[-1] in str(refused.value)
    source = record(topic, 5, raw)
    with pytest.raises(kafka.Poison, match="not a valid event"):  # what every consumer decodes with
        kafka.read_event(source, type(event), trust=trust())
    rows = rows_of([source], Topics("ns"), trust())  # the recorder: no row of any kind, the record is poison
    assert rows.poison and rows.poison[0].record is source
    assert rows.jobs == rows.executions == rows.job_regions == []


def test_the_recorder_dead_letters_hostile_events_and_writes_nothing() -> None:
    names = Settings.from_env({"BEACON_TOPIC_NAMESPACE": "unit"}).topics
    batch = [
        record(names.expanded("eu-west"), 0, hostile(EXPANDED, "providers", {f"m{i}": "x" for i in range(20_000)})),
        record(names.executions_completed, 0, hostile(DONE, "receipt.prompt_sha256", SCRIPT * 30_000)),
        record(names.jobs_submitted, 0, hostile(JOB, "producer.service", "s" * 800_000)),
    ]
    producer = FakeProducer()
    consumer = FakeConsumer([batch], done=lambda: bool(consumer.committed))
    written: list[project.Rows] = []

    async def write(rows: project.Rows) -> store.Recorded:
        written.append(rows)
        return store.Recorded(store.Written(0, 0, 0))

    recorder = recorder_on_fakes(
        Settings.from_env({"BEACON_TOPIC_NAMESPACE": "unit", "BEACON_RECORDER_PORT": "0"}), consumer, producer, write
    )
    with pytest.raises(Stop):
        asyncio.run(recorder.consume())
    assert all(not (rows.jobs or rows.executions or rows.job_regions) for rows in written)
    assert sorted(topic for topic, *_ in producer.sent) == sorted(dead_letter_topic(r.topic) for r in batch)
    assert [value for _, _, value, _ in producer.sent] == [r.value for r in batch]  # the original bytes


def test_the_expander_dead_letters_a_hostile_job_and_schedules_no_cell() -> None:
    from tests.unit.test_runner_loops import NAMES, an_expander

    source = record(NAMES.jobs_submitted, 0, hostile(JOB, "producer.instance", "i" * 800_000))
    producer = FakeProducer()
    with pytest.raises(Stop):
        asyncio.run(an_expander(FakeConsumer([[source]]), producer).run())
    (txn,) = producer.committed
    assert [entry[0] for entry in txn] == [dead_letter_topic(NAMES.jobs_submitted), "offsets"]


def _bounded_pattern(pattern: str) -> bool:
    """No unbounded repetition (*, +, {n,}) outside a character class: a '+' inside one, as in base64's
    [A-Za-z0-9+/], is a literal character."""
    outside = re.sub(r"\[(?:\\.|[^\]\\])*\]", "", pattern)
    return not re.search(r"[*+]|\{\d+,\}", outside)


def _unbounded(schema: dict[str, Any], path: str, defs: dict[str, Any]) -> Iterator[str]:
    """Every string without maxLength or a bounded pattern, array without maxItems and table without
    maxProperties in a JSON Schema (pydantic's), by its path."""
    if "$ref" in schema:
        yield from _unbounded(defs[schema["$ref"].rsplit("/", 1)[1]], path, defs)
        return
    for key in ("anyOf", "oneOf", "allOf"):
        for i, sub in enumerate(schema.get(key, [])):
            yield from _unbounded(sub, f"{path}|{i}", defs)
    kind = schema.get("type")
    if kind == "string" and "const" not in schema and "enum" not in schema and "format" not in schema:
        pattern = schema.get("pattern")
        bounded_pattern = pattern is not None and _bounded_pattern(pattern)
        if "maxLength" not in schema and not bounded_pattern:
            yield path
    elif kind == "array":
        if "maxItems" not in schema:
            yield path
        yield from _unbounded(schema.get("items", {}), f"{path}[]", defs)
    elif kind == "object":
        for name, sub in schema.get("properties", {}).items():
            yield from _unbounded(sub, f"{path}.{name}", defs)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            if "maxProperties" not in schema:
                yield path
            yield from _unbounded(extra, f"{path}{{}}", defs)
            keys = schema.get("propertyNames", {"type": "string", "maxLength": 0})  # absent: only via `extra`
            yield from _unbounded(keys, f"{path}{{key}}", defs)


def test_no_event_field_is_unbounded() -> None:
    """Walks every field of every event: a new unbounded field fails here."""
    schema = TypeAdapter(Event).json_schema()
    assert list(_unbounded(schema, "Event", schema.get("$defs", {}))) == []


def test_the_pattern_strings_are_bounded_by_their_own_counts() -> None:
    for pattern in (ID_PATTERN, events.LANGUAGE_PATTERN):
        assert not re.search(r"[*+]|\{\d+,\}", pattern)


@pytest.mark.parametrize(
    ("pattern", "bounded"),
    [
        (r"^[A-Za-z0-9+/]{86}==$", True),  # a signature: '+' in a class is a literal
        (r"^ed25519:[0-9a-f]{16}$", True),
        (r"^[a-z]+$", False),
        (r"^[+]*$", False),
        (r"^a{3,}$", False),
        (r"^[\]+]{2}$", True),  # an escaped ']' does not end the class early
    ],
)
def test_a_pattern_is_bounded_only_without_repetition_outside_its_classes(pattern: str, bounded: bool) -> None:
    assert _bounded_pattern(pattern) is bounded


# --- point 7: no id may end in '.dlq' or '_dlq'; regions Kafka would confuse are refused -----------------


def the_rule(ident: str) -> bool:
    """The rule, said plainly (ids.py spells it as a pattern without look-ahead, which pydantic lacks)."""
    return bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", ident)) and not DEAD_LETTER_SUFFIX.search(ident)


def test_the_id_pattern_is_the_rule_in_python_and_in_pydantic() -> None:
    python = re.compile(ID_PATTERN)
    rust = TypeAdapter(events.Id)
    for length in range(6):
        for chars in itertools.product("aqldQLD._-0", repeat=length):
            ident = "".join(chars)
            assert bool(python.fullmatch(ident)) is the_rule(ident), ident
    for ident in ["us-east", "dlq", "x-dlq", "xdlq", "x.dlq2", "a" * 64, "a" * 60 + ".dlq", "x.dlq", "x_DLQ", "a" * 65]:
        try:
            rust.validate_python(ident)
            accepted = True
        except ValidationError:
            accepted = False
        assert accepted is the_rule(ident) is bool(python.fullmatch(ident)), ident


@settings(max_examples=300, deadline=None)
@given(st.from_regex(ID_PATTERN, fullmatch=True), st.from_regex(ID_PATTERN, fullmatch=True))
def test_no_region_topic_is_another_region_s_dead_letter_topic(region: str, other: str) -> None:
    names = Topics("beacon")
    projected = re.compile(names.projected())
    mine = [names.work(region), names.expanded(region)]
    theirs = [dead_letter_topic(t) for t in (names.work(other), names.expanded(other), *names.all())]
    assert not {topic_twin(t) for t in mine} & {topic_twin(t) for t in theirs}  # as Kafka compares names
    assert projected.match(names.expanded(region)) and not projected.match(dead_letter_topic(names.expanded(other)))


REGION_WITH_SUFFIX = "us-east.dlq"
WHY = (
    "it ends in '.dlq', the suffix of dead-letter topics: as a region it would name the dead-letter topic of "
    "region 'us-east'"
)


def test_a_job_naming_a_dead_letter_region_is_a_400_saying_why_and_emits_nothing(
    submitter: tuple[TestClient, RecordingPublisher],
) -> None:
    client, publisher = submitter
    response = client.post("/jobs", json={**GOOD, "regions": [REGION_WITH_SUFFIX]})
    assert response.status_code == 400
    [problem] = response.json()["problems"]
    assert problem.startswith(f"regions[0]: {REGION_WITH_SUFFIX!r} is not a region id: {WHY}")
    job_id = client.post("/jobs", json={**GOOD, "job_id": "mine_dlq"})
    assert job_id.status_code == 400
    assert job_id.json()["problems"][0].startswith("job_id: 'mine_dlq' is not an id: it ends in '_dlq'")
    assert publisher.emitted == []


@pytest.mark.parametrize("region", ['"us-east.dlq"', "us-east_dlq", '"us-east.DLQ"'])
def test_a_catalogue_region_with_a_dead_letter_suffix_is_refused_with_its_line(region: str) -> None:
    text = catalogue_text().replace("[regions.r0]", f"[regions.{region}]")
    with pytest.raises(CatalogueError) as refused:
        parse(text)
    [problem] = refused.value.problems
    bare = region.strip('"')
    assert problem.startswith(f"line 9: regions.{bare}: it ends in {bare[-4:]!r}, the suffix of dead-letter topics")


def test_two_catalogue_regions_kafka_would_confuse_are_refused() -> None:
    text = catalogue_text(regions=2).replace("[regions.r0]", '[regions."us.east"]')
    text = text.replace("[regions.r1]", '[regions."US_east"]')
    with pytest.raises(CatalogueError) as refused:
        parse(text)
    [problem] = refused.value.problems
    assert problem.startswith("line 12: regions.US_east: its topics would collide with region 'us.east''s")
    assert "'.' and '_'" in problem


def test_a_routing_file_with_a_dead_letter_region_is_refused() -> None:
    text = '[regions."us-east.dlq".mistral-7b]\nprovider = "simulated"\n'
    with pytest.raises(RoutingError) as refused:
        Routing.from_toml(text, "routing.toml")
    assert "regions.us-east.dlq: not a region id" in str(refused.value)
    assert "not ending in '.dlq' or '_dlq'" in str(refused.value)


@pytest.mark.parametrize("region", ["us-east.dlq", "us-east_dlq", "us-east.Dlq"])
def test_a_runner_for_a_dead_letter_region_does_not_start(region: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from beacon.infra import service
    from beacon.runner.__main__ import BadRegion, serve

    monkeypatch.setattr(service, "run_service", lambda *a, **k: pytest.fail("the runner must not start"))
    with pytest.raises(BadRegion) as refused:
        serve(Settings.from_env({}), region)
    assert f"--region {region!r} is not a region id" in str(refused.value)
    assert "not ending in '.dlq' or '_dlq' (the suffix of dead-letter topics" in str(refused.value)


def test_a_job_submitted_event_with_a_dead_letter_region_is_refused_by_decoding() -> None:
    raw = encode(JOB).replace(b'"id":"eu-west"', b'"id":"eu-west.dlq"')
    assert raw != encode(JOB)
    with pytest.raises(ValidationError):
        parse_event(raw)


def test_decide_builds_a_trial_event_no_smaller_than_the_real_one() -> None:
    spec = parse_spec(json.dumps(GOOD), DEFAULT)
    trial = job_submitted(
        spec, DEFAULT, now=decide._TRIAL_NOW, default_deadline_seconds=3600, producer=decide._TRIAL_PRODUCER
    )
    real = job_submitted(
        spec,
        DEFAULT,
        now=datetime.now(UTC),
        default_deadline_seconds=1,
        producer=ProducerInfo(service="submitter", instance=kafka.instance_id("submitter")),
    )
    assert len(encode(trial)) >= len(encode(real.model_copy(update={"job_id": trial.job_id})))
