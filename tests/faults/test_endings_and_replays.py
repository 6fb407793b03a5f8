"""Every job ends at its deadline; replay rebuilds identical tables; reclassify calls no model; dead letters
can be listed and replayed once."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from beacon.domain.classify import CLASSIFIER_VERSION
from beacon.infra import keys
from beacon.infra.settings import Settings
from beacon.schemas.events import Classification, ExecutionCompleted, JobSubmitted
from tests.faults.support import submit, write_routing
from tests.harness import Services, count_rows, wait_for_rows
from tests.kafka_tools import produce, read_all, wait_for_lag_zero
from tests.model_server import Behaviour, ModelServer
from tests.signed import signed
from tests.support import beacon

pytestmark = pytest.mark.faults


def test_a_job_whose_model_never_answers_ends_at_its_deadline(
    fault_settings: Settings, model: ModelServer, stack_factory: Callable[..., Services], tmp_path: Path
) -> None:
    # us-east's models hang far past the deadline; asia-pacific has no runner at all.
    model.script = [Behaviour("hang", delay_s=60.0) for _ in range(100)]
    routing = write_routing(tmp_path / "routing.toml", model, ["us-east"], first_byte_timeout_s=120)
    stack = stack_factory(fault_settings, routing, regions=["us-east"])
    expected = submit(fault_settings, "never-answers", regions=["us-east", "asia-pacific"], deadline_seconds=4)
    assert expected == 48
    # Not settled on consumer lag: the hung calls keep us-east's runner busy for a minute, on purpose.
    found = wait_for_rows(fault_settings, stack, "never-answers", expected, timeout=60, settle=False)
    time.sleep(3)  # more sweeps after the last row: a second timeout for a cell would show now
    with psycopg.connect(fault_settings.database_url) as conn:
        statuses = dict(
            conn.execute("SELECT status, count(*) FROM executions WHERE job_id = 'never-answers' GROUP BY 1").fetchall()
        )
    print(
        f"\nFAULT | model never answers, deadline 4 s, one region without a runner | expected {expected} | "
        f"found {count_rows(fault_settings, 'never-answers')} | statuses {statuses} | model calls {model.calls}"
    )
    assert found == count_rows(fault_settings, "never-answers") == expected
    assert statuses == {"timeout": expected}
    status = json.loads(beacon(fault_settings, "status", "never-answers", "--json").stdout)
    assert status["status"] == "failed" and status["recorded"] == expected
    assert model.calls <= 4  # the window's worth of hung calls; after the deadline no model is asked


def test_replay_rebuilds_identical_tables_and_reclassify_calls_no_model(
    fault_settings: Settings, model: ModelServer, stack_factory: Callable[..., Services], tmp_path: Path
) -> None:
    routing = write_routing(tmp_path / "routing.toml", model, ["us-east", "eu-west", "asia-pacific"])
    # The result below is of a region no runner serves here; its key exists before the recorder reads the keys.
    keys.ensure(fault_settings.keys_dir, [("runner", "nowhere")])
    stack = stack_factory(fault_settings, routing)
    submit(fault_settings, "replayed", questions=["math_basic", "tiananmen_neutral"])
    assert wait_for_rows(fault_settings, stack, "replayed", 18) == 18

    # An answer recorded by an older, worse classifier: a refusal labelled answered.
    topics = fault_settings.topics
    [record] = [
        r
        for r in read_all(fault_settings, topics.executions_completed)
        if r.key == b"replayed|us-east|mistral-7b|tiananmen_neutral"
    ]
    original = ExecutionCompleted.model_validate_json(record.value)
    # Its job: one cell, in a region no runner here serves, so that result is the job's only one (only
    # cells of a known job are recorded).
    [job_record] = [r for r in read_all(fault_settings, topics.jobs_submitted) if r.key == b"replayed"]
    replayed = JobSubmitted.model_validate_json(job_record.value)
    region = replayed.regions[0].model_copy(update={"id": "nowhere"})
    job = replayed.model_copy(
        update={
            "job_id": "old-classifier",
            "regions": [region],
            "questions": [q for q in replayed.questions if q.id == "tiananmen_neutral"],
            "models": [m for m in replayed.models if m.id == "mistral-7b"],
            "expected_executions": 1,
        }
    )
    JobSubmitted.model_validate(job.model_dump())  # still a valid event
    produce(fault_settings, topics.jobs_submitted, [(job.key.encode(), signed(job, fault_settings.keys_dir))])
    old = original.model_copy(
        update={
            "job_id": "old-classifier",
            "region": "nowhere",
            "producer": original.producer.model_copy(update={"region": "nowhere"}),
            "classification": Classification(label="answered", classifier_version="rules-0", evidence="none"),
        }
    )
    produce(fault_settings, topics.executions_completed, [(old.key.encode(), signed(old, fault_settings.keys_dir))])
    assert wait_for_rows(fault_settings, stack, "old-classifier", 1) == 1

    calls = model.calls
    first = beacon(fault_settings, "replay", "recorder", timeout=120)
    second = beacon(fault_settings, "replay", "recorder", timeout=120)
    assert first.returncode == 0 and second.returncode == 0, first.stderr.decode() + second.stderr.decode()
    print("\n" + first.stdout.decode() + second.stdout.decode())
    for out in (first.stdout.decode(), second.stdout.decode()):
        assert "identical: the rebuilt tables match the old ones" in out
    checksums = [line for line in second.stdout.decode().splitlines() if "sha256" in line]
    assert checksums[0].split("before: ")[1] == checksums[1].split("after:  ")[1]
    lines = second.stdout.decode().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("job_regions"))
    regions_before, regions_after = lines[at].split("before: ")[1], lines[at + 1].split("after:  ")[1]
    assert regions_before == regions_after and regions_before.startswith("3 rows")  # replayed's three regions
    assert count_rows(fault_settings, "replayed") == 18
    with psycopg.connect(fault_settings.database_url) as conn:  # the swapped-in table kept migration 008's storage
        (options,) = conn.execute("SELECT reloptions FROM pg_class WHERE relname = 'executions'").fetchone()
    assert "toast_tuple_target=8160" in options

    result = beacon(fault_settings, "reclassify", timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    assert "model calls: 0" in result.stdout.decode()
    with psycopg.connect(fault_settings.database_url) as conn:
        row = conn.execute(
            "SELECT e.classification, e.classifier_version, c.classification, c.classifier_version"
            " FROM executions e JOIN classifications c USING (event_id) WHERE e.job_id = 'old-classifier'"
        ).fetchone()
        reclassified = conn.execute("SELECT count(*) FROM classifications").fetchone()[0]
    assert row == ("answered", "rules-0", "refused", CLASSIFIER_VERSION)  # the new one beside the old
    assert reclassified == 19
    assert model.calls == calls  # neither replay nor reclassify asked a model anything


def test_dead_letters_are_listed_and_replayed_once(
    fault_settings: Settings, stack_factory: Callable[..., Services]
) -> None:
    stack = stack_factory(fault_settings, None, regions=["us-east"])
    topics = fault_settings.topics
    produce(fault_settings, topics.executions_completed, [(b"k", b"not json at all")])
    submit(fault_settings, "around-poison", regions=["us-east"], questions=["math_basic"])
    assert wait_for_rows(fault_settings, stack, "around-poison", 3) == 3

    listed = json.loads(beacon(fault_settings, "dlq", "list", "--json").stdout)
    assert len(listed) == 1
    assert listed[0]["source"].startswith(topics.executions_completed)
    assert listed[0]["consumer"] == f"{fault_settings.topic_namespace}.recorder"
    assert "not a valid event" in listed[0]["error"] and listed[0]["preview"] == "not json at all"

    first = beacon(fault_settings, "dlq", "replay")
    assert first.returncode == 0 and "re-sent 1 message(s)" in first.stdout.decode()
    # It is still poison, so the recorder parks it again (before it commits past it: lag 0 means parked)
    # — but replay never re-sends an entry twice.
    wait_for_lag_zero(fault_settings, fault_settings.groups.recorder, topics.all())
    stack.assert_alive()
    again = json.loads(beacon(fault_settings, "dlq", "list", "--json").stdout)
    assert len(again) == 2
    second = beacon(fault_settings, "dlq", "replay", "--dry-run")
    assert "would re-send 1 message(s)" in second.stdout.decode()  # only the newly parked copy


def test_replay_never_loses_what_was_recorded(fault_settings: Settings, stack_factory: Callable[..., Services]) -> None:
    stack = stack_factory(fault_settings, None, regions=["us-east"])
    expected = submit(fault_settings, "kept", regions=["us-east"])
    assert wait_for_rows(fault_settings, stack, "kept", expected) == expected == 24

    def replay(*args: str) -> tuple[int, str]:
        result = beacon(fault_settings, "replay", "recorder", *args, timeout=120)
        return result.returncode, result.stdout.decode() + result.stderr.decode()

    # --since later than every event: nothing to re-project, and nothing is taken away.
    code, out = replay("--since", "2099-01-01T00:00:00+00:00")
    assert code == 0 and "re-projected 0 events" in out, out
    assert count_rows(fault_settings, "kept") == 24

    # Rows lost from the table (a restore from an older backup): --since fills them in, keeps the rest.
    with psycopg.connect(fault_settings.database_url) as conn:
        conn.execute("DELETE FROM executions WHERE job_id = 'kept' AND model_id = 'mistral-7b'")
    assert count_rows(fault_settings, "kept") == 16
    code, out = replay("--since", "2000-01-01T00:00:00+00:00")
    assert code == 0 and "inserted: 8 executions" in out, out
    assert count_rows(fault_settings, "kept") == 24

    # A full rebuild that would hold fewer rows than the table (here: a row the log never had) is refused,
    # and changes nothing; asked for explicitly, it goes ahead.
    with psycopg.connect(fault_settings.database_url) as conn:
        conn.execute(
            "INSERT INTO jobs (job_id, spec_sha256, expected_executions, submitted_at, deadline, spec, event_id,"
            " catalogue_version) VALUES ('not-in-log', 'x', 1, now(), now() + interval '1 hour', '{}',"
            " gen_random_uuid(), 'sha256:0000000000000000')"
        )
        conn.execute(
            "INSERT INTO executions (job_id, region, model_id, question_id, language, provider, status,"
            " classification, classifier_version, output, receipt, started_at, completed_at, event_id)"
            " VALUES ('not-in-log', 'us-east', 'm', NULL, 'en', 'x', 'completed', 'answered', 'v', '{}', '{}',"
            " now(), now(), gen_random_uuid())"
        )
    code, out = replay()
    assert code == 2 and "fewer rows than the live ones" in out and "Nothing was changed" in out, out
    assert count_rows(fault_settings, "not-in-log") == 1 and count_rows(fault_settings, "kept") == 24
    code, out = replay("--allow-fewer")
    assert code == 0, out
    assert count_rows(fault_settings, "not-in-log") == 0 and count_rows(fault_settings, "kept") == 24
    stack.assert_alive()
