"""Issue 19, point 4, on the real Kafka and PostgreSQL: only a cell of a known job becomes a row of executions.

A result that is out of its job's spec, under a Kafka key that is not its own, produced by another region, on
a topic not of its type, or whose job never arrives is dead-lettered with its reason and counted, and leaves
the cell free for the real result. A result that comes before its JobSubmitted waits for it and is then
recorded, as the first event of its cell.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from beacon.domain import results
from beacon.infra.catalogues import DEFAULT
from beacon.infra.settings import Settings
from beacon.schemas.events import Attempt, ExecutionCompleted, GenerationParams, ProducerInfo
from beacon.schemas.topics import dead_letter_topic
from tests.harness import Services, count_rows, wait_for_rows
from tests.kafka_tools import produce, read_all
from tests.signed import signed
from tests.support import beacon

pytestmark = pytest.mark.pipeline

ORPHAN_WAIT_SECONDS = 15  # the pipeline fixture's recorder (conftest.py)
RUNNER_EU = ProducerInfo(service="runner", region="eu-west", instance="forger@test:1")
PARAMS = GenerationParams(temperature=0.7, max_tokens=512)


def forged(
    job_id: str,
    question: str = "math_basic",
    region: str = "eu-west",
    language: str = "en",
    producer: ProducerInfo = RUNNER_EU,
    answer: str = "a forged answer",
) -> ExecutionCompleted:
    at = datetime.now(UTC)
    asked = results.Asked(
        job_id=job_id,
        region=region,
        model_id="mistral-7b",
        question_id=question,
        language=language,
        prompt=DEFAULT.questions[question].prompts["en"],
        system_prompt=DEFAULT.regions[region].system_prompts["en"],
        params=PARAMS,
    )
    attempt = Attempt(number=1, started_at=at, completed_at=at + timedelta(seconds=1), outcome="ok")
    return results.result(
        asked,
        producer=producer,
        provider="simulated",
        status="completed",
        answer=answer,
        attempts=[attempt],
        started_at=at,
        completed_at=at + timedelta(seconds=1),
    )


def submit(settings: Settings, job_id: str) -> None:
    spec = {"job_id": job_id, "questions": ["math_basic"], "models": ["mistral-7b"], "regions": ["eu-west"]}
    done = beacon(settings, "submit", "-", stdin=json.dumps(spec).encode())
    assert done.returncode == 0, done.stderr.decode()


def recorder_dead_letters(settings: Settings, topic: str, marker: str) -> dict[str, str]:
    """event answer → the recorder's reason, for the dead letters of `topic` carrying `marker`."""
    out = {}
    for record in read_all(settings, dead_letter_topic(topic)):
        headers = dict(record.headers)
        if marker.encode() in record.value and headers["beacon.consumer"].decode() == settings.groups.recorder:
            out[json.loads(record.value)["answer"]] = headers["beacon.error"].decode()
    return out


def wait_for_dead_letters(settings: Settings, topic: str, marker: str, n: int, timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = recorder_dead_letters(settings, topic, marker)
        if len(found) >= n:
            return found
        time.sleep(0.5)
    return recorder_dead_letters(settings, topic, marker)


def strays_counted(recorder_port: int) -> dict[str, float]:
    deadline = time.monotonic() + 30
    while True:  # the recorder serves /metrics a moment after it starts
        try:
            text = httpx.get(f"http://127.0.0.1:{recorder_port}/metrics", timeout=5).text
            break
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    prefix = "beacon_recorder_stray_results_total{reason="
    return {line.split('"')[1]: float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix)}


def waiting(settings: Settings, job_id: str) -> int:
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute("SELECT count(*) FROM pending_results WHERE job_id = %s", (job_id,)).fetchone()[0]


def test_strays_are_dead_lettered_with_their_reason_and_the_real_result_lands(
    settings: Settings, pipeline: Services, recorder_port: int
) -> None:
    topics = settings.topics
    marker = uuid.uuid4().hex[:10]
    job_id = f"strays-{marker}"
    before = strays_counted(recorder_port)
    cell = forged(job_id, answer=f"{marker} wrong key")
    other_region = forged(
        job_id, answer=f"{marker} wrong producer", producer=RUNNER_EU.model_copy(update={"region": "us-east"})
    )
    on_jobs_topic = forged(job_id, answer=f"{marker} wrong topic")
    not_asked = forged(job_id, question="taiwan_status", answer=f"{marker} not asked")
    wrong_language = forged(job_id, language="zh", answer=f"{marker} wrong language")
    # All of them before the job: each names the job's one real cell (or a cell it does not have), and none
    # may keep the real result out.
    produce(
        settings,
        topics.executions_completed,
        [
            (b"some|other|key|", signed(cell, settings.keys_dir)),
            (other_region.key.encode(), signed(other_region, settings.keys_dir)),
            (not_asked.key.encode(), signed(not_asked, settings.keys_dir)),
            (wrong_language.key.encode(), signed(wrong_language, settings.keys_dir)),
        ],
    )
    produce(settings, topics.jobs_submitted, [(on_jobs_topic.key.encode(), signed(on_jobs_topic, settings.keys_dir))])
    submit(settings, job_id)
    assert wait_for_rows(settings, pipeline, job_id, 1) == 1

    found = wait_for_dead_letters(settings, topics.executions_completed, marker, 4, timeout=30)
    assert "Kafka key 'some|other|key|' is not the event's own key" in found[f"{marker} wrong key"]
    assert "of region 'eu-west' produced by 'runner' of region 'us-east'" in found[f"{marker} wrong producer"]
    assert "question 'taiwan_status' is not one of" in found[f"{marker} not asked"]
    assert "asked in 'zh', but job" in found[f"{marker} wrong language"]
    assert "region 'eu-west' in 'en'" in found[f"{marker} wrong language"]
    on_jobs = recorder_dead_letters(settings, topics.jobs_submitted, marker)
    assert (
        f"belongs on {topics.executions_completed}, not on {topics.jobs_submitted}" in on_jobs[f"{marker} wrong topic"]
    )

    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute(
            "SELECT question_id, language, answer, output->'producer'->>'instance' FROM executions WHERE job_id = %s",
            (job_id,),
        ).fetchall()
    assert len(rows) == 1
    question, language, answer, instance = rows[0]
    assert (question, language) == ("math_basic", "en")
    assert marker not in (answer or "") and instance != RUNNER_EU.instance  # the runner's own answer
    assert waiting(settings, job_id) == 0
    after = strays_counted(recorder_port)
    grew = {reason: after.get(reason, 0) - before.get(reason, 0) for reason in after}
    assert grew["key_mismatch"] >= 1 and grew["producer_region"] >= 1 and grew["wrong_topic"] >= 1
    assert grew["out_of_spec"] >= 2


def test_a_result_before_its_job_is_recorded_once_the_job_arrives(settings: Settings, pipeline: Services) -> None:
    marker = uuid.uuid4().hex[:10]
    job_id = f"early-{marker}"
    early = forged(job_id, answer=f"{marker} came first")
    produce(settings, settings.topics.executions_completed, [(early.key.encode(), signed(early, settings.keys_dir))])
    deadline = time.monotonic() + 20
    while waiting(settings, job_id) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert waiting(settings, job_id) == 1 and count_rows(settings, job_id) == 0  # held, not recorded

    submit(settings, job_id)  # the runner then answers the same cell: the earlier result stays the first
    assert wait_for_rows(settings, pipeline, job_id, 1) == 1
    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute("SELECT event_id, answer FROM executions WHERE job_id = %s", (job_id,)).fetchall()
    assert rows == [(early.event_id, f"{marker} came first")]
    assert waiting(settings, job_id) == 0
    status = json.loads(beacon(settings, "status", job_id, "--json").stdout)
    assert status["recorded"] == 1 and status["status"] == "completed"


def test_a_result_whose_job_never_arrives_is_dead_lettered_after_the_stated_wait(
    settings: Settings, pipeline: Services, recorder_port: int
) -> None:
    marker = uuid.uuid4().hex[:10]
    job_id = f"never-{marker}"
    before = strays_counted(recorder_port).get("job_never_arrived", 0)
    orphan = forged(job_id, answer=f"{marker} orphan")
    produce(settings, settings.topics.executions_completed, [(orphan.key.encode(), signed(orphan, settings.keys_dir))])
    began = time.monotonic()
    # Held for the stated wait, then dead-lettered by the next sweep (every 5 s).
    found = wait_for_dead_letters(
        settings, settings.topics.executions_completed, marker, 1, timeout=ORPHAN_WAIT_SECONDS + 30
    )
    waited = time.monotonic() - began
    assert f"job {job_id!r} never arrived" in found[f"{marker} orphan"]
    assert f"within {ORPHAN_WAIT_SECONDS} s" in found[f"{marker} orphan"]
    assert waited >= ORPHAN_WAIT_SECONDS - 1  # not before the wait
    assert waiting(settings, job_id) == 0 and count_rows(settings, job_id) == 0
    assert strays_counted(recorder_port)["job_never_arrived"] >= before + 1
