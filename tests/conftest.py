"""Test infrastructure: a real Kafka broker and a real PostgreSQL server, never fakes.

Where they come from, in order: KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL when set; otherwise the local
processes under .beacon/ (started here if they are not running, exactly as `make up` does). If neither
can be had, the pipeline tests fail with the reason; they are never skipped.

Each test session gets its own topic namespace and its own database, so runs never see each other's
events or rows, and a developer's demo data is left alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
import pytest

from beacon import db
from beacon.deploy.local import kafka as local_kafka
from beacon.deploy.local import postgres as local_postgres
from beacon.deploy.local.proc import StartError
from beacon.settings import Settings, state_dir


@dataclass(frozen=True)
class Infra:
    kafka: str
    admin_db_url: str  # a database we may CREATE DATABASE from


def _start_infra() -> Infra:
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    database = os.environ.get("DATABASE_URL")
    state = state_dir()
    if not database:
        local_postgres.PostgresCluster(state).start()
        database = local_postgres.url("postgres")
    if not kafka:
        cluster = local_kafka.KafkaCluster(state, local_kafka.brokers())
        cluster.start()
        kafka = cluster.bootstrap
    if not local_kafka.metadata_ok(kafka):
        raise StartError(f"Kafka at {kafka} does not answer a metadata request")
    return Infra(kafka=kafka, admin_db_url=database)


@pytest.fixture(scope="session")
def infra() -> Infra:
    try:
        return _start_infra()
    except (StartError, psycopg.OperationalError) as exc:
        pytest.fail(
            f"the pipeline tests need a real Kafka and PostgreSQL and could not get them:\n{exc}", pytrace=False
        )


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@contextmanager
def isolated(infra: Infra, kafka: str | None = None, **env: str) -> Iterator[Settings]:
    """Settings with a fresh database (migrated, dropped afterwards) and a private topic namespace."""
    tag = uuid.uuid4().hex[:10]
    name = f"beacon_test_{tag}"
    with psycopg.connect(infra.admin_db_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    settings = Settings.from_env(
        {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": kafka or infra.kafka,
            "DATABASE_URL": _with_database(infra.admin_db_url, name),
            "BEACON_TOPIC_NAMESPACE": f"test-{tag}",
            "BEACON_HTTP_PORT": "0",  # tests that want the read API ask for a port
            "BEACON_RECORDER_PORT": "0",  # likewise the recorder's /metrics
            **env,
        }
    )
    db.migrate(settings.database_url)
    try:
        yield settings
    finally:
        with psycopg.connect(infra.admin_db_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def settings(infra: Infra) -> Iterator[Settings]:
    """Settings for this session's pipeline tests."""
    with isolated(infra) as s:
        yield s


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DATABASE_URL": settings.database_url,
        "BEACON_TOPIC_NAMESPACE": settings.topic_namespace,
        "BEACON_REPLICATION_FACTOR": str(settings.replication_factor),
        "BEACON_RUNNER_CONCURRENCY": str(settings.runner_concurrency),
        "BEACON_DEADLINE_SWEEP_SECONDS": str(settings.deadline_sweep_seconds),
        "BEACON_LOG_FORMAT": "json",
        "BEACON_HTTP_PORT": str(settings.http_port),
        "BEACON_RECORDER_PORT": str(settings.recorder_port),
        **extra,
    }


def beacon(
    settings: Settings, *args: str, stdin: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run the real `beacon` CLI as a user would, against this session's infrastructure."""
    return subprocess.run(
        [sys.executable, "-m", "beacon.cli", *args],
        input=stdin,
        capture_output=True,
        env=service_env(settings),
        timeout=timeout,
    )
