"""`beacon submit` on the real servers (issue 25): it checks no migrations and creates no topics for each job,
yet a namespace without its topics or a database without Beacon's tables gets a message saying what to do,
exit 2, and nothing registered or emitted; a normal submit registers, emits the signed event, and loads
none of the other commands' modules. The same with fakes: tests/unit/test_submit_lean.py."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
import time
import uuid

import psycopg
import pytest

from beacon.deploy.local import access, credentials
from beacon.infra import kafka, keys
from beacon.infra.settings import Settings
from beacon.schemas.events import JobSubmitted
from beacon.schemas.topics import Principals
from tests.kafka_tools import message_count, read_all
from tests.support import Infra, beacon, service_env

pytestmark = pytest.mark.pipeline

# A send to a missing topic waits out the producer's request timeout (40 s) before it fails: far past this.
PROMPTLY_S = 20


def spec_of(job_id: str) -> bytes:
    return json.dumps(
        {"job_id": job_id, "questions": ["math_basic"], "models": ["mistral-7b"], "regions": ["us-east"]}
    ).encode()


def registered(settings: Settings, job_id: str | None = None) -> int:
    with psycopg.connect(settings.database_url) as conn:
        if job_id is None:
            return conn.execute("SELECT count(*) FROM submissions").fetchone()[0]
        return conn.execute("SELECT count(*) FROM submissions WHERE job_id = %s", (job_id,)).fetchone()[0]


def topic_exists(settings: Settings, topic: str) -> bool:
    async def names() -> list[str]:
        admin = kafka.admin_client(settings)
        await admin.start()
        try:
            return await admin.list_topics()
        finally:
            await admin.close()

    return topic in asyncio.run(names())


def submit(settings: Settings, job_id: str) -> tuple[subprocess.CompletedProcess, float]:
    began = time.monotonic()
    result = beacon(settings, "submit", "-", stdin=spec_of(job_id))
    return result, time.monotonic() - began


# --- (a) a namespace without its topics -------------------------------------------------------------------


def test_a_namespace_without_topics_is_said_promptly_and_nothing_is_registered(
    infra: Infra, settings: Settings
) -> None:
    """The namespace's principals and ACLs are granted, its topics were never made (as after a `make up` that
    stopped half-way): the submitter may see that the topic is missing, and says so."""
    bare = dataclasses.replace(settings, topic_namespace=f"{settings.topic_namespace}-bare")
    topic = bare.topics.jobs_submitted
    submitter = {Principals.SUBMITTER: credentials.password(infra.state, "kafka", Principals.SUBMITTER)}
    access.grant(bare, submitter, [], topics=[])  # its ACLs, no topic
    before = registered(settings)

    result, took = submit(bare, "lean-no-topic")
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert f"has no topic {topic}" in err and "nothing was registered" in err, err
    assert "`make up` creates the topics" in err and "BEACON_TOPIC_NAMESPACE" in err, err
    assert "waiting for Kafka" not in err and took < PROMPTLY_S, (took, err)
    assert registered(settings) == before and registered(settings, "lean-no-topic") == 0
    assert not topic_exists(settings, topic)  # asking for it created nothing


def test_a_namespace_never_granted_names_the_topic_and_the_principal(settings: Settings) -> None:
    """No ACL at all: Kafka will not say whether the topic exists, only that the principal may not see it."""
    never = dataclasses.replace(settings, topic_namespace=f"{settings.topic_namespace}-never")
    before = registered(settings)
    result, took = submit(never, "lean-never-granted")
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert "principal submitter is not allowed" in err and never.topics.jobs_submitted in err, err
    assert took < PROMPTLY_S, (took, err)
    assert registered(settings) == before


# --- (b) a database without Beacon's tables ---------------------------------------------------------------


def tables(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [t for (t,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]


def test_an_unmigrated_database_says_migrate_and_nothing_changes(settings: Settings, empty_db: str) -> None:
    unmigrated = dataclasses.replace(settings, database_url=empty_db)
    topic = settings.topics.jobs_submitted
    assert topic_exists(settings, topic)
    emitted = message_count(settings, topic)

    result, took = submit(unmigrated, "lean-no-schema")
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert "the database has no Beacon schema (or an old one): run `beacon migrate` (make up does)" in err, err
    assert 'relation "submissions" does not exist' in err and took < PROMPTLY_S, (took, err)
    assert tables(empty_db) == []  # nothing made,
    assert message_count(settings, topic) == emitted  # nothing emitted


def test_a_database_of_an_older_beacon_says_migrate_and_nothing_changes(settings: Settings, empty_db: str) -> None:
    """A registry table from before API tokens (no token_id column): the same message, the table left empty."""
    with psycopg.connect(empty_db) as conn:
        conn.execute("CREATE TABLE submissions (job_id text PRIMARY KEY, spec_sha256 text NOT NULL, event jsonb)")
        conn.execute("GRANT SELECT, INSERT ON submissions TO beacon_submitter")
    old = dataclasses.replace(settings, database_url=empty_db)
    emitted = message_count(settings, settings.topics.jobs_submitted)

    result, _ = submit(old, "lean-old-schema")
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert "the database has no Beacon schema (or an old one): run `beacon migrate`" in err and "token_id" in err
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("SELECT count(*) FROM submissions").fetchone() == (0,)
    assert message_count(settings, settings.topics.jobs_submitted) == emitted


# --- (c) a normal submit ----------------------------------------------------------------------------------

# The CLI run in-process as `beacon submit` runs it, then the modules it loaded.
LOADED = """
import sys
from beacon.cli import main
try:
    main(sys.argv[1:])
finally:
    print("loaded", *sorted(sys.modules), file=sys.stderr)
"""

# Another command's, or the HTTP service's start-up checks' (the pool, the topic admin): never on this path.
NOT_FOR_A_SUBMIT = {
    "beacon.cli.bundles",
    "beacon.cli.reading",
    "beacon.domain.bundle",
    "beacon.infra.topics",
    "aiokafka.admin",
    "psycopg_pool",
    "httpx",
    "fastapi",
}


def test_a_submit_registers_and_emits_its_signed_event_and_loads_only_what_it_needs(settings: Settings) -> None:
    job_id = f"lean-ok-{uuid.uuid4().hex[:8]}"
    topic = settings.topics.jobs_submitted
    emitted = message_count(settings, topic)
    result = subprocess.run(
        [sys.executable, "-c", LOADED, "submit", "-", "--json"],
        input=spec_of(job_id),
        capture_output=True,
        env=service_env(settings),
        timeout=60,
    )
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert json.loads(result.stdout) == {"job_id": job_id, "expected_executions": 1}
    [loaded] = [line.split()[1:] for line in err.splitlines() if line.startswith("loaded ")]
    assert sorted(NOT_FOR_A_SUBMIT & set(loaded)) == []

    assert message_count(settings, topic) == emitted + 1
    [record] = [r for r in read_all(settings, topic) if r.key == job_id.encode()]
    event = JobSubmitted.model_validate_json(record.value)
    assert (event.job_id, event.expected_executions) == (job_id, 1)
    submitters = {k.key_id for k in keys.read_trusted(settings.keys_dir / keys.TRUSTED) if k.role == "submitter"}
    assert event.signature is not None and event.signature.key_id in submitters
    with psycopg.connect(settings.database_url) as conn:
        [(stored,)] = conn.execute("SELECT event FROM submissions WHERE job_id = %s", (job_id,)).fetchall()
    assert stored["event_id"] == str(event.event_id)  # the registered event is the one emitted

    # Submitted again: a repeat, the original event re-sent (it heals a crash between claim and send).
    again = beacon(settings, "submit", "-", stdin=spec_of(job_id))
    assert again.returncode == 0 and "already submitted" in again.stdout.decode(), again.stderr.decode()
    resent = [r for r in read_all(settings, topic) if r.key == job_id.encode()]
    assert [JobSubmitted.model_validate_json(r.value).event_id for r in resent] == [event.event_id] * 2
    assert registered(settings, job_id) == 1
