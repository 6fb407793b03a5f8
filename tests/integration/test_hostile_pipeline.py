"""Hostile bytes through the whole pipeline: no service stops, nothing is lost, no secret is written down.

- A model server that answers every cell with something broken: every cell is recorded once (failed or
  cleaned), the model is called once per cell, the runner keeps running.
- Events the database refuses (a NUL byte from another producer): that event alone is dead-lettered with
  PostgreSQL's error, the rest of its batch is recorded, and the recorder goes on.
- Events that lie about their size (expected_executions 2^31, 10,000 × 10,000 cells, no probe prompt):
  dead-lettered by every consumer, never expanded.
- A canary API key, echoed by the model server: found in no topic, table or log.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest

from beacon.infra.catalogues import DEFAULT
from beacon.infra.settings import Settings
from beacon.schemas.events import (
    Attempt,
    Classification,
    ExecutionCompleted,
    JobSubmitted,
    ProducerInfo,
    Receipt,
    now,
)
from beacon.schemas.topics import dead_letter_topic
from tests.harness import Services, wait_for_rows
from tests.kafka_tools import produce, read_all
from tests.model_server import Behaviour, ModelServer
from tests.signed import signed
from tests.support import Infra, beacon, own_namespace

pytestmark = pytest.mark.pipeline

CANARY = "sk-canary-7e1d0c9b8a7f6e5d"


def raw(body: str, status: int = 200) -> Behaviour:
    return Behaviour(kind="status", status=status, body=body)


def openai_reply(content: object, **extra: object) -> str:
    choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
    return json.dumps({"model": "served", "choices": [choice], **extra})


@pytest.fixture(scope="module")
def hostile_server() -> Iterator[ModelServer]:
    server = ModelServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def hostile(
    infra: Infra, settings: Settings, hostile_server: ModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, Services]]:
    """Own namespace; eu-west routed to the hostile server with a canary key; a recorder of its own."""
    own = own_namespace(infra, settings, "-hostile")
    folder = tmp_path_factory.mktemp("hostile")
    routing = folder / "routing.toml"
    routing.write_text(
        "[defaults]\nbackoff_base_s = 0.01\nmax_attempts = 2\nmax_answer_chars = 20000\n"
        f'[regions.eu-west.mistral-7b]\nprovider = "openai"\nendpoint = "{hostile_server.url}/v1"\n'
        'model = "served"\napi_key_env = "BEACON_CANARY_KEY"\nconcurrency = 2\n'
    )
    services = Services(own, folder)
    services.start("recorder", "recorder")
    services.start(
        "runner-eu-west",
        "runner",
        "--region",
        "eu-west",
        BEACON_ROUTING_FILE=str(routing),
        BEACON_CANARY_KEY=CANARY,
    )
    services.assert_alive()
    yield own, services
    services.stop_all()


def test_broken_replies_become_recorded_cells_and_the_runner_goes_on(
    hostile: tuple[Settings, Services], hostile_server: ModelServer
) -> None:
    own, services = hostile
    hostile_server.script = [
        raw(openai_reply("The answer is 4.\u0000")),  # NUL: cleaned, completed
        raw(openai_reply("lone \ud800 surrogate")),  # cleaned, completed
        raw(openai_reply("word " * 200_000)),  # 1 MB: cut at 20,000 characters, completed
        raw(openai_reply("4", model=12345, usage={"prompt_tokens": "lots"})),  # odd fields dropped
        raw("[" * 20_000 + "]" * 20_000),  # failed, bad_response
        raw(openai_reply([1, 2, 3])),  # failed, bad_response
        raw('{"choices": [{"message": {"content": 1' + "0" * 5000 + "}}]}"),  # failed, bad_response
        raw(json.dumps({"error": f"key Bearer {CANARY} refused"}), status=401),  # failed, client_error
    ]
    spec = {
        "job_id": "hostile-1",
        "questions": list(DEFAULT.questions),
        "models": ["mistral-7b"],
        "regions": ["eu-west"],
    }
    assert beacon(own, "submit", "-", stdin=json.dumps(spec).encode()).returncode == 0
    assert wait_for_rows(own, services, "hostile-1", 8) == 8
    services.assert_alive()
    assert hostile_server.calls == 8  # once per cell: no retry of a bad reply, no re-run after a crash

    with psycopg.connect(own.database_url) as conn:
        rows = conn.execute(
            "SELECT status, output, length(answer) FROM executions WHERE job_id = 'hostile-1'"
        ).fetchall()
    statuses = sorted(r[0] for r in rows)
    assert statuses == ["completed"] * 4 + ["failed"] * 4
    codes = sorted(r[1]["attempts"][-1]["failure"]["code"] for r in rows if r[0] == "failed")
    assert codes == ["bad_response"] * 3 + ["client_error"]
    edits = [r[1].get("answer_edits") for r in rows if r[0] == "completed"]
    assert sorted(bool(e and e["truncated"]) for e in edits) == [False, False, False, True]
    assert sorted(e["replaced_characters"] for e in edits if e and not e["truncated"]) == [1, 1]
    assert max(r[2] or 0 for r in rows) == 20_000


def _event(job_id: str, question_id: str, answer: str) -> ExecutionCompleted:
    at = now()
    return ExecutionCompleted(
        producer=ProducerInfo(service="runner", region="us-east", instance="test"),
        job_id=job_id,
        region="us-east",
        model_id="mistral-7b",
        question_id=question_id,
        language="en",
        provider="simulated",
        status="completed",
        answer=answer,
        classification=Classification(label="answered", classifier_version="test"),
        attempts=[Attempt(number=1, started_at=at, completed_at=at, outcome="ok")],
        started_at=at,
        completed_at=at,
        receipt=Receipt(
            provider="simulated",
            endpoint_region="us-east",
            prompt_sha256="0" * 64,
            system_prompt_sha256="0" * 64,
            params_sha256="0" * 64,
            answer_sha256="0" * 64,
        ),
    )


def test_a_row_postgres_refuses_is_dead_lettered_alone_and_the_rest_is_recorded(
    hostile: tuple[Settings, Services],
) -> None:
    own, services = hostile
    topic = own.topics.executions_completed
    # The job, in a region with no runner here: its cells are filled by the results produced below only.
    questions = ["math_basic", "geography_basic", "identity_basic", "taiwan_status"]
    spec = {"job_id": "nul-1", "questions": questions, "models": ["mistral-7b"], "regions": ["us-east"]}
    assert beacon(own, "submit", "-", stdin=json.dumps(spec).encode()).returncode == 0
    good = [_event("nul-1", q, "4") for q in ("math_basic", "geography_basic", "identity_basic")]
    bad = _event("nul-1", "taiwan_status", "The answer is 4.\u0000")
    sent = {e.key: signed(e, own.keys_dir) for e in (good[0], bad, good[1], good[2])}  # as a runner signs them
    produce(own, topic, [(key.encode(), value) for key, value in sent.items()])
    assert wait_for_rows(own, services, "nul-1", 3) == 3
    services.assert_alive()

    parked = [r for r in read_all(own, dead_letter_topic(topic)) if r.key == bad.key.encode()]
    assert len(parked) == 1 and parked[0].value == sent[bad.key]  # the original bytes, once
    error = dict(parked[0].headers)["beacon.error"].decode()
    assert "PostgreSQL refused the row" in error and "0x00" in error

    # And the recorder is not stuck on it: the next job is recorded.
    spec = {"job_id": "after-nul", "questions": ["math_basic"], "models": ["llama3.2-1b"], "regions": ["eu-west"]}
    assert beacon(own, "submit", "-", stdin=json.dumps(spec).encode()).returncode == 0
    assert wait_for_rows(own, services, "after-nul", 1) == 1


def test_jobs_that_lie_about_their_size_are_dead_lettered_not_expanded(hostile: tuple[Settings, Services]) -> None:
    own, services = hostile
    topic = own.topics.jobs_submitted
    at = now()
    base = {
        "event_type": "JobSubmitted",
        "schema_version": 1,
        "producer": {"service": "someone-else", "instance": "test"},
        "questions": [{"id": "math_basic", "category": "control", "prompts": {"en": "What is 2+2?"}}],
        "catalogue": {"version": "sha256:0000000000000000"},
        "models": [{"id": "mistral-7b", "name": "Mistral"}],
        "regions": [{"id": "eu-west", "display": "EU", "language": "en", "system_prompt": "s"}],
        "params": {"temperature": 0.1, "max_tokens": 500},
        "submitted_at": at.isoformat(),
        "deadline": (at + timedelta(hours=1)).isoformat(),
        "expected_executions": 1,
        "spec_sha256": "0" * 64,
    }
    JobSubmitted.model_validate({**base, "job_id": "honest"})  # each lie below is the one thing wrong
    lies = {
        "liar-overflow": {"expected_executions": 2**31},
        "liar-huge": {
            "questions": [{"id": f"q{i}", "category": "c", "prompts": {"en": "p"}} for i in range(10_000)],
            "models": [{"id": f"m{i}", "name": "m"} for i in range(10_000)],
        },
        "liar-no-probe": {"questions": []},
        "liar-count": {"expected_executions": 5},
    }
    produce(
        own,
        topic,
        [(job_id.encode(), json.dumps({**base, **lie, "job_id": job_id}).encode()) for job_id, lie in lies.items()],
    )
    spec = {"job_id": "after-liars", "questions": ["math_basic"], "models": ["mistral-7b"], "regions": ["eu-west"]}
    assert beacon(own, "submit", "-", stdin=json.dumps(spec).encode()).returncode == 0
    assert wait_for_rows(own, services, "after-liars", 1) == 1
    services.assert_alive()
    parked = read_all(own, dead_letter_topic(topic))
    by_job = {job_id: [r for r in parked if r.key == job_id.encode()] for job_id in lies}
    assert {job_id: len(records) for job_id, records in by_job.items()} == {job_id: 2 for job_id in lies}
    with psycopg.connect(own.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM jobs WHERE job_id LIKE 'liar-%'").fetchone() == (0,)


def test_the_canary_key_is_in_no_topic_table_or_log(hostile: tuple[Settings, Services]) -> None:
    own, services = hostile
    # Runs after the job above, whose model server echoed the key in a 401 body.
    names = own.topics
    topics = [*names.all(), names.work("eu-west"), dead_letter_topic(names.executions_completed)]
    for topic in topics:
        for record in read_all(own, topic):
            assert CANARY.encode() not in (record.value or b"") + b"".join(v for _, v in record.headers), topic
    with psycopg.connect(own.database_url) as conn:
        for table in ("executions", "jobs", "submissions"):
            dump = conn.execute(f"SELECT coalesce(string_agg(t::text, ''), '') FROM {table} t").fetchone()[0]
            assert CANARY not in dump, table
    for name in ("recorder", "runner-eu-west"):
        assert CANARY not in services.log(name), name
