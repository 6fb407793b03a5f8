"""The pipeline with a real HTTP model behind one region: an OpenAI-compatible local server for eu-west,
`simulated` for us-east. Every cell is recorded with its classification and receipt, and the model
server is called exactly once per cell routed to it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import psycopg
import pytest

from beacon.infra.catalogues import DEFAULT
from beacon.infra.settings import Settings
from tests.harness import Services, wait_for_rows
from tests.model_server import ModelServer
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
