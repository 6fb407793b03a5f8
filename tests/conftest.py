"""Test infrastructure: a real Kafka broker and a real PostgreSQL server, never fakes.

Where they come from, in order: KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL when set; otherwise the local
processes under .beacon/ (started here if they are not running, exactly as `make up` does); with
BEACON_TEST_BACKEND=containers, containers of the project's images (tests/container_stack.py). If neither
can be had, the pipeline tests fail with the reason; they are never skipped.

Each test session gets its own topic namespace and its own database, so runs never see each other's
events or rows, and a developer's demo data is left alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from beacon.deploy.local import kafka as local_kafka
from beacon.deploy.local import postgres as local_postgres
from beacon.deploy.local.proc import StartError
from beacon.infra.settings import Settings, state_dir
from tests.support import Infra, isolated


def _start_containers() -> Infra:
    """BEACON_TEST_BACKEND=containers: Kafka and PostgreSQL as containers of the project's images (make image),
    their passwords in a state folder of this session's; the services under test still run as processes."""
    import atexit
    import tempfile

    from tests import container_stack
    from tests.faults.support import free_port_block

    state = Path(tempfile.mkdtemp(prefix="beacon-containers-"))
    base = free_port_block(3)
    stack = container_stack.start_infra(state, kafka_port=base, pg_port=base + 2)
    atexit.register(stack.stop)
    with psycopg.connect(stack.admin_db_url(), autocommit=True) as conn:
        local_postgres.ensure_roles(conn, state)  # the services' roles, as `make up` makes them
    return Infra(kafka=stack.bootstrap, admin_db_url=stack.admin_db_url(), state=state)


def _start_infra() -> Infra:
    backend = os.environ.get("BEACON_TEST_BACKEND", "processes")
    if backend not in ("processes", "containers"):
        raise StartError(f"BEACON_TEST_BACKEND={backend}: use processes (the default) or containers")
    if backend == "containers":
        return _start_containers()
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    database = os.environ.get("DATABASE_URL")
    state = state_dir()
    if not database:
        local_postgres.PostgresCluster(state).start()
        database = local_postgres.admin_url(state, "postgres")
    cluster = local_kafka.KafkaCluster(state, local_kafka.brokers())
    if not kafka:
        cluster.start()
        kafka = cluster.bootstrap
    if not local_kafka.metadata_ok(kafka, cluster.admin_security()):
        raise StartError(f"Kafka at {kafka} does not answer a metadata request as the admin principal")
    return Infra(kafka=kafka, admin_db_url=database, state=state)


@pytest.fixture(scope="session")
def infra() -> Infra:
    try:
        return _start_infra()
    except (StartError, psycopg.OperationalError) as exc:
        pytest.fail(
            f"the pipeline tests need a real Kafka and PostgreSQL and could not get them:\n{exc}", pytrace=False
        )


@pytest.fixture(scope="session")
def settings(infra: Infra) -> Iterator[Settings]:
    """Settings for this session's pipeline tests."""
    with isolated(infra) as s:
        yield s
