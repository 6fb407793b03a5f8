"""SIGKILL a runner and the recorder mid-job; restart PostgreSQL mid-job; count rows.

Brokers lost, stopped and restarted mid-job: test_broker_loss.py."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from beacon.deploy.local import postgres as local_postgres
from beacon.domain import results
from beacon.domain.cells import cells_of
from beacon.infra.catalogues import DEFAULT
from beacon.infra.settings import Settings, state_dir
from beacon.schemas.commands import JobSpec
from beacon.schemas.events import Attempt, ExecutionCompleted, ProducerInfo, now
from beacon.schemas.topics import dead_letter_topic
from beacon.submitter.decide import job_submitted
from tests.faults.support import WINDOW, calls_from, submit, wait_until, write_routing
from tests.harness import Services, count_rows, wait_for_rows
from tests.kafka_tools import message_count, produce, wait_for_quiet
from tests.model_server import ModelServer
from tests.signed import signed
from tests.support import Infra, beacon

pytestmark = pytest.mark.faults

CELLS = 72  # 8 questions × 3 models × 3 regions


def distinct_cells(settings: Settings, job_id: str) -> int:
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute(
            "SELECT count(DISTINCT (region, model_id, coalesce(question_id, ''))) FROM executions WHERE job_id = %s",
            (job_id,),
        ).fetchone()[0]


def report(fault: str, expected: int, found: int, distinct: int, calls: int | None, cells: int) -> None:
    """One line of the closing note's table, printed whatever the outcome."""
    print(
        f"\nFAULT | {fault} | expected {expected} | found {found} | duplicates {found - distinct} | "
        f"model calls {calls if calls is not None else '-'} for {cells} cells"
    )


def test_sigkill_runner_mid_job(
    fault_settings: Settings, model: ModelServer, stack_factory: Callable[..., Services], tmp_path: Path
) -> None:
    routing = write_routing(tmp_path / "routing.toml", model, ["us-east", "eu-west", "asia-pacific"])
    stack = stack_factory(fault_settings, routing)
    assert submit(fault_settings, "kill-runner") == CELLS
    wait_until(lambda: calls_from(model, "us-east") >= 6, what="us-east cells in flight")
    stack.kill("runner-us-east")  # cells in flight, acknowledged-but-uncommitted cells: all in the air
    killed_at = calls_from(model, "us-east")
    assert killed_at < 24, "the kill came too late to test anything"
    time.sleep(1)
    stack.restart("runner-us-east")
    found = wait_for_rows(fault_settings, stack, "kill-runner", CELLS, timeout=120)
    distinct = distinct_cells(fault_settings, "kill-runner")
    report("SIGKILL runner us-east mid-job", CELLS, found, distinct, model.calls, CELLS)
    assert found == CELLS and distinct == CELLS
    assert model.calls <= CELLS + WINDOW, f"{model.calls} model calls for {CELLS} cells"


def test_sigkill_recorder_mid_batch(fault_settings: Settings, stack_factory: Callable[..., Services]) -> None:
    # Four jobs submitted before any service starts (four `beacon submit`s take seconds on a loaded
    # machine); then simulated models with latency and small recorder batches make the results trickle
    # in for ~12 s, so the kill lands among batches.
    jobs = [f"kill-recorder-{i}" for i in range(4)]
    for job_id in jobs:
        submit(fault_settings, job_id)
    stack = stack_factory(fault_settings, None, BEACON_SIMULATED_LATENCY_MS="500", BEACON_RECORDER_BATCH_SIZE="16")
    with psycopg.connect(fault_settings.database_url, autocommit=True) as conn:  # one connection: quick polls
        total = lambda: conn.execute(  # noqa: E731
            "SELECT count(*) FROM executions WHERE job_id LIKE 'kill-recorder-%'"
        ).fetchone()[0]
        wait_until(lambda: total() >= 40, what="some rows recorded")
        stack.kill("recorder")
        at_kill = total()
    assert at_kill < 4 * CELLS, "the kill came too late to test anything"
    stack.restart("recorder")
    found = sum(wait_for_rows(fault_settings, stack, j, CELLS, timeout=120) for j in jobs)
    distinct = sum(distinct_cells(fault_settings, j) for j in jobs)
    report(f"SIGKILL recorder after {at_kill} of {4 * CELLS} rows", 4 * CELLS, found, distinct, None, 4 * CELLS)
    assert found == distinct == 4 * CELLS


def early_results(job_id: str) -> list[ExecutionCompleted]:
    """A result for every cell of the seed job `job_id`, as its regions' runners would produce them."""
    spec = JobSpec(
        job_id=job_id, questions=list(DEFAULT.questions), models=list(DEFAULT.models), regions=list(DEFAULT.regions)
    )
    at = now()
    job = job_submitted(
        spec,
        DEFAULT,
        now=at,
        default_deadline_seconds=3600,
        producer=ProducerInfo(service="submitter", instance="test"),
    )
    out = []
    for cell in cells_of(job):
        attempt = Attempt(number=1, started_at=at, completed_at=at, outcome="ok")
        producer = ProducerInfo(service="runner", region=cell[0], instance="early@test:1")
        asked = results.Asked.of_job(job, cell)
        out.append(
            results.result(
                asked,
                producer=producer,
                provider="simulated",
                status="completed",
                answer="an early answer",
                attempts=[attempt],
                started_at=at,
                completed_at=at,
            )
        )
    return out


def test_sigkill_recorder_while_results_wait_for_their_job(
    fault_settings: Settings, stack_factory: Callable[..., Services]
) -> None:
    """The results come before their JobSubmitted (the two topics are not ordered) and wait in
    pending_results; the recorder is killed among those batches, restarted, and then the job arrives:
    every cell is recorded once, as the early result, and nothing is dead-lettered."""
    early = early_results("early-kill")
    stack = stack_factory(fault_settings, None, regions=[], BEACON_RECORDER_BATCH_SIZE="8")  # no runners
    topic = fault_settings.topics.executions_completed
    first, rest = early[:36], early[36:]
    produce(fault_settings, topic, [(e.key.encode(), signed(e, fault_settings.keys_dir)) for e in first])
    with psycopg.connect(fault_settings.database_url, autocommit=True) as conn:
        held = lambda: conn.execute(  # noqa: E731
            "SELECT count(*) FROM pending_results WHERE job_id = 'early-kill'"
        ).fetchone()[0]
        wait_until(lambda: held() >= 8, what="some results held")
        stack.kill("recorder")  # among the batches of the first half (8 per batch)
        at_kill = held()
    # The second half arrives while the recorder is down: it is read after the restart, with the rest of
    # the first half that was not committed.
    produce(fault_settings, topic, [(e.key.encode(), signed(e, fault_settings.keys_dir)) for e in rest])
    stack.restart("recorder")
    with psycopg.connect(fault_settings.database_url, autocommit=True) as conn:
        wait_until(
            lambda: conn.execute("SELECT count(*) FROM pending_results").fetchone()[0] == CELLS,
            what="every result held, none twice",
        )
    assert submit(fault_settings, "early-kill") == CELLS
    found = wait_for_rows(fault_settings, stack, "early-kill", CELLS, timeout=120)
    distinct = distinct_cells(fault_settings, "early-kill")
    report(f"SIGKILL recorder after holding {at_kill} of {CELLS} early results", CELLS, found, distinct, 0, CELLS)
    with psycopg.connect(fault_settings.database_url) as conn:
        ids = {r[0] for r in conn.execute("SELECT event_id FROM executions WHERE job_id = 'early-kill'").fetchall()}
        left = conn.execute("SELECT count(*) FROM pending_results").fetchone()[0]
    assert found == distinct == CELLS and ids == {e.event_id for e in early} and left == 0
    assert message_count(fault_settings, dead_letter_topic(topic)) == 0


def test_postgres_restart_mid_job(
    infra: Infra, fault_settings: Settings, model: ModelServer, stack_factory: Callable[..., Services], tmp_path: Path
) -> None:
    if os.environ.get("DATABASE_URL"):
        pytest.fail("this test stops and starts PostgreSQL, so it needs the local cluster: unset DATABASE_URL")
    cluster = local_postgres.PostgresCluster(state_dir())
    routing = write_routing(tmp_path / "routing.toml", model, ["us-east", "eu-west", "asia-pacific"])
    stack = stack_factory(fault_settings, routing)
    submit(fault_settings, "pg-restart")
    wait_until(lambda: count_rows(fault_settings, "pg-restart") >= 8, what="some rows recorded")
    cluster.stop()
    time.sleep(6)  # results keep arriving in Kafka; the recorder must wait, not skip or dead-letter
    stack.assert_alive()
    cluster.start()
    found = wait_for_rows(fault_settings, stack, "pg-restart", CELLS, timeout=120)
    distinct = distinct_cells(fault_settings, "pg-restart")
    report("PostgreSQL stopped 6 s mid-job", CELLS, found, distinct, model.calls, CELLS)
    assert found == distinct == CELLS
    assert "database_unavailable" in stack.log("recorder")  # it did notice, and waited
    executions_dlq = dead_letter_topic(fault_settings.topics.executions_completed)
    assert message_count(fault_settings, executions_dlq) == 0
    assert model.calls == CELLS


def test_resubmission_is_idempotent_and_conflicts_are_refused(
    fault_settings: Settings, model: ModelServer, stack_factory: Callable[..., Services], tmp_path: Path
) -> None:
    routing = write_routing(tmp_path / "routing.toml", model, ["us-east", "eu-west", "asia-pacific"])
    stack = stack_factory(fault_settings, routing)
    submit(fault_settings, "resubmit")
    assert wait_for_rows(fault_settings, stack, "resubmit", CELLS, timeout=120) == CELLS
    calls = model.calls
    assert calls == CELLS

    spec = {
        "job_id": "resubmit",
        "questions": list(DEFAULT.questions),
        "models": list(DEFAULT.models),
        "regions": list(DEFAULT.regions),
    }
    again = beacon(fault_settings, "submit", "-", "--json", stdin=json.dumps(spec).encode())
    assert again.returncode == 0, again.stderr.decode()
    assert json.loads(again.stdout) == {"job_id": "resubmit", "expected_executions": CELLS, "already_submitted": True}

    jobs_topic = fault_settings.topics.jobs_submitted
    before = message_count(fault_settings, jobs_topic)
    conflicting = beacon(fault_settings, "submit", "-", stdin=json.dumps({**spec, "regions": ["us-east"]}).encode())
    assert conflicting.returncode == 2
    assert "job 'resubmit' was already submitted with a different spec" in conflicting.stderr.decode()
    assert message_count(fault_settings, jobs_topic) == before

    # Every expander has decided, every runner run what it was given, the recorder recorded it all (consumer
    # lag 0): had the resubmission scheduled anything, the models would have been called by now.
    wait_for_quiet(fault_settings, stack.regions())
    report(
        "resubmit a finished job",
        CELLS,
        count_rows(fault_settings, "resubmit"),
        distinct_cells(fault_settings, "resubmit"),
        model.calls - calls,
        0,
    )
    assert model.calls == calls, "a resubmission called the models again"
    assert count_rows(fault_settings, "resubmit") == CELLS
