"""The whole path on real Kafka and PostgreSQL, with the submitter, runners and recorder as separate
processes: the seed's four cases, the expected classifications, and harmless redelivery."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg
import pytest

from beacon.infra.settings import Settings
from tests.harness import Services, count_rows, wait_for_rows
from tests.kafka_tools import produce, read_all, wait_for_quiet
from tests.paths import EXAMPLES
from tests.support import beacon

pytestmark = pytest.mark.pipeline

EXAMPLES = EXAMPLES


def submit(settings: Settings, example: str | Path, **overrides: object) -> tuple[str, int]:
    spec = json.loads((EXAMPLES / example).read_text())
    spec["job_id"] = f"t-{uuid.uuid4().hex[:12]}"
    spec.update(overrides)
    result = beacon(settings, "submit", "-", "--json", stdin=json.dumps(spec).encode())
    assert result.returncode == 0, result.stderr.decode()
    out = json.loads(result.stdout)
    assert out["job_id"] == spec["job_id"]
    return out["job_id"], out["expected_executions"]


def distinct_keys(settings: Settings, job_id: str) -> int:
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute(
            "SELECT count(DISTINCT (region, model_id, coalesce(question_id, '<none>')))"
            " FROM executions WHERE job_id = %s",
            (job_id,),
        ).fetchone()[0]


@pytest.mark.parametrize(
    ("example", "expected"),
    [("single.json", 1), ("two-questions.json", 2), ("full-matrix.json", 72), ("no-questions.json", 1)],
)
def test_seed_cases_record_exactly_one_row_per_cell(
    settings: Settings, pipeline: Services, example: str, expected: int
) -> None:
    job_id, expected_executions = submit(settings, example)
    assert expected_executions == expected

    assert wait_for_rows(settings, pipeline, job_id, expected) == expected
    assert distinct_keys(settings, job_id) == expected

    status = json.loads(beacon(settings, "status", job_id, "--json").stdout)
    assert status["expected"] == expected and status["recorded"] == expected
    assert status["status"] == "completed"
    assert status["by_status"] == {"completed": expected}


def test_no_question_job_records_a_null_question_row(settings: Settings, pipeline: Services) -> None:
    job_id, _ = submit(settings, "no-questions.json")
    wait_for_rows(settings, pipeline, job_id, 1)
    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute(
            "SELECT region, model_id, question_id, provider, classification FROM executions WHERE job_id = %s",
            (job_id,),
        ).fetchall()
    assert rows == [("us-east", "llama3.2-1b", None, "simulated", "answered")]


def test_full_matrix_classifications_follow_the_simulated_rule(settings: Settings, pipeline: Services) -> None:
    job_id, _ = submit(settings, "full-matrix.json")
    wait_for_rows(settings, pipeline, job_id, 72)
    with psycopg.connect(settings.database_url) as conn:
        refused = set(
            conn.execute(
                "SELECT region, model_id, question_id FROM executions WHERE job_id = %s AND classification = 'refused'",
                (job_id,),
            ).fetchall()
        )
        providers = conn.execute("SELECT DISTINCT provider FROM executions WHERE job_id = %s", (job_id,)).fetchall()
    sensitive = ["tiananmen_neutral", "taiwan_status", "hongkong_2019"]
    expected = {(r, "qwen2.5-1.5b", q) for r in ("us-east", "eu-west", "asia-pacific") for q in sensitive}
    expected |= {("asia-pacific", "mistral-7b", q) for q in sensitive}
    expected |= {("asia-pacific", "llama3.2-1b", "tiananmen_neutral")}
    assert refused == expected
    assert providers == [("simulated",)]

    matrix = beacon(settings, "matrix", job_id)
    assert matrix.returncode == 0, matrix.stderr.decode()
    lines = matrix.stdout.decode().splitlines()
    assert lines[0].split()[:3] == ["question", "qwen2.5-1.5b", "US"]
    assert len(lines) == 2 + 8
    assert sum(line.count("REFUSED") for line in lines) == 13


def test_redelivered_executions_change_nothing(settings: Settings, pipeline: Services) -> None:
    topics = settings.topics
    jobs = [submit(settings, "full-matrix.json"), submit(settings, "no-questions.json")]
    for job_id, expected in jobs:
        assert wait_for_rows(settings, pipeline, job_id, expected) == expected

    def snapshot() -> list[tuple]:
        with psycopg.connect(settings.database_url) as conn:
            return conn.execute(
                "SELECT job_id, region, model_id, question_id, event_id FROM executions WHERE job_id = ANY(%s) "
                "ORDER BY 1, 2, 3, 4",
                ([j for j, _ in jobs],),
            ).fetchall()

    before = snapshot()
    assert len(before) == 73
    prefixes = tuple(f"{job_id}|".encode() for job_id, _ in jobs)
    events = [(r.key, r.value) for r in read_all(settings, topics.executions_completed) if r.key.startswith(prefixes)]
    assert len(events) == 73
    produce(settings, topics.executions_completed, events + events)  # every event twice more

    for job_id, expected in jobs:
        assert wait_for_rows(settings, pipeline, job_id, expected) == expected
    # The recorder has consumed the copies (they sit behind the originals on the same partitions)…
    assert len([r for r in read_all(settings, topics.executions_completed) if r.key.startswith(prefixes)]) == 3 * 73
    # …and the table is exactly as it was: same rows, and the first event per cell still the one kept.
    assert snapshot() == before


def test_redelivered_job_adds_no_rows(settings: Settings, pipeline: Services) -> None:
    topics = settings.topics
    job_id, expected = submit(settings, "full-matrix.json")
    assert wait_for_rows(settings, pipeline, job_id, expected) == expected
    original = [(r.key, r.value) for r in read_all(settings, topics.jobs_submitted) if r.key == job_id.encode()]
    assert len(original) == 1

    def cells_scheduled() -> int:
        prefix = f"{job_id}|".encode()
        work = [c for r in pipeline.regions() for c in read_all(settings, topics.work(r))]
        return sum(1 for c in work if (c.key or b"").startswith(prefix))

    assert cells_scheduled() == expected
    produce(settings, topics.jobs_submitted, original)
    # Every expander has decided on the copy, every runner has run what it was given, the recorder has
    # recorded every result (consumer lag 0 throughout): nothing was scheduled again, no row was added.
    wait_for_quiet(settings, pipeline.regions())
    assert cells_scheduled() == expected
    assert count_rows(settings, job_id) == expected
