"""Fault tests: real processes killed at bad moments, real brokers and databases stopped; rows counted.

Each test gets its own database and topic namespace, its own services, and a local HTTP model server
that counts every call it receives (its delay keeps cells in flight when the fault strikes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from beacon.infra.catalogues import DEFAULT
from beacon.infra.settings import Settings
from tests.faults.support import FAULT_RUNS, WINDOW
from tests.harness import Services
from tests.model_server import ModelServer
from tests.support import Infra, isolated

pytestmark = pytest.mark.faults


@pytest.fixture
def fault_settings(infra: Infra) -> Iterator[Settings]:
    with isolated(infra, BEACON_RUNNER_CONCURRENCY=str(WINDOW), BEACON_DEADLINE_SWEEP_SECONDS="1") as s:
        yield s


@pytest.fixture
def model() -> Iterator[ModelServer]:
    server = ModelServer(delay_s=0.25)
    yield server
    server.close()


def start_stack(
    settings: Settings, folder: Path, routing: Path | None, regions: list[str] | None = None, **env: str
) -> Services:
    services = Services(settings, folder)
    services.start("recorder", "recorder", **env)  # the same settings for every service of the stack
    if routing:
        env["BEACON_ROUTING_FILE"] = str(routing)
    for region in DEFAULT.regions if regions is None else regions:
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


# --- one line per fault run (support.record_run), repeated in pytest's closing summary ----------------


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
