"""`beacon migrate` is idempotent, safe when run twice at once, and the unique index dedups NULL questions."""

from __future__ import annotations

import subprocess
import sys
import uuid

import psycopg
import pytest

from beacon.infra import db
from tests.support import service_env

pytestmark = pytest.mark.pipeline


def schema_of(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY 1, 2"
        ).fetchall()
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
        ).fetchall()
        applied = conn.execute("SELECT version, sha256 FROM schema_migrations ORDER BY 1").fetchall()
    return columns + indexes + applied


def test_migrate_twice_changes_nothing(empty_db: str) -> None:
    first = db.migrate(empty_db)
    assert first == [p.name for p in db.migration_files()]
    schema = schema_of(empty_db)
    assert db.migrate(empty_db) == []
    assert schema_of(empty_db) == schema


def test_two_migrations_at_once_both_succeed(empty_db: str, settings) -> None:
    env = {**service_env(settings), "DATABASE_URL": empty_db}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "beacon.cli", "migrate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    said = sorted(out.decode().strip() for out, _ in outputs)
    assert said[0].startswith("applied 001_") and said[1] == "database is up to date"
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(db.migration_files())


def test_edited_migration_is_refused(empty_db: str, tmp_path) -> None:
    (tmp_path / "001_a.sql").write_text("CREATE TABLE a (x int);")
    db.migrate(empty_db, tmp_path)
    (tmp_path / "001_a.sql").write_text("CREATE TABLE a (x bigint);")
    with pytest.raises(db.MigrationError, match=r"001_a\.sql was applied already but its file has changed"):
        db.migrate(empty_db, tmp_path)


def test_unique_index_treats_null_questions_as_equal(empty_db: str) -> None:
    db.migrate(empty_db)
    row = (
        "j1",
        "us-east",
        "llama3.2-1b",
        None,
        "simulated",
        "completed",
        "answered",
        "rules-1",
        "{}",
        "{}",
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:01Z",
        str(uuid.uuid4()),
    )
    insert = (
        "INSERT INTO executions (job_id, region, model_id, question_id, provider, status, classification,"
        " classifier_version, output, receipt, started_at, completed_at, event_id)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    )
    with psycopg.connect(empty_db) as conn:
        conn.execute(insert, row)
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(insert, (*row[:-1], str(uuid.uuid4())))
