"""The three services as separate processes, talking only through Kafka, for the pipeline tests."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from beacon.settings import Settings
from schemas.catalogue import REGIONS
from tests.conftest import service_env


class Services:
    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *args: str, **env: str) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "beacon.cli", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=service_env(self.settings, **env),
        )
        self.procs[name] = proc
        return proc

    def assert_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                log = (self.log_dir / f"{name}.log").read_text()[-3000:]
                raise AssertionError(f"service {name} exited with {proc.returncode}:\n{log}")

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="session")
def pipeline(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """A recorder and one runner per region, started once for the session."""
    services = Services(settings, tmp_path_factory.mktemp("service-logs"))
    services.start("recorder", "recorder")
    for region in REGIONS:
        services.start(f"runner-{region}", "runner", "--region", region)
    time.sleep(1)
    services.assert_alive()
    yield services
    services.stop_all()


def count_rows(settings: Settings, job_id: str) -> int:
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute("SELECT count(*) FROM executions WHERE job_id = %s", (job_id,)).fetchone()[0]


def wait_for_rows(settings: Settings, services: Services, job_id: str, expected: int, timeout: float = 60) -> int:
    """Wait until `expected` rows exist (then a little longer, so extra rows would show), return the count."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        services.assert_alive()
        if count_rows(settings, job_id) >= expected:
            break
        time.sleep(0.2)
    time.sleep(1.0)  # duplicates, if any could slip in, would arrive right behind the last row
    return count_rows(settings, job_id)
