"""Beacon's own services as background processes for the demo: a recorder, a reader and a runner per region.

In the regional topology (beacon.deploy.local.regions) each runner is started with its region's folder as
its state folder, so it reaches only its region's own Kafka cluster, with its region's keys and password."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from beacon.deploy.local import regions
from beacon.deploy.local.proc import read_pid, spawn, stop
from beacon.infra.settings import Settings


def _run_dir(state: Path) -> Path:
    d = state / "run"
    d.mkdir(parents=True, exist_ok=True)
    return d


def service_commands(state: Path | None = None) -> dict[str, tuple[list[str], dict[str, str]]]:
    """name → (argv, the environment it adds)."""
    cli = [sys.executable, "-m", "beacon.cli"]
    commands: dict[str, tuple[list[str], dict[str, str]]] = {
        "recorder": ([*cli, "recorder"], {}),
        "reader": ([*cli, "reader"], {}),
    }
    regional = state is not None and regions.is_up(state)
    for region in Settings.from_env().catalogue.regions:  # one runner per region of the active catalogue
        env = regions.region_env(state / "regions" / region) if regional and state is not None else {}
        commands[f"runner-{region}"] = ([*cli, "runner", "--region", region], env)
    return commands


def start_all(state: Path) -> dict[str, tuple[int, bool]]:
    """Start each service that is not running yet; returns name → (pid, started_now)."""
    result = {}
    for name, (argv, extra) in service_commands(state).items():
        pidfile = _run_dir(state) / f"{name}.pid"
        pid = read_pid(pidfile)
        if pid is not None:
            result[name] = (pid, False)
            continue
        env = {**os.environ, "BEACON_LOG_FORMAT": "json", **extra}
        result[name] = (spawn(argv, state / "logs" / f"{name}.log", pidfile, env=env), True)
    return result


def stop_all(state: Path) -> list[str]:
    return [p.stem for p in sorted(_run_dir(state).glob("*.pid")) if stop(p)]
