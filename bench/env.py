"""What every benchmark step stands on: the servers of `make up` (the bench acts as their admin and
superuser), a fresh database and topic namespace per measurement, the services started as processes acting as
themselves, and the few counters they are measured by."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from beacon.deploy.local import __main__ as local
from beacon.deploy.local import postgres as local_postgres
from beacon.infra import db, kafka, keys
from beacon.infra.settings import Settings, state_dir, with_credentials, without_credentials
from beacon.schemas.events import JobSubmitted, encode
from bench.workload import events, jobs

HERE = Path(__file__).parent


def base_settings() -> Settings:
    """The benchmark itself acts as the Kafka admin and the PostgreSQL superuser of `make up`'s servers; the
    services it starts act as themselves (as in production: SASL and least privilege included)."""
    state, s = state_dir(), Settings.from_env()
    admin = local.admin_settings(state, s.kafka_bootstrap_servers, s.replication_factor)
    superuser = with_credentials(s.database_url, local_postgres.USER, local_postgres.superuser_password(state))
    return dataclasses.replace(admin, database_url=superuser)


def fresh(base: Settings, **env: str) -> Settings:
    """A fresh database (migrated, owned by the migrator) and topic namespace (its principals granted), so
    each measurement starts from empty."""
    tag = uuid.uuid4().hex[:8]
    server = base.database_url.rsplit("/", 1)[0]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        local_postgres.create_database(conn, f"bench_{tag}")
    s = Settings.from_env(
        {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": base.kafka_bootstrap_servers,
            "DATABASE_URL": f"{server}/bench_{tag}",
            "BEACON_TOPIC_NAMESPACE": f"bench-{tag}",
            "BEACON_REPLICATION_FACTOR": str(base.replication_factor),
            "BEACON_KAFKA_USERNAME": str(base.kafka_username),
            "BEACON_KAFKA_PASSWORD": str(base.kafka_password),
            **env,
        }
    )
    migrator = dataclasses.replace(s, database_url=without_credentials(s.database_url)).acting_as(db_role="migrator")
    db.migrate(migrator.database_url)
    local.grant_services(state_dir(), s)
    return s


def drop(base: Settings, s: Settings) -> None:
    admin = base.database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{s.database_url.rsplit("/", 1)[1]}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_env(s: Settings, **env: str) -> dict[str, str]:
    """The environment of a service or command of the benchmark's servers, with no credentials given: it acts
    as itself (its principal's password read from BEACON_SECRETS_DIR, as `make up` leaves them)."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BEACON_KAFKA_USERNAME", "BEACON_KAFKA_PASSWORD"))},
        "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers,
        "DATABASE_URL": without_credentials(s.database_url),
        "BEACON_SECRETS_DIR": str(s.secrets_dir),
        "BEACON_TOPIC_NAMESPACE": s.topic_namespace,
        "BEACON_LOG_FORMAT": "json",
        "BEACON_HTTP_PORT": "0",
        "BEACON_RECORDER_PORT": "0",
        **env,
    }


def service(s: Settings, *args: str, **env: str) -> subprocess.Popen:
    """A service of the benchmark's servers, acting as itself, logging to bench/.<service>-<namespace>.log."""
    log = open(HERE / f".{args[0]}-{s.topic_namespace}.log", "ab")  # closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "beacon.cli", *args], stdout=log, stderr=subprocess.STDOUT, env=service_env(s, **env)
    )


def stop(*procs: subprocess.Popen) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=30)


def rows(s: Settings) -> int:
    with psycopg.connect(s.database_url) as conn:
        return conn.execute("SELECT count(*) FROM executions").fetchone()[0]  # type: ignore[index]


def rate_until(count: Callable[[], int], n: int, timeout: float = 900) -> float:
    """Rows per second from the first row seen to the n-th, polling; start-up time is not counted."""
    deadline = time.monotonic() + timeout
    start = first = None
    while time.monotonic() < deadline:
        c = count()
        if c and start is None:
            start, first = time.monotonic(), c
        if c >= n:
            assert start is not None and first is not None
            elapsed = time.monotonic() - start
            return (n - first) / elapsed if elapsed > 0 and n > first else float("nan")
        time.sleep(0.1)
    raise TimeoutError(f"only {count()} of {n} after {timeout} s")


def signed(evs: list[Any]) -> list[Any]:
    """The events as their producers sign them: the submitter its jobs, each region's runner its results."""
    folder = Settings.from_env().keys_dir
    signers: dict[tuple[str, str | None], Any] = {}
    out = []
    for e in evs:
        binding = ("submitter", None) if isinstance(e, JobSubmitted) else ("runner", e.region)
        if binding not in signers:
            signers[binding] = keys.signer(folder, *binding)
        out.append(signers[binding].sign(e))
    return out


async def produce(s: Settings, topic: str, evs: list[Any]) -> None:
    producer = kafka.producer(s, linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topic, encode(e), key=e.key.encode()) for e in evs]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def produce_workload(s: Settings, n: int, prefix: str, part: int = 20_000) -> None:
    """The jobs of an n-event workload, then its results, made, signed and sent a part at a time: a million
    events held at once would be gigabytes in the benchmark's own process."""
    await produce(s, s.topics.jobs_submitted, signed(jobs(n, prefix=prefix)))
    for start in range(0, n, part):
        await produce(s, s.topics.executions_completed, signed(events(min(part, n - start), prefix, start=start)))


def peak_rss_mib(pid: int) -> float:
    """The most resident memory a live process has had (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
