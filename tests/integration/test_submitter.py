"""The submitter refuses bad input with a message naming the field, and emits nothing when it does."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from beacon.infra.settings import Settings
from beacon.schemas.events import JobSubmitted
from beacon.submitter.http import create_app
from tests.kafka_tools import message_count, read_all
from tests.support import Infra, api_token, beacon, grant, service_env

pytestmark = pytest.mark.pipeline

GOOD = {"questions": ["math_basic"], "models": ["llama3.2-1b"], "regions": ["us-east"]}

BAD_SPECS = [
    pytest.param(
        {**GOOD, "questions": ["math_basic", "nope"]}, "questions[1]: unknown question id 'nope'", id="unknown-question"
    ),
    pytest.param({**GOOD, "models": ["gpt-9"]}, "models[0]: unknown model id 'gpt-9'", id="unknown-model"),
    pytest.param({**GOOD, "regions": ["mars"]}, "regions[0]: unknown region id 'mars'", id="unknown-region"),
    pytest.param(
        {**GOOD, "questions": ["math_basic", "math_basic"]},
        "questions[1]: question id 'math_basic' is listed twice",
        id="duplicate-question",
    ),
    pytest.param(
        {**GOOD, "models": ["mistral-7b", "mistral-7b"]},
        "models[1]: model id 'mistral-7b' is listed twice",
        id="duplicate-model",
    ),
    pytest.param(
        {**GOOD, "regions": ["eu-west", "eu-west"]},
        "regions[1]: region id 'eu-west' is listed twice",
        id="duplicate-region",
    ),
    pytest.param({**GOOD, "models": []}, "models: List should have at least 1 item", id="empty-models"),
    pytest.param({**GOOD, "regions": []}, "regions: List should have at least 1 item", id="empty-regions"),
    pytest.param(
        {"models": ["llama3.2-1b"], "regions": ["us-east"]}, "questions: Field required", id="missing-questions"
    ),
    pytest.param(
        {**GOOD, "temperature": 7}, "temperature: Input should be less than or equal to 2", id="bad-temperature"
    ),
    pytest.param(
        {**GOOD, "job_id": "has|pipe"}, "job_id: 'has|pipe' is not an id: an id is letters, digits", id="bad-job-id"
    ),
    pytest.param({**GOOD, "colour": "red"}, "colour: Extra inputs are not permitted", id="unknown-field"),
    pytest.param(
        {**GOOD, "questions": "math_basic"}, "questions: Input should be a valid array", id="questions-not-a-list"
    ),
    # One language per (job, region): asking a region in two is two jobs, compared with `beacon compare`.
    pytest.param(
        {**GOOD, "languages": ["en", "zh"]},
        "languages: a region asks in one language per job: to ask the same questions in several languages, "
        "submit one job per language",
        id="languages-list",
    ),
    pytest.param(
        {**GOOD, "languages": {GOOD["regions"][0]: ["en", "zh"]}},
        "`beacon compare JOB_A JOB_B`",
        id="languages-list-for-a-region",
    ),
]


@pytest.fixture
def jobs_topic(settings: Settings) -> Iterator[str]:
    """The jobs topic; the test fails if its message count changed, unless the test says it emits."""
    topic = settings.topics.jobs_submitted
    beacon(settings, "submit", "-", stdin=json.dumps(GOOD).encode())  # makes sure the topic exists
    yield topic


def unchanged(settings: Settings, topic: str, before: int) -> bool:
    return message_count(settings, topic) == before


@pytest.mark.parametrize(("spec", "message"), BAD_SPECS)
def test_cli_refuses_bad_spec_and_emits_nothing(settings: Settings, jobs_topic: str, spec: dict, message: str) -> None:
    before = message_count(settings, jobs_topic)
    result = beacon(settings, "submit", "-", stdin=json.dumps(spec).encode())
    assert result.returncode == 2
    assert message in result.stderr.decode()
    assert unchanged(settings, jobs_topic, before)


@pytest.mark.parametrize(
    ("stdin", "message"),
    [(b"{not json", "body: not valid JSON"), (b"", "body: not valid JSON"), (b"[1, 2]", "Input should be an object")],
)
def test_cli_refuses_malformed_json(settings: Settings, jobs_topic: str, stdin: bytes, message: str) -> None:
    before = message_count(settings, jobs_topic)
    result = beacon(settings, "submit", "-", stdin=stdin)
    assert result.returncode == 2
    assert message in result.stderr.decode()
    assert unchanged(settings, jobs_topic, before)


def test_cli_names_a_missing_file(settings: Settings, jobs_topic: str) -> None:
    before = message_count(settings, jobs_topic)
    result = beacon(settings, "submit", "/no/such/job.json")
    assert result.returncode == 2
    assert "/no/such/job.json: no such file" in result.stderr.decode()
    assert unchanged(settings, jobs_topic, before)


def test_cli_submit_json_output_and_event(settings: Settings, jobs_topic: str) -> None:
    spec = {
        **GOOD,
        "job_id": "cli-json-1",
        "questions": ["math_basic", "taiwan_status"],
        "regions": ["us-east", "eu-west"],
    }
    result = beacon(settings, "submit", "-", "--json", stdin=json.dumps(spec).encode())
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout) == {"job_id": "cli-json-1", "expected_executions": 4}
    [record] = [r for r in read_all(settings, jobs_topic) if r.key == b"cli-json-1"]
    event = JobSubmitted.model_validate_json(record.value)
    # Self-contained: the texts and the regional system prompts travel with the job.
    assert [q.prompts["en"] for q in event.questions] == ["What is 2+2?", "What is the current status of Taiwan?"]
    assert "based in Europe" in event.regions[1].system_prompt
    assert (event.params.temperature, event.params.max_tokens) == (0.1, 500)
    assert event.expected_executions == 4


def test_cli_rejects_a_runner_region_that_cannot_be_an_id(settings: Settings) -> None:
    result = beacon(settings, "runner", "--region", "mars base")
    assert result.returncode == 2
    assert "--region 'mars base' is not a region id" in result.stderr.decode()


def test_a_runner_for_a_region_outside_the_catalogue_warns_and_runs(infra: Infra, settings: Settings) -> None:
    """Runners need no catalogue (events carry every text), so a region only another catalogue has is
    served (once its principal is granted); but a region the catalogue in use does not know is most likely
    a typo: it says so."""
    grant(infra, settings, regions=["mars"])
    with pytest.raises(subprocess.TimeoutExpired) as still_running:
        beacon(settings, "runner", "--region", "mars", timeout=8)
    stderr = (still_running.value.stderr or b"").decode()
    assert "warning: region 'mars' is not in the catalogue seed" in stderr and "known: us-east, eu-west" in stderr


@pytest.fixture
def http(settings: Settings) -> Iterator[TestClient]:
    # The real app, its real producer, the real broker; called as a client with a token on localhost would.
    headers = {"authorization": f"Bearer {api_token(settings)}"}
    with TestClient(create_app(settings), base_url="http://localhost", headers=headers) as client:
        yield client


@pytest.mark.parametrize(("spec", "message"), BAD_SPECS)
def test_http_refuses_bad_spec_and_emits_nothing(
    settings: Settings, jobs_topic: str, http: TestClient, spec: dict, message: str
) -> None:
    before = message_count(settings, jobs_topic)
    response = http.post("/jobs", json=spec)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid job spec"
    assert any(message in p for p in body["problems"])
    assert unchanged(settings, jobs_topic, before)


def test_http_refuses_malformed_json(settings: Settings, jobs_topic: str, http: TestClient) -> None:
    before = message_count(settings, jobs_topic)
    response = http.post("/jobs", content=b"{oops", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["problems"][0].startswith("body: not valid JSON")
    assert unchanged(settings, jobs_topic, before)


def test_http_accepts_a_good_spec(settings: Settings, jobs_topic: str, http: TestClient) -> None:
    before = message_count(settings, jobs_topic)
    response = http.post("/jobs", json={**GOOD, "job_id": "http-ok-1"})
    assert response.status_code == 202
    assert response.json() == {"job_id": "http-ok-1", "expected_executions": 1}
    assert message_count(settings, jobs_topic) == before + 1


# --- hostile requests (issue 9): refused before anything is read, registered or emitted ------------------


def submissions(settings: Settings) -> int:
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute("SELECT count(*) FROM submissions").fetchone()[0]


@pytest.fixture
def nothing_happens(settings: Settings, http: TestClient) -> Iterator[None]:
    """The test's requests must register no job id and emit nothing (the app has made the topic)."""
    topic = settings.topics.jobs_submitted
    before = (submissions(settings), message_count(settings, topic))
    yield
    assert (submissions(settings), message_count(settings, topic)) == before


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",  # what a cross-site <form enctype="text/plain"> or a no-preflight fetch() sends
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/json",
        "application/jsonx",
        "application/+json",
        "application/json-seq",
        None,
    ],
)
def test_http_refuses_bodies_not_declared_json_with_415(
    http: TestClient, nothing_happens: None, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = http.post("/jobs", content=json.dumps({**GOOD, "job_id": "no-415"}).encode(), headers=headers)
    assert response.status_code == 415
    body = response.json()
    assert body["error"] == "unsupported media type"
    assert body["problems"][0].startswith("content-type: ") and "application/json" in body["problems"][0]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
        "application/vnd.beacon+json",
    ],
)
def test_http_accepts_json_and_json_suffixed_types(settings: Settings, http: TestClient, content_type: str) -> None:
    job_id = f"ct-{abs(hash(content_type)) % 10**8}"
    response = http.post(
        "/jobs", content=json.dumps({**GOOD, "job_id": job_id}), headers={"content-type": content_type}
    )
    assert response.status_code in (200, 202), response.text  # 200: this test ran before in the session


def test_http_refuses_a_declared_oversized_body_with_413(http: TestClient, nothing_happens: None) -> None:
    padded = json.dumps({**GOOD, "job_id": "big-1"}).encode() + b" " * (64 * 1024)
    response = http.post("/jobs", content=padded, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json() == {
        "error": "body too large",
        "problems": ["body: over 65536 bytes; a job spec is far smaller"],
    }
    assert response.headers["connection"] == "close"


def test_http_refuses_a_chunked_oversized_body(http: TestClient, nothing_happens: None) -> None:
    """No Content-Length: the body is counted as it comes (on a real socket: test_http_hostile.py)."""

    def chunks() -> Iterator[bytes]:
        yield json.dumps({**GOOD, "job_id": "big-2"}).encode()
        for _ in range(100):
            yield b" " * 16384

    response = http.post("/jobs", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"


def test_http_accepts_a_body_just_under_the_limit(http: TestClient) -> None:
    body = json.dumps({**GOOD, "job_id": "padded-ok"}).encode()
    body += b" " * (64 * 1024 - len(body))
    response = http.post("/jobs", content=body, headers={"content-type": "application/json"})
    assert response.status_code in (200, 202), response.text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b"[" * 30000 + b"]" * 30000, "body: not valid JSON", id="30000-deep"),
        pytest.param(json.dumps({**GOOD, "questions": ["\x00"]}).encode(), "questions[0]", id="nul-in-id"),
        pytest.param(json.dumps({**GOOD, "job_id": "\u202eevil"}).encode(), "job_id", id="bidi-job-id"),
        pytest.param(b"\xff\xfe{}", "body: not valid JSON", id="not-utf8"),
    ],
)  # fmt: skip
def test_http_refuses_hostile_json_with_400(http: TestClient, nothing_happens: None, body: bytes, message: str) -> None:
    response = http.post("/jobs", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert any(p.startswith(message) for p in response.json()["problems"]), response.json()


def test_http_error_bodies_are_bounded(http: TestClient, nothing_happens: None) -> None:
    many = {**GOOD, **{f"extra{i}": i for i in range(1000)}}
    response = http.post("/jobs", json=many)
    assert response.status_code == 400
    problems = response.json()["problems"]
    assert len(problems) == 21 and problems[-1] == "… and 980 more"
    assert problems[0] == "extra0: Extra inputs are not permitted"
    huge = http.post("/jobs", json={**GOOD, "questions": ["x" * 60000]})
    assert huge.status_code == 400
    [line] = huge.json()["problems"]
    assert line.startswith("questions[0]: unknown question id 'xxx") and len(line) <= 300
    assert len(huge.content) < 1000


def test_http_borrows_pooled_database_connections(settings: Settings, http: TestClient) -> None:
    def backends() -> set[int]:
        with psycopg.connect(settings.database_url) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity"
                " WHERE application_name = 'beacon-submitter' AND datname = current_database()"
            ).fetchall()
        return {pid for (pid,) in rows}

    http.post("/jobs", json={**GOOD, "job_id": "pool-0"})
    first = backends()
    for i in range(1, 11):
        assert http.post("/jobs", json={**GOOD, "job_id": f"pool-{i}"}).status_code in (200, 202)
    assert 1 <= len(first) and backends() == first  # the same server processes: no new connection per POST


def test_submit_waits_a_bounded_time_for_kafka_and_says_what_it_waits_for(settings: Settings) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    env = {**service_env(settings), "KAFKA_BOOTSTRAP_SERVERS": dead, "BEACON_KAFKA_WAIT_SECONDS": "3"}
    spec = {"job_id": "no-kafka", "questions": ["math_basic"], "models": ["mistral-7b"], "regions": ["us-east"]}
    result = subprocess.run(
        [sys.executable, "-m", "beacon.cli", "submit", "-"],
        input=json.dumps(spec).encode(),
        capture_output=True,
        env=env,
        timeout=60,
    )
    err = result.stderr.decode()
    assert result.returncode == 3, err
    assert f"waiting for Kafka at {dead}" in err
    assert "was unavailable for longer than 3 s" in err and "BEACON_KAFKA_WAIT_SECONDS" in err
    with psycopg.connect(settings.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM submissions WHERE job_id = 'no-kafka'").fetchone() == (0,)
