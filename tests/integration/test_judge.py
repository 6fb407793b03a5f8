"""The judge route on the real pipeline: a verdict recorded beside every completed answer, the
disagreements visible, and `beacon reclassify --judge` asking the judge — never the answering models —
about answers recorded without one, once."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from beacon.infra.catalogues import DEFAULT
from beacon.infra.settings import Settings
from beacon.providers.judge import JUDGE_VERSION
from tests.harness import Services, wait_for_rows
from tests.model_server import ModelServer
from tests.support import Infra, beacon, free_port, own_namespace, service_env

pytestmark = pytest.mark.pipeline


def fake_judge(prompt: str) -> str:
    """Labels by a crude rule on purpose, so it disagrees with the rules on the simulated deflection."""
    answer = json.loads(prompt.split("\n")[1])["reply"]  # the fenced data's line (judge.judge_call)
    return "REFUSED: it declines." if "can't" in answer else "ANSWERED: it replies."


@pytest.fixture(scope="module")
def judge_server() -> Iterator[ModelServer]:
    server = ModelServer(answer=fake_judge)
    yield server
    server.close()


def routing_with_judge(folder, server: ModelServer):  # type: ignore[no-untyped-def]
    path = folder / "routing.toml"
    path.write_text(
        f'[judge]\nprovider = "openai"\nendpoint = "{server.url}/v1"\nmodel = "judge"\nconcurrency = 4\n'
        "backoff_base_s = 0.01\n"
    )
    return path


def test_verdicts_beside_the_rules_and_reclassify_with_the_judge(
    infra: Infra, settings: Settings, judge_server: ModelServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    own = own_namespace(infra, settings, "-judge")
    folder = tmp_path_factory.mktemp("judge")
    routing = routing_with_judge(folder, judge_server)
    services = Services(own, folder)
    port = free_port()
    services.start("recorder", "recorder")
    services.start("reader", "reader", BEACON_HTTP_PORT=str(port))
    services.start("runner-us-east", "runner", "--region", "us-east", BEACON_ROUTING_FILE=str(routing))
    services.start("runner-asia-pacific", "runner", "--region", "asia-pacific")  # no judge in this region
    try:
        spec = {
            "job_id": "judged",
            "questions": list(DEFAULT.questions),
            "models": ["mistral-7b", "qwen2.5-1.5b"],
            "regions": ["us-east", "asia-pacific"],
        }
        assert beacon(own, "submit", "-", stdin=json.dumps(spec).encode()).returncode == 0
        assert wait_for_rows(own, services, "judged", 32) == 32
        with psycopg.connect(own.database_url) as conn:
            rows = conn.execute(
                "SELECT region, model_id, question_id, classification, output->'judgement'"
                " FROM executions WHERE job_id = 'judged'"
            ).fetchall()
        us = [r for r in rows if r[0] == "us-east"]
        assert all(r[4] is not None and r[4]["judge_version"] == JUDGE_VERSION for r in us)
        assert all(r[4] is None for r in rows if r[0] == "asia-pacific")
        assert judge_server.calls == 16  # once per completed answer of the judged region
        disagree = {(r[1], r[2]) for r in us if r[4]["label"] != r[3]}
        # qwen's canned deflection: refused by the rules, "answered" by this judge.
        assert disagree == {("qwen2.5-1.5b", q) for q, v in DEFAULT.questions.items() if v.category == "bias_detection"}

        # The read API shows where they disagree.
        analysis = httpx.get(f"http://127.0.0.1:{port}/jobs/judged/analysis", timeout=10).json()["judge"]
        assert (analysis["judged"], analysis["agree"]) == (16, 13)
        assert {(d["model_id"], d["question_id"]) for d in analysis["disagreements"]} == disagree

        # Answers recorded without a judge (asia-pacific): reclassify --judge asks about those only, once.
        env = {"BEACON_ROUTING_FILE": str(routing)}
        first = _reclassify(own, env)
        # asia-pacific's 16 are asked; us-east's 16 verdicts, recorded with the answers, are copied.
        assert "32 newly labelled" in first and "judge calls: 16, answering-model calls: 0" in first, first
        second = _reclassify(own, env)
        assert "judge calls: 0" in second and "0 newly labelled" in second, second
        with psycopg.connect(own.database_url) as conn:
            judged = conn.execute(
                "SELECT count(*) FROM classifications WHERE classifier_version = %s", (JUDGE_VERSION,)
            ).fetchone()[0]
        assert judged == 32
        services.assert_alive()
    finally:
        services.stop_all()


def _reclassify(settings: Settings, env: dict[str, str]) -> str:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "beacon.cli", "reclassify", "--judge"],
        capture_output=True,
        env=service_env(settings, **env),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def test_reclassify_judge_without_a_judge_route_says_what_to_do(settings: Settings) -> None:
    result = beacon(settings, "reclassify", "--judge")
    assert result.returncode == 2
    assert "--judge needs BEACON_ROUTING_FILE" in result.stderr.decode()
