"""Helpers of the fault tests: routing to the local model server, submitting, counting calls, waiting, a
private Kafka cluster, the one-line record of each run. Plain functions, no fixtures (conftest.py holds
those and builds them from these); the test modules import them from here, never from a conftest."""

from __future__ import annotations

import json
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path

from beacon.deploy.local import kafka as local_kafka
from beacon.infra.catalogues import DEFAULT
from beacon.infra.settings import Settings, state_dir
from tests.model_server import ModelServer
from tests.support import beacon

WINDOW = 4  # BEACON_RUNNER_CONCURRENCY in these tests: the bound on repeated model calls after a crash


def write_routing(path: Path, server: ModelServer, regions: list[str], **route: object) -> Path:
    """Route every model of `regions` to the local OpenAI-compatible server."""
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in route.items())
    path.write_text(
        "[defaults]\nbackoff_base_s = 0.05\n"
        + "".join(
            f'[regions.{region}."{m}"]\nprovider = "openai"\nendpoint = "{server.url}"\nmodel = "{m}"\n'
            f"concurrency = {WINDOW}\n{extra}"
            for region in regions
            for m in DEFAULT.models
        )
    )
    return path


def submit(settings: Settings, job_id: str, regions: list[str] | None = None, **extra: object) -> int:
    spec = {
        "job_id": job_id,
        "questions": list(DEFAULT.questions),
        "models": list(DEFAULT.models),
        "regions": regions or list(DEFAULT.regions),
        **extra,
    }
    result = beacon(settings, "submit", "-", "--json", stdin=json.dumps(spec).encode())
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)["expected_executions"]


def calls_from(server: ModelServer, region: str) -> int:
    """Calls the server received from one region's runner (told apart by the regional system prompt)."""
    prompt = DEFAULT.regions[region].system_prompts[DEFAULT.default_language]
    return sum(1 for body in list(server.requests) if body["messages"][0]["content"] == prompt)


def wait_until(check: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def free_port_block(size: int) -> int:
    """A base port with `size` consecutive free ports after it, for a private Kafka cluster — below the
    kernel's ephemeral range: a node killed and restarted must find its ports again, and a port in that
    range may meanwhile be taken as the local end of any outgoing connection (a client's, another node's)."""
    low = _ephemeral_low()
    for _ in range(200):
        base = random.randrange(10_000, low - size)
        if all(_free(base + i) for i in range(size)):
            return base
    raise RuntimeError("no block of free ports found")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


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
    # The session's passwords: the tests and the services they start know one admin and one set of principals.
    (folder / "kafka-state" / "secrets").symlink_to(state_dir() / "secrets")
    return local_kafka.KafkaCluster(folder / "kafka-state", nodes, base_port=free_port_block(2 * nodes))


# --- one line per fault run, repeated in pytest's closing summary (passed runs included) -------------

FAULT_RUNS: list[tuple[str, bool, str]] = []  # (case, passed, line); conftest's pytest_terminal_summary reads it


def record_run(case: str, passed: bool, line: str) -> None:
    print(f"\n{line}")
    FAULT_RUNS.append((case, passed, line))
