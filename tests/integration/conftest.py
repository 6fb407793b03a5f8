"""The three services as separate processes, talking only through Kafka, for the pipeline tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from beacon.infra.catalogues import DEFAULT
from beacon.infra.settings import Settings
from tests.harness import Services
from tests.support import Infra, free_port, with_database


@pytest.fixture(scope="session")
def api_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def recorder_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def pipeline(
    settings: Settings, api_port: int, recorder_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Services]:
    """A recorder, a reader (the read API and portal on `api_port`) and one runner per region, started once."""
    services = Services(settings, tmp_path_factory.mktemp("service-logs"))
    # A result whose job never comes is dead-lettered after 15 s here (test_only_cells_of_jobs.py).
    services.start("recorder", "recorder", BEACON_RECORDER_PORT=str(recorder_port), BEACON_ORPHAN_WAIT_SECONDS="15")
    services.start("reader", "reader", BEACON_HTTP_PORT=str(api_port))
    for region in DEFAULT.regions:
        services.start(f"runner-{region}", "runner", "--region", region)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        services.assert_alive()
        try:
            if httpx.get(f"http://127.0.0.1:{api_port}/health/live", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    yield services
    services.stop_all()


@pytest.fixture(scope="session")
def api(pipeline: Services, api_port: int) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=10) as client:
        yield client


@pytest.fixture
def empty_db(infra: Infra) -> Iterator[str]:
    """A database of its own, created empty for one test and dropped after it."""
    name = f"beacon_empty_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(infra.admin_db_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield with_database(infra.admin_db_url, name)
    with psycopg.connect(infra.admin_db_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
