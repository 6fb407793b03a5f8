"""`beacon migrate` is idempotent, safe when run twice at once, and the unique index dedups NULL questions."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from beacon.infra import db
from beacon.recorder import store
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


JOB = (
    "INSERT INTO jobs (job_id, spec_sha256, expected_executions, submitted_at, deadline, spec, event_id,"
    " catalogue_version) VALUES (%s, 'x', 1, now(), now(), '{}', %s, %s)"
)
EXECUTION = (
    "INSERT INTO executions (job_id, region, model_id, question_id, language, provider, status, classification,"
    " classifier_version, output, receipt, started_at, completed_at, event_id)"
    " VALUES (%s, 'us-east', 'llama3.2-1b', %s, %s, 'simulated', 'completed', 'answered', 'rules-1', '{}', '{}',"
    " '2026-01-01T00:00:00Z', '2026-01-01T00:00:01Z', %s)"
)


def test_unique_index_is_exactly_the_cell_and_treats_null_questions_as_equal(empty_db: str) -> None:
    db.migrate(empty_db)
    with psycopg.connect(empty_db) as conn:
        [(definition,)] = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'executions_one_per_cell'"
        ).fetchall()
        assert definition.endswith("(job_id, region, model_id, question_id) NULLS NOT DISTINCT")
        conn.execute(JOB, ("j1", str(uuid.uuid4()), "sha256:0000000000000000"))
        conn.execute(EXECUTION, ("j1", None, "en", str(uuid.uuid4())))
        with pytest.raises(psycopg.errors.UniqueViolation):  # the same cell again, even in another language
            conn.execute(EXECUTION, ("j1", None, "zh", str(uuid.uuid4())))


def test_an_execution_needs_its_job(empty_db: str) -> None:
    db.migrate(empty_db)
    with psycopg.connect(empty_db) as conn, pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute(EXECUTION, ("no-such-job", "math_basic", "en", str(uuid.uuid4())))


def test_a_results_row_stays_inline_and_the_recorders_staging_table_is_made_the_same_way(empty_db: str) -> None:
    """Migration 008: a row up to a page's size is neither compressed nor moved out of line (TOAST), here and in
    the recorder's staging table (store.prepare copies the storage parameters; CREATE TABLE … AS would not)."""
    db.migrate(empty_db)

    async def staged() -> tuple[list[str], list[str]]:
        async with await psycopg.AsyncConnection.connect(empty_db) as conn:
            await store.prepare(conn)
            query = "SELECT reloptions FROM pg_class WHERE oid = %s::regclass"
            (live,) = await (await conn.execute(query, ("executions",))).fetchone()  # type: ignore[misc]
            (staging,) = await (await conn.execute(query, ("incoming_executions",))).fetchone()  # type: ignore[misc]
            return live, staging

    live, staging = asyncio.run(staged())
    assert live == staging == ["toast_tuple_target=8160"]
    with psycopg.connect(empty_db) as conn:
        conn.execute(JOB, ("j1", str(uuid.uuid4()), "sha256:0000000000000000"))
        conn.execute(EXECUTION, ("j1", "math_basic", "en", str(uuid.uuid4())))
        conn.execute("UPDATE executions SET event = repeat('x', 5000)")  # a typical row: about 5 KB in all
        (external,) = conn.execute("SELECT pg_column_size(event) FROM executions").fetchone()  # type: ignore[misc]
    assert external >= 5000  # stored as it is, not compressed (pglz would make 5000 x's a few dozen bytes)


def old_schema(url: str, tmp_path: Path) -> None:
    """A database as migrations 001–004 left it (a cell could be recorded once per language)."""
    for path in db.migration_files()[:4]:
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    assert db.migrate(url, tmp_path) == [p.name for p in db.migration_files()[:4]]


def test_005_refuses_a_database_with_a_cell_in_two_languages_and_changes_nothing(
    empty_db: str, tmp_path: Path, settings
) -> None:
    old_schema(empty_db, tmp_path)
    with psycopg.connect(empty_db) as conn:
        conn.execute(JOB, ("j1", str(uuid.uuid4()), "sha256:0000000000000000"))
        for language in ("en", "zh"):
            conn.execute(EXECUTION, ("j1", "math_basic", language, str(uuid.uuid4())))
        conn.execute(EXECUTION, ("gone", "math_basic", "en", str(uuid.uuid4())))  # a job the table lacks
    schema = schema_of(empty_db)
    with pytest.raises(db.MigrationError) as refused:
        db.migrate(empty_db)
    said = str(refused.value)
    assert said.startswith("005_one_language_per_region.sql refused: this database holds results that events v1")
    assert "1 cells recorded more than once under (job_id, region, model_id, question_id)" in said
    assert "1 results or expansions of jobs it does not hold" in said
    assert "Nothing was changed" in said and "recreate the database" in said
    assert schema_of(empty_db) == schema  # not applied, not half applied
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("SELECT count(*) FROM executions").fetchone()[0] == 3
    # The user sees the same through the CLI, as an error that says what to do (exit 2), not a traceback.
    done = subprocess.run(
        [sys.executable, "-m", "beacon.cli", "migrate"],
        env={**service_env(settings), "DATABASE_URL": empty_db},
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2 and b"Traceback" not in done.stderr
    assert b"recreate the database" in done.stderr


def test_005_applies_to_a_database_of_v1_rows(empty_db: str, tmp_path: Path) -> None:
    old_schema(empty_db, tmp_path)
    with psycopg.connect(empty_db) as conn:
        conn.execute(JOB, ("j1", str(uuid.uuid4()), "sha256:0000000000000000"))
        conn.execute(EXECUTION, ("j1", "math_basic", "en", str(uuid.uuid4())))
    assert db.migrate(empty_db) == [
        "005_one_language_per_region.sql",
        "006_api_tokens.sql",
        "007_signed_events.sql",
        "008_rows_inline.sql",
    ]
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("SELECT count(*) FROM executions").fetchone()[0] == 1
