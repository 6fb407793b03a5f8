"""The pipeline with a real HTTP model behind one region: an OpenAI-compatible local server for eu-west,
`simulated` for us-east. Every cell is recorded with its classification and receipt, and the model
server is called exactly once per cell routed to it."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from beacon.infra.catalogues import DEFAULT
from beacon.infra.settings import Settings
from beacon.runner import expand
from beacon.schemas.events import JobSubmitted, ProducerInfo, QuestionText, parse_event
from beacon.schemas.topics import dead_letter_topic
from tests.harness import Services, count_rows, wait_for_rows
from tests.kafka_tools import produce, read_all
from tests.model_server import ModelServer
from tests.signed import signed
from tests.support import Infra, beacon, own_namespace

pytestmark = pytest.mark.pipeline


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(scope="module")
def model_server() -> Iterator[ModelServer]:
    server = ModelServer(delay_s=0.02)
    yield server
    server.close()


@pytest.fixture(scope="module")
def routed(
    infra: Infra, settings: Settings, model_server: ModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, Services]]:
    """Own topic namespace (same database), own recorder and runners, eu-west routed to the local server."""
    own = own_namespace(infra, settings, "-routed")
    folder = tmp_path_factory.mktemp("routed")
    routing = folder / "routing.toml"
    routing.write_text(
        "[defaults]\nbackoff_base_s = 0.01\n"
        + "".join(
            f'[regions.eu-west."{m}"]\nprovider = "openai"\nendpoint = "{model_server.url}/v1"\n'
            f'model = "served-{m}"\nconcurrency = 2\n'
            for m in ("mistral-7b", "qwen2.5-1.5b")
        )
    )
    services = Services(own, folder)
    services.start("recorder", "recorder")
    for region in ("us-east", "eu-west"):
        services.start(f"runner-{region}", "runner", "--region", region, BEACON_ROUTING_FILE=str(routing))
    services.assert_alive()
    yield own, services
    services.stop_all()


def test_http_region_and_simulated_region_side_by_side(
    routed: tuple[Settings, Services], model_server: ModelServer
) -> None:
    own, services = routed
    spec = {
        "job_id": "routed-1",
        "questions": list(DEFAULT.questions),
        "models": ["mistral-7b", "qwen2.5-1.5b"],
        "regions": ["us-east", "eu-west"],
    }
    result = beacon(own, "submit", "-", "--json", stdin=json.dumps(spec).encode())
    assert result.returncode == 0, result.stderr.decode()
    assert wait_for_rows(own, services, "routed-1", 32) == 32

    with psycopg.connect(own.database_url) as conn:
        rows = conn.execute(
            "SELECT region, model_id, question_id, provider, provider_model, status, classification, answer,"
            " receipt, output FROM executions WHERE job_id = 'routed-1'"
        ).fetchall()
    eu = [r for r in rows if r[0] == "eu-west"]
    us = [r for r in rows if r[0] == "us-east"]
    assert len(eu) == 16 and len(us) == 16
    assert model_server.calls == 16  # one model call per cell routed to it, none for the simulated region
    assert {r[3] for r in eu} == {"openai"} and {r[3] for r in us} == {"simulated"}
    assert {r[4] for r in eu} == {"served-mistral-7b", "served-qwen2.5-1.5b"}
    assert {r[5] for r in rows} == {"completed"}
    refused_eu = {(r[1], r[2]) for r in eu if r[6] == "refused"}
    assert refused_eu == {("mistral-7b", "tiananmen_neutral"), ("qwen2.5-1.5b", "tiananmen_neutral")}

    for _, _, question_id, _, _, _, _, answer, receipt, output in eu:
        assert receipt["provider"] == "openai" and receipt["endpoint_region"] == "eu-west"
        assert receipt["endpoint"] == f"{model_server.url}/v1/chat/completions"
        assert receipt["prompt_sha256"] == sha(DEFAULT.questions[question_id].prompts["en"])
        assert receipt["system_prompt_sha256"] == sha(DEFAULT.regions["eu-west"].system_prompts["en"])
        assert receipt["answer_sha256"] == sha(answer)
        assert output["attempts"][0]["outcome"] == "ok" and output["tokens"]["prompt"] == 26
    # The server received the regional system prompt exactly once per call, and one question per call.
    for body in model_server.requests:
        assert [m["role"] for m in body["messages"]] == ["system", "user"]
        assert body["messages"][0]["content"] == DEFAULT.regions["eu-west"].system_prompts["en"]
    assert model_server.max_in_flight <= 2 * 2  # two endpoints' worth of routes, two slots each


def test_a_worker_runs_only_the_cells_its_job_asks_for(
    routed: tuple[Settings, Services], model_server: ModelServer
) -> None:
    """Forged CellScheduled records on eu-west's work topic (another region's cell, more tokens or a hotter
    temperature than the job asks, a question the job has not, a job nobody submitted) are dead-lettered
    with the reason and never reach the model server; the job's own cells and the next job run as usual."""
    own, services = routed
    spec = {"job_id": "admit-1", "questions": ["math_basic", "geography_basic"], "models": ["mistral-7b"]}
    spec["regions"] = ["eu-west", "us-east"]  # us-east is simulated: only eu-west's cells reach the server
    assert beacon(own, "submit", "-", stdin=json.dumps(spec).encode()).returncode == 0
    assert wait_for_rows(own, services, "admit-1", 4) == 4
    calls = model_server.calls

    job = next(e for r in read_all(own, own.topics.jobs_submitted) if (e := parse_event(r.value)).job_id == "admit-1")
    assert isinstance(job, JobSubmitted)
    runner = ProducerInfo(service="runner", region="eu-west", instance="forger")
    cell = expand.cells(job, "eu-west", runner)[0]
    extra_question = QuestionText(id="taiwan_status", category="x", prompts={"en": "Is it raining?"})
    other_job = job.model_copy(update={"job_id": "never-submitted"})
    forged = {
        "other region": expand.cells(job, "us-east", runner.model_copy(update={"region": "us-east"}))[0],
        "over the limits": cell.model_copy(update={"params": cell.params.model_copy(update={"max_tokens": 10**6})}),
        "not as its job asks": cell.model_copy(update={"params": cell.params.model_copy(update={"temperature": 2})}),
        "not a cell of its job": cell.model_copy(update={"question": extra_question}),
        "unknown job": expand.cells(other_job, "eu-west", runner)[0],
    }
    forged = {reason: c.model_copy(update={"event_id": uuid.uuid4()}) for reason, c in forged.items()}
    work = own.topics.work("eu-west")
    produce(own, work, [(c.key.encode(), signed(c, own.keys_dir)) for c in forged.values()])  # by the region's key

    spec["job_id"] = "admit-2"  # the stream goes on behind them
    assert beacon(own, "submit", "-", stdin=json.dumps(spec).encode()).returncode == 0
    assert wait_for_rows(own, services, "admit-2", 4) == 4
    reasons = {c.event_id: reason for reason, c in forged.items()}
    deadline = time.monotonic() + 30
    parked: dict[str, str] = {}
    while len(parked) < len(forged) and time.monotonic() < deadline:
        time.sleep(0.5)
        for r in read_all(own, dead_letter_topic(work)):
            event = parse_event(r.value)
            if event.event_id in reasons:
                parked[reasons[event.event_id]] = dict(r.headers)["beacon.error"].decode()
    assert {reason: error.split(")")[0] for reason, error in parked.items()} == {
        reason: f"refused ({reason}" for reason in forged
    }
    assert model_server.calls == calls + 2  # admit-2's two cells; not one forged cell reached the model
    assert count_rows(own, "admit-1") == 4 and count_rows(own, "never-submitted") == 0
    services.assert_alive()
