"""Helpers the tests import: isolated settings on the real infrastructure, the environment of a service
process, the `beacon` CLI run as a user would, a free port. Plain functions, no fixtures: the conftest
files build their fixtures from these, and test modules import them from here, never from a conftest.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import psycopg

from beacon.deploy.local import credentials
from beacon.deploy.local import postgres as local_postgres
from beacon.deploy.local.__main__ import grant_services
from beacon.infra import db
from beacon.infra.catalogues import DEFAULT
from beacon.infra.settings import DB_ROLE_PREFIX, Settings, state_dir, with_credentials, without_credentials
from beacon.schemas.events import (
    CellScheduled,
    GenerationParams,
    ModelRef,
    ProducerInfo,
    QuestionText,
    RegionRef,
    now,
)
from beacon.schemas.topics import Principals


@dataclass(frozen=True)
class Infra:
    kafka: str
    admin_db_url: str  # the PostgreSQL superuser's URL to a database we may CREATE DATABASE from
    # The state folder whose secrets/ holds every password `make up` made (Kafka principals, PostgreSQL roles):
    # tests act as the Kafka admin; the services they start act as themselves.
    state: Path = dataclasses.field(default_factory=state_dir)

    @property
    def secrets(self) -> Path:
        return self.state / "secrets"

    def kafka_admin_env(self) -> dict[str, str]:
        return {
            "BEACON_KAFKA_USERNAME": Principals.ADMIN,
            "BEACON_KAFKA_PASSWORD": credentials.password(self.state, "kafka", Principals.ADMIN),
        }


def with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


def role_url(infra: Infra, url: str, role: str) -> str:
    """`url` (any database of the session's server) as one service's PostgreSQL role."""
    password = credentials.password(infra.state, "postgres", role)
    return with_credentials(url, DB_ROLE_PREFIX + role, password)


@contextmanager
def isolated(
    infra: Infra, kafka: str | None = None, regions: list[str] | None = None, **env: str
) -> Iterator[Settings]:
    """Settings with a fresh database (owned by the migrator, migrated, dropped afterwards) and a private
    topic namespace whose principals and ACLs are granted as `make up` grants them (the catalogue's regions,
    unless given). The settings act as the Kafka admin and the PostgreSQL superuser (tests look everywhere);
    the services started from them (service_env) act as themselves."""
    tag = uuid.uuid4().hex[:10]
    name = f"beacon_test_{tag}"
    with psycopg.connect(infra.admin_db_url, autocommit=True) as conn:
        local_postgres.create_database(conn, name)
    settings = Settings.from_env(
        {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": kafka or infra.kafka,
            "DATABASE_URL": with_database(infra.admin_db_url, name),
            "BEACON_TOPIC_NAMESPACE": f"test-{tag}",
            "BEACON_HTTP_PORT": "0",  # tests that want the read API ask for a port
            "BEACON_RECORDER_PORT": "0",  # likewise the recorder's /metrics
            "BEACON_SECRETS_DIR": str(infra.secrets),
            **infra.kafka_admin_env(),
            **env,
        }
    )
    db.migrate(role_url(infra, settings.database_url, "migrator"))
    grant(infra, settings, regions)
    try:
        yield settings
    finally:
        with psycopg.connect(infra.admin_db_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def own_namespace(infra: Infra, settings: Settings, suffix: str, **changes: object) -> Settings:
    """`settings` with a namespace of its own (same database), its principals and ACLs granted."""
    own = dataclasses.replace(settings, topic_namespace=settings.topic_namespace + suffix, **changes)  # type: ignore[arg-type]
    grant(infra, own)
    return own


def admin_security(state: Path | None = None) -> dict[str, object]:
    """Client options of the Kafka admin principal, for tests that open their own connections."""
    return {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": Principals.ADMIN,
        "sasl_plain_password": credentials.password(state or state_dir(), "kafka", Principals.ADMIN),
    }


def grant(infra: Infra, settings: Settings, regions: list[str] | None = None) -> None:
    """The principals and ACLs of `settings`'s namespace (as `make up` grants the default one)."""
    grant_services(infra.state, settings, regions)


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """A service's environment: the session's servers without any credentials, so it acts as itself."""
    inherited = {
        k: v for k, v in os.environ.items() if not k.startswith("BEACON_KAFKA_") or k == "BEACON_KAFKA_WAIT_SECONDS"
    }
    return {
        **inherited,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DATABASE_URL": without_credentials(settings.database_url),
        "BEACON_SECRETS_DIR": str(settings.secrets_dir),
        "BEACON_KEYS_DIR": str(settings.keys_dir),
        "BEACON_TOPIC_NAMESPACE": settings.topic_namespace,
        "BEACON_REPLICATION_FACTOR": str(settings.replication_factor),
        "BEACON_RUNNER_CONCURRENCY": str(settings.runner_concurrency),
        "BEACON_DEADLINE_SWEEP_SECONDS": str(settings.deadline_sweep_seconds),
        "BEACON_LOG_FORMAT": "json",
        "BEACON_HTTP_PORT": str(settings.http_port),
        "BEACON_RECORDER_PORT": str(settings.recorder_port),
        "BEACON_CATALOGUE_FILE": str(settings.catalogue_file or ""),
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- a cell to run against a local model server (tests/model_server.py) ------------------------------

MODEL_KINDS = ["ollama", "openai"]  # the wire formats the adapters speak
RUNNER = ProducerInfo(service="runner", region="eu-west", instance="test")


def a_cell(job_id: str) -> CellScheduled:
    """One eu-west cell asking math_basic of mistral-7b in English, in the default catalogue's words, due in an
    hour."""
    return CellScheduled(
        producer=RUNNER,
        job_id=job_id,
        region=RegionRef(
            id="eu-west", display="EU", language="en", system_prompt=DEFAULT.regions["eu-west"].system_prompts["en"]
        ),
        model=ModelRef(id="mistral-7b", name="Mistral 7B Instruct v0.3"),
        question=QuestionText(id="math_basic", category="control", prompts={"en": "What is 2+2?"}),
        params=GenerationParams(temperature=0.1, max_tokens=500),
        deadline=now() + timedelta(hours=1),
    )


def api_token(
    settings: Settings, name: str = "tests", read_only: bool = False, per_day: int = 10**6, per_job: int = 10**5
) -> str:
    """A live API token in `settings`'s database (as `beacon tokens create` makes one); its secret."""
    from beacon.infra import tokens

    with psycopg.connect(settings.database_url) as conn:
        return tokens.create(conn, name, not read_only, per_day, per_job)[1]
