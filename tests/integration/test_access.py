"""Nobody where they don't belong: each service's Kafka principal and PostgreSQL role, on the real servers
`make up` starts, tries what it must not do and is refused; and nothing changed afterwards."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import stat
from collections.abc import Iterator

import psycopg
import pytest
from aiokafka.admin import RecordsToDelete
from aiokafka.conn import create_conn
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaError,
    NotLeaderForPartitionError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.structs import TopicPartition

from beacon.deploy.local import postgres as local_postgres
from beacon.infra import kafka
from beacon.infra.settings import Settings, url_user, without_credentials
from beacon.schemas.topics import Principals
from tests.support import Infra, isolated, role_url, service_env

US, EU = "us-east", "eu-west"


@pytest.fixture(scope="module")
def space(infra: Infra) -> Iterator[Settings]:
    """A namespace and a database of their own, granted as `make up` grants the default ones."""
    with isolated(infra) as settings:
        yield settings


def as_principal(settings: Settings, principal: str) -> Settings:
    """The settings as one service's Kafka principal, with the password `make up` made for it."""
    acting = dataclasses.replace(settings, kafka_username=None, kafka_password=None).acting_as(principal)
    assert acting.kafka_username == principal, f"no password file for {principal} in {settings.secrets_dir}"
    return acting


def refused(exc_info: pytest.ExceptionInfo[BaseException], *kinds: type[BaseException]) -> None:
    assert isinstance(exc_info.value, kinds), f"{type(exc_info.value).__name__}: {exc_info.value}"


def reads_nothing(settings: Settings, admin: Settings, topic: str) -> None:
    """As `settings`' principal, `topic` gives nothing although it holds a record (put there by the admin),
    and the broker says why: TOPIC_AUTHORIZATION_FAILED in its answer to a metadata request."""
    produce(admin, topic)
    assert count(admin, topic) >= 1

    async def go() -> tuple[list, int]:
        consumer = kafka.consumer(settings, group_id=None)
        await consumer.start()
        try:
            consumer.assign([TopicPartition(topic, 0)])
            got = await consumer.getmany(timeout_ms=6000)
        finally:
            await consumer.stop()
        host, _, port = settings.kafka_bootstrap_servers.split(",")[0].rpartition(":")
        conn = await create_conn(host, int(port), **kafka.security(settings))
        try:
            answer = await conn.send(MetadataRequest([topic], allow_auto_topic_creation=False))
        finally:
            conn.close()
        return [r for records in got.values() for r in records], answer.to_object()["topics"][0]["error_code"]

    records, code = asyncio.run(asyncio.wait_for(go(), 30))
    assert records == [] and code == TopicAuthorizationFailedError.errno, (records, code)


def produce(settings: Settings, topic: str, **overrides: object) -> None:
    async def go() -> None:
        producer = kafka.producer(settings, **overrides)
        await producer.start()
        try:
            if "transactional_id" in overrides:
                async with producer.transaction():
                    await producer.send_and_wait(topic, b"{}")
            else:
                await producer.send_and_wait(topic, b"{}", key=b"forged")
        finally:
            await producer.stop()

    asyncio.run(asyncio.wait_for(go(), 20))


def count(settings: Settings, topic: str) -> int:
    async def go() -> int:
        async with kafka.TopicReader(settings, [topic]) as reader:
            return sum([len(records) async for records in reader.to_end()])

    return asyncio.run(go())


# --- Kafka ----------------------------------------------------------------------------------------------


def test_a_runner_cannot_read_another_regions_work(space: Settings) -> None:
    reads_nothing(as_principal(space, Principals.runner(US)), space, space.topics.work(EU))


def test_a_runner_cannot_write_jobs_submitted_and_nothing_lands(space: Settings) -> None:
    before = count(space, space.topics.jobs_submitted)
    with pytest.raises(KafkaError) as exc:
        produce(as_principal(space, Principals.runner(US)), space.topics.jobs_submitted)
    refused(exc, TopicAuthorizationFailedError)
    assert count(space, space.topics.jobs_submitted) == before


def test_a_runner_cannot_write_another_regions_work(space: Settings) -> None:
    before = count(space, space.topics.work(EU))
    with pytest.raises(KafkaError) as exc:
        produce(as_principal(space, Principals.runner(US)), space.topics.work(EU))
    refused(exc, TopicAuthorizationFailedError)
    assert count(space, space.topics.work(EU)) == before


def test_a_runner_cannot_join_the_recorders_group(space: Settings) -> None:
    # It may read jobs.submitted (its expander does), but not in the recorder's group.
    async def join() -> None:
        consumer = kafka.consumer(
            as_principal(space, Principals.runner(US)), space.topics.jobs_submitted, group_id=space.groups.recorder
        )
        try:
            await consumer.start()
            await consumer.getmany(timeout_ms=3000)
        finally:
            await consumer.stop()

    with pytest.raises(KafkaError) as exc:
        asyncio.run(asyncio.wait_for(join(), 30))
    refused(exc, GroupAuthorizationFailedError)


def test_a_runner_cannot_use_another_regions_transactional_id(space: Settings) -> None:
    with pytest.raises(KafkaError) as exc:
        produce(
            as_principal(space, Principals.runner(US)),
            space.topics.work(US),
            transactional_id=f"{space.groups.expander(EU)}.forged",
        )
    refused(exc, TransactionalIdAuthorizationFailed)


def test_the_submitter_reads_nothing(space: Settings) -> None:
    reads_nothing(as_principal(space, Principals.SUBMITTER), space, space.topics.executions_completed)


@pytest.mark.parametrize("principal", [Principals.RECORDER, Principals.runner(US), Principals.SUBMITTER])
def test_only_admin_deletes_topics_or_records(space: Settings, principal: str) -> None:
    topic = space.topics.executions_completed
    produce(space, topic)
    before = count(space, topic)

    async def attempt() -> tuple[list, object]:
        admin = kafka.admin_client(as_principal(space, principal))
        await admin.start()
        try:
            deleted = await admin.delete_topics([topic])
            outcome = [code for _, code, *_ in deleted.topic_error_codes]
            try:
                await admin.delete_records({TopicPartition(topic, 0): RecordsToDelete(before_offset=-1)})
                records: object = "deleted"
            except KafkaError as exc:
                records = exc
            return outcome, records
        finally:
            await admin.close()

    codes, records = asyncio.run(attempt())
    assert codes == [TopicAuthorizationFailedError.errno], codes
    # Refused outright, or (a principal that may not even see the topic) no leader found for it.
    assert isinstance(records, TopicAuthorizationFailedError | NotLeaderForPartitionError), records
    assert count(space, topic) == before

    async def still_there() -> bool:
        admin = kafka.admin_client(space)  # the admin sees every topic
        await admin.start()
        try:
            return topic in await admin.list_topics()
        finally:
            await admin.close()

    assert asyncio.run(still_there())


def test_a_runner_cannot_move_the_recorders_offsets(space: Settings) -> None:
    async def attempt() -> None:
        consumer = kafka.consumer(as_principal(space, Principals.runner(US)), group_id=space.groups.recorder)
        await consumer.start()
        try:
            consumer.assign([TopicPartition(space.topics.jobs_submitted, 0)])
            await consumer.commit({TopicPartition(space.topics.jobs_submitted, 0): 0})
        finally:
            await consumer.stop()

    with pytest.raises(KafkaError) as exc:
        asyncio.run(asyncio.wait_for(attempt(), 20))
    refused(exc, GroupAuthorizationFailedError)


def test_a_client_without_credentials_gets_nothing(space: Settings) -> None:
    anonymous = dataclasses.replace(space, kafka_username=None, kafka_password=None)
    with pytest.raises(KafkaError):
        asyncio.run(asyncio.wait_for(kafka.reachable(anonymous), 20))
    plaintext = dataclasses.replace(anonymous, kafka_security="plaintext")
    with pytest.raises((KafkaError, asyncio.TimeoutError, ConnectionError)):
        asyncio.run(asyncio.wait_for(kafka.reachable(plaintext), 20))


def test_a_wrong_kafka_password_stops_a_service_at_start_naming_the_setting(space: Settings) -> None:
    env = {
        **service_env(space),
        "BEACON_KAFKA_USERNAME": Principals.RECORDER,
        "BEACON_KAFKA_PASSWORD": "not-the-password",
    }
    result = _run_cli(env, "recorder")
    err = result.stderr.decode()
    assert result.returncode == 2, err[-2000:]
    assert "refused the password of principal recorder" in err and "BEACON_KAFKA_PASSWORD" in err, err[-2000:]
    assert "not-the-password" not in err + result.stdout.decode()


def test_a_wrong_kafka_password_in_a_file_is_named_too(space: Settings, tmp_path: os.PathLike) -> None:
    secret = tmp_path / "pw"  # type: ignore[operator]
    secret.write_text("wrong")
    secret.chmod(0o600)
    env = {**service_env(space), "BEACON_KAFKA_USERNAME": "runner-us-east", "BEACON_KAFKA_PASSWORD_FILE": str(secret)}
    result = _run_cli(env, "runner", "--region", US)
    err = result.stderr.decode()
    assert result.returncode == 2 and f"BEACON_KAFKA_PASSWORD_FILE={secret}" in err, err[-2000:]


def _run_cli(env: dict[str, str], *args: str) -> object:
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "beacon.cli", *args], env=env, capture_output=True, timeout=60)


def test_the_password_files_are_the_owners_alone(infra: Infra) -> None:
    folder = infra.secrets
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert {p.relative_to(folder).parts[0] for p in files} == {"kafka", "postgres"}
    assert {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in files if p.stat().st_mode & 0o077} == {}


# --- PostgreSQL ------------------------------------------------------------------------------------------


def connect_as(infra: Infra, space: Settings, role: str) -> psycopg.Connection:
    return psycopg.connect(role_url(infra, without_credentials(space.database_url), role), autocommit=True)


def executions(space: Settings) -> int:
    with psycopg.connect(space.database_url) as conn:
        return conn.execute("SELECT count(*) FROM executions").fetchone()[0]


def test_the_reader_cannot_write(infra: Infra, space: Settings) -> None:
    before = executions(space)
    with connect_as(infra, space, "reader") as conn:
        for statement in (
            "INSERT INTO jobs (job_id) VALUES ('forged')",
            "DELETE FROM executions",
            "UPDATE executions SET answer = 'forged'",
            "INSERT INTO submissions (job_id) VALUES ('forged')",
            "CREATE TABLE forged (x int)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        assert conn.execute("SELECT count(*) FROM executions").fetchone()[0] == before  # it may read
    assert executions(space) == before


def test_the_recorder_cannot_drop_or_alter(infra: Infra, space: Settings) -> None:
    with connect_as(infra, space, "recorder") as conn:
        for statement in (
            "DROP TABLE executions",
            "ALTER TABLE executions ADD COLUMN forged text",
            "ALTER TABLE executions DROP CONSTRAINT IF EXISTS executions_pkey",
            "TRUNCATE executions",
            "DELETE FROM executions",
            "CREATE TABLE forged (x int)",
            "SELECT count(*) FROM submissions",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    with psycopg.connect(space.database_url) as conn:
        columns = [
            r[0]
            for r in conn.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'executions'")
        ]
        unique = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'executions' AND indexdef LIKE 'CREATE UNIQUE%'"
        ).fetchall()
    assert "forged" not in columns
    assert any("(job_id, region, model_id, question_id)" in d for (d,) in unique), unique


def test_the_recorder_may_update_only_a_timeout_into_a_late_result(infra: Infra, space: Settings) -> None:
    """Its one UPDATE (a late real result in the place of the cell's timeout) is all row-level security lets
    it do: a real answer cannot be rewritten, and a timeout cannot be turned into another timeout."""
    job = "rls-" + os.urandom(4).hex()
    row = (
        "INSERT INTO executions (job_id, region, model_id, question_id, language, provider, status, classification,"
        " classifier_version, output, receipt, started_at, completed_at, event_id)"
        " VALUES (%s, 'us-east', %s, 'math_basic', 'en', 'simulated', %s, 'answered', 'v', '{}', '{}', now(), now(),"
        " gen_random_uuid())"
    )
    with psycopg.connect(space.database_url) as conn:  # the tables' owner side: no row-level security
        conn.execute(
            "INSERT INTO jobs (job_id, spec_sha256, expected_executions, submitted_at, deadline, spec, event_id,"
            " catalogue_version) VALUES (%s, 'x', 2, now(), now(), '{}', gen_random_uuid(), 'v')",
            (job,),
        )
        conn.execute(row, (job, "mistral-7b", "completed"))
        conn.execute(row, (job, "qwen2.5-1.5b", "timeout"))
    with connect_as(infra, space, "recorder") as conn:
        rewritten = conn.execute(
            "UPDATE executions SET answer = 'forged' WHERE job_id = %s AND status = 'completed'", (job,)
        ).rowcount
        assert rewritten == 0  # a real answer is not its to touch
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # nor may a timeout stay a timeout
            conn.execute("UPDATE executions SET answer = 'forged' WHERE job_id = %s AND status = 'timeout'", (job,))
        late = conn.execute(
            "UPDATE executions SET status = 'completed', answer = '4' WHERE job_id = %s AND status = 'timeout'", (job,)
        ).rowcount
        assert late == 1
    with psycopg.connect(space.database_url) as conn:
        rows = conn.execute("SELECT model_id, status, answer FROM executions WHERE job_id = %s ORDER BY 1", (job,))
        assert rows.fetchall() == [("mistral-7b", "completed", None), ("qwen2.5-1.5b", "completed", "4")]


def test_the_submitter_writes_only_submissions(infra: Infra, space: Settings) -> None:
    with connect_as(infra, space, "submitter") as conn:
        conn.execute("SELECT count(*) FROM submissions")
        for statement in ("SELECT count(*) FROM executions", "INSERT INTO jobs (job_id) VALUES ('forged')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_no_service_role_is_powerful_and_no_connection_is_trusted(infra: Infra) -> None:
    with psycopg.connect(infra.admin_db_url) as conn:
        roles = conn.execute(
            "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls FROM pg_roles"
            " WHERE rolname LIKE 'beacon\\_%'"
        ).fetchall()
        rules = conn.execute("SELECT type, auth_method FROM pg_hba_file_rules").fetchall()
    assert sorted(r[0] for r in roles) == sorted(f"beacon_{r}" for r in local_postgres.ROLES)
    assert [r for r in roles if any(r[1:])] == []
    assert rules and {method for _, method in rules} == {"scram-sha-256"}, rules


def test_a_wrong_or_missing_database_password_is_refused(infra: Infra, space: Settings) -> None:
    address = without_credentials(space.database_url)
    scheme, rest = address.split("://")
    for url in (f"{scheme}://beacon_reader:wrong@{rest}", f"{scheme}://beacon_reader@{rest}"):
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(url, connect_timeout=5).close()
    assert url_user(role_url(infra, address, "reader")) == "beacon_reader"
