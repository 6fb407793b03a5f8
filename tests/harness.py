"""Beacon's services as real, separate processes for tests: start, SIGKILL, restart, count rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from beacon.infra.settings import Settings
from tests.kafka_tools import wait_for_quiet
from tests.support import service_env


class Services:
    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}
        self.argv: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {}

    def start(self, name: str, *args: str, **env: str) -> subprocess.Popen:
        self.argv[name] = (args, env)
        with open(self.log_dir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "beacon.cli", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=service_env(self.settings, **env),
            )
        self.procs[name] = proc
        return proc

    def kill(self, name: str) -> None:
        """SIGKILL: no clean-up, no commit, no goodbye."""
        proc = self.procs.pop(name)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def restart(self, name: str) -> subprocess.Popen:
        args, env = self.argv[name]
        return self.start(name, *args, **env)

    def regions(self) -> list[str]:
        """The regions a runner was started for (ones killed since included: the tests start them again)."""
        return [args[args.index("--region") + 1] for args, _ in self.argv.values() if args[0] == "runner"]

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def assert_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"service {name} exited with {proc.returncode}:\n{self.log(name)[-3000:]}")

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()


def count_rows(settings: Settings, job_id: str) -> int:
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute("SELECT count(*) FROM executions WHERE job_id = %s", (job_id,)).fetchone()[0]


def wait_for_rows(
    settings: Settings, services: Services, job_id: str, expected: int, timeout: float = 60, settle: bool = True
) -> int:
    """Wait until `expected` rows exist, return the count. Once they do (with `settle`), first wait until
    the services have nothing left to do — every job expanded, every cell run, every result recorded:
    consumer lag 0 (kafka_tools.wait_for_quiet) — so extra rows, if any could slip in, are counted too."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        services.assert_alive()
        try:
            if count_rows(settings, job_id) >= expected:
                if settle:
                    wait_for_quiet(settings, services.regions())
                break
        except psycopg.OperationalError:
            pass  # a fault test may have the database down for a while
        time.sleep(0.2)
    return count_rows(settings, job_id)
