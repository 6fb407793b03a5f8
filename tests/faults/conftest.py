"""Fault tests: real processes killed at bad moments, real brokers and databases stopped; rows counted.

Each test gets its own database and topic namespace, its own services, and a local HTTP model server
that counts every call it receives (its delay keeps cells in flight when the fault strikes).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from beacon.deploy.local import kafka as local_kafka
from beacon.schemas.catalogue import MODELS, QUESTIONS, REGIONS, system_prompt
from beacon.settings import Settings, state_dir
from tests.conftest import Infra, beacon, isolated
from tests.harness import Services
from tests.model_server import ModelServer

pytestmark = pytest.mark.faults

WINDOW = 4  # BEACON_RUNNER_CONCURRENCY in these tests: the bound on repeated model calls after a crash


@pytest.fixture
def fault_settings(infra: Infra) -> Iterator[Settings]:
    with isolated(infra, BEACON_RUNNER_CONCURRENCY=str(WINDOW), BEACON_DEADLINE_SWEEP_SECONDS="1") as s:
        yield s


@pytest.fixture
def model() -> Iterator[ModelServer]:
    server = ModelServer(delay_s=0.25)
    yield server
    server.close()


def write_routing(path: Path, server: ModelServer, regions: list[str], **route: object) -> Path:
    """Route every model of `regions` to the local OpenAI-compatible server."""
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in route.items())
    path.write_text(
        "[defaults]\nbackoff_base_s = 0.05\n"
        + "".join(
            f'[regions.{region}."{m}"]\nprovider = "openai"\nendpoint = "{server.url}"\nmodel = "{m}"\n'
            f"concurrency = {WINDOW}\n{extra}"
            for region in regions
            for m in MODELS
        )
    )
    return path


def start_stack(
    settings: Settings, folder: Path, routing: Path | None, regions: list[str] | None = None, **env: str
) -> Services:
    services = Services(settings, folder)
    services.start("recorder", "recorder", **env)  # the same settings for every service of the stack
    if routing:
        env["BEACON_ROUTING_FILE"] = str(routing)
    for region in REGIONS if regions is None else regions:
        services.start(f"runner-{region}", "runner", "--region", region, **env)
    return services


@pytest.fixture
def stack_factory(tmp_path: Path) -> Iterator[Callable[..., Services]]:
    made: list[Services] = []

    def make(settings: Settings, routing: Path | None, regions: list[str] | None = None, **env: str) -> Services:
        services = start_stack(settings, tmp_path, routing, regions, **env)
        made.append(services)
        return services

    yield make
    for services in made:
        services.stop_all()


def submit(settings: Settings, job_id: str, regions: list[str] | None = None, **extra: object) -> int:
    spec = {
        "job_id": job_id,
        "questions": list(QUESTIONS),
        "models": list(MODELS),
        "regions": regions or list(REGIONS),
        **extra,
    }
    result = beacon(settings, "submit", "-", "--json", stdin=json.dumps(spec).encode())
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)["expected_executions"]


def calls_from(server: ModelServer, region: str) -> int:
    """Calls the server received from one region's runner (told apart by the regional system prompt)."""
    prompt = system_prompt(region)
    return sum(1 for body in list(server.requests) if body["messages"][0]["content"] == prompt)


def wait_until(check: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def free_port_block(size: int) -> int:
    """A base port with `size` consecutive free ports after it, for a private Kafka cluster."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + size < 65000 and all(_free(base + i) for i in range(size)):
            return base
    raise RuntimeError("no block of free ports found")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def private_kafka(folder: Path, nodes: int) -> local_kafka.KafkaCluster:
    """A Kafka cluster of our own on free ports (so stopping it disturbs no other test), sharing the
    session's cached jars."""
    shared = state_dir() / "cache"
    shared.mkdir(parents=True, exist_ok=True)
    (folder / "kafka-state").mkdir()
    (folder / "kafka-state" / "cache").symlink_to(shared)
    return local_kafka.KafkaCluster(folder / "kafka-state", nodes, base_port=free_port_block(2 * nodes))


# --- one line per fault run, repeated in pytest's closing summary (passed runs included) -------------

FAULT_RUNS: list[tuple[str, bool, str]] = []  # (case, passed, line)


def record_run(case: str, passed: bool, line: str) -> None:
    print(f"\n{line}")
    FAULT_RUNS.append((case, passed, line))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FAULT_RUNS:
        return
    terminalreporter.section("fault runs")
    for _, _, line in FAULT_RUNS:
        terminalreporter.write_line(line)
    cases: dict[str, list[bool]] = {}
    for case, passed, _ in FAULT_RUNS:
        cases.setdefault(case, []).append(passed)
    for case, results in cases.items():
        terminalreporter.write_line(f"PASS COUNT | {case} | {sum(results)}/{len(results)}")
