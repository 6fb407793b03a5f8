"""`beacon submit` does only what a submit needs (issue 25): the CLI's module and parser load nothing heavy;
the one-job publisher neither checks migrations nor creates topics, yet a missing jobs topic or a database
without Beacon's tables is said clearly, before anything is registered or emitted. With fakes for the broker
and the database: tests/integration/test_submit_lean.py runs the real command on the real servers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from aiokafka import errors as kafka_errors

from beacon.infra import db, keys
from beacon.infra.settings import Settings
from beacon.schemas.commands import JobSpec
from beacon.schemas.events import JobSubmitted
from beacon.submitter import bootstrap
from beacon.submitter.publish import MissingTopic, NotMigrated, Publisher, submit_with
from tests.signed import unit_keys

SPEC = JobSpec.model_validate(
    {"job_id": "lean-1", "questions": ["math_basic"], "models": ["mistral-7b"], "regions": ["us-east"]}
)

# What only other commands need: none of it may load when the module is imported or the parser is built.
HEAVY = (
    "asyncio",
    "psycopg",
    "aiokafka",
    "pydantic",
    "structlog",
    "beacon.infra.settings",
    "beacon.cli.bundles",
    "beacon.cli.show",
    "beacon.domain.bundle",
)


def loaded_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys\nprint(*sys.modules)"], capture_output=True)
    assert out.returncode == 0, out.stderr.decode()
    return set(out.stdout.decode().split())


def test_importing_the_cli_and_building_a_commands_parser_loads_nothing_heavy() -> None:
    loaded = loaded_after("from beacon.cli.main import parser\nparser('submit').parse_args(['submit', 'x.json'])")
    assert "beacon.cli.main" in loaded
    assert sorted(m for m in loaded if m.split(".")[0] in HEAVY or m in HEAVY) == []


def test_every_command_is_still_in_the_full_parser() -> None:
    """The bundle commands are left out only when another command is asked for by name."""
    from beacon.cli.main import parser

    def commands(p: Any) -> set[str]:
        [sub] = [a for a in p._actions if a.dest == "command"]
        return set(sub.choices)

    everything = commands(parser())
    assert {"keys", "export", "verify", "submit", "status", "migrate"} <= everything
    assert commands(parser("export")) == commands(parser("nonsense")) == everything
    assert commands(parser("submit")) == everything - {"keys", "export", "verify"}
    assert parser("verify").parse_args(["verify", "job-1"]).source == "job-1"


# --- the one-job publisher, with fakes ---------------------------------------------------------------------


class FakeClient:
    def __init__(self, topic: str, error_code: int) -> None:
        self.topic, self.error_code = topic, error_code
        self.requests: list[Any] = []
        self.primed: list[Any] = []
        self.cluster = SimpleNamespace(update_metadata=self.primed.append)

    def get_random_node(self) -> int:
        return 1

    async def send(self, node: int, request: Any) -> Any:
        self.requests.append(request)
        return SimpleNamespace(topics=[(self.error_code, self.topic, False, [])])


class FakeProducer:
    def __init__(self, topic: str, error_code: int = 0) -> None:
        self.client = FakeClient(topic, error_code)
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.stopped = False

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopped = True

    async def send_and_wait(self, topic: str, value: bytes, key: bytes, headers: list[Any]) -> None:
        self.sent.append((topic, key, value))


class Cursor:
    def __init__(self, row: Any) -> None:
        self.row = row

    async def fetchone(self) -> Any:
        return self.row


class FakeConnections:
    """The registry: claims succeed, or every statement fails with `failure`."""

    def __init__(self, failure: Exception | None = None) -> None:
        self.failure = failure
        self.statements: list[str] = []
        self.opened = self.closed = False

    async def open(self) -> None:
        self.opened = True

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        yield self

    async def execute(self, statement: str, params: Any = None) -> Cursor:
        self.statements.append(statement)
        if self.failure is not None:
            raise self.failure
        return Cursor((SPEC.job_id,))  # the claim is this submission's

    async def close(self) -> None:
        self.closed = True


def one_job_publisher(
    monkeypatch: pytest.MonkeyPatch, producer: FakeProducer, connections: FakeConnections
) -> Publisher:
    """bootstrap's one-job publisher with the fakes in place of the broker and the database, and every check
    the HTTP service makes at its start turned into a failure."""

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("`beacon submit` must not run this")

    async def forbidden_async(*args: object, **kwargs: object) -> None:
        forbidden()

    from beacon.infra import topics

    monkeypatch.setattr(db, "require_current", forbidden)
    monkeypatch.setattr(topics, "ensure", forbidden_async)
    settings = Settings.from_env({"BEACON_KEYS_DIR": str(unit_keys()), "BEACON_KAFKA_WAIT_SECONDS": "1"})
    made = bootstrap.publisher(settings, kafka_wait_s=1, one_job=True)
    made.new_producer = lambda: producer  # type: ignore[assignment,return-value]
    made.new_connections = lambda: connections
    return made


def test_a_submit_registers_then_emits_the_signed_event_with_no_check_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    producer, connections = FakeProducer("beacon.jobs.submitted"), FakeConnections()
    publisher = one_job_publisher(monkeypatch, producer, connections)
    submitted = asyncio.run(submit_with(publisher, SPEC))
    assert (submitted.job_id, submitted.expected_executions, submitted.already_submitted) == ("lean-1", 1, False)
    [claim] = connections.statements
    assert claim.startswith("INSERT INTO submissions")
    [(topic, key, value)] = producer.sent
    event = JobSubmitted.model_validate_json(value)
    assert (topic, key, event.job_id) == ("beacon.jobs.submitted", b"lean-1", "lean-1")
    trusted = keys.read_trusted(unit_keys() / keys.TRUSTED)
    assert event.signature is not None and event.signature.key_id in {k.key_id for k in trusted}
    # One metadata request, for the jobs topic alone, and its answer primes the producer's send.
    [request] = producer.client.requests
    assert request._topics == ["beacon.jobs.submitted"] and request._allow_auto_topic_creation is False
    assert len(producer.client.primed) == 1
    assert producer.stopped and connections.opened and connections.closed


def test_a_missing_jobs_topic_is_said_before_anything_is_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    producer = FakeProducer("beacon.jobs.submitted", kafka_errors.UnknownTopicOrPartitionError.errno)
    connections = FakeConnections()
    publisher = one_job_publisher(monkeypatch, producer, connections)
    with pytest.raises(MissingTopic) as missing:
        asyncio.run(submit_with(publisher, SPEC))
    said = str(missing.value)
    assert "has no topic beacon.jobs.submitted" in said and "nothing was registered" in said
    assert "`make up` creates the topics" in said and "BEACON_TOPIC_NAMESPACE" in said
    assert connections.statements == [] and producer.sent == [] and producer.client.primed == []
    assert producer.stopped and connections.closed


def test_a_jobs_topic_the_principal_may_not_see_is_fatal_not_waited_out(monkeypatch: pytest.MonkeyPatch) -> None:
    producer = FakeProducer("beacon.jobs.submitted", kafka_errors.TopicAuthorizationFailedError.errno)
    connections = FakeConnections()
    publisher = one_job_publisher(monkeypatch, producer, connections)
    with pytest.raises(kafka_errors.TopicAuthorizationFailedError, match=r"beacon\.jobs\.submitted"):
        asyncio.run(submit_with(publisher, SPEC))
    assert len(producer.client.requests) == 1  # asked once: no retry
    assert connections.statements == [] and producer.sent == []


@pytest.mark.parametrize(
    "failure",
    [
        psycopg.errors.UndefinedTable('relation "submissions" does not exist'),
        psycopg.errors.UndefinedColumn('column "token_id" of relation "submissions" does not exist'),
    ],
    ids=["no-table", "old-table"],
)
def test_a_database_without_beacons_tables_says_migrate_and_emits_nothing(
    monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    producer, connections = FakeProducer("beacon.jobs.submitted"), FakeConnections(failure)
    publisher = one_job_publisher(monkeypatch, producer, connections)
    with pytest.raises(NotMigrated) as refused:
        asyncio.run(submit_with(publisher, SPEC))
    said = str(refused.value)
    assert said.startswith("the database has no Beacon schema (or an old one): run `beacon migrate` (make up does)")
    assert str(failure) in said
    assert producer.sent == [] and producer.stopped and connections.closed


def test_a_refused_database_connection_is_said_before_kafka_is_tried(monkeypatch: pytest.MonkeyPatch) -> None:
    producer, connections = FakeProducer("beacon.jobs.submitted"), FakeConnections()
    publisher = one_job_publisher(monkeypatch, producer, connections)

    async def refused() -> None:
        raise psycopg.OperationalError("cannot connect to PostgreSQL at …")

    monkeypatch.setattr(connections, "open", refused)
    with pytest.raises(psycopg.OperationalError, match="cannot connect"):
        asyncio.run(submit_with(publisher, SPEC))
    assert producer.client.requests == [] and producer.sent == [] and connections.statements == []


def test_the_http_service_still_checks_at_its_start() -> None:
    settings = Settings.from_env({"BEACON_KEYS_DIR": str(unit_keys())})
    service = bootstrap.publisher(settings)
    assert service.checks_at_start
    assert isinstance(service.new_connections(), bootstrap.Pool)
    one = bootstrap.publisher(settings, one_job=True)
    assert not one.checks_at_start and isinstance(one.new_connections(), bootstrap.OneConnection)
