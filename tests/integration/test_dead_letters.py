"""A message that can never be processed goes to <topic>.dlq with its bytes and origin; the stream goes on."""

from __future__ import annotations

import json
import uuid

import pytest

from beacon.infra.settings import Settings
from beacon.schemas.topics import dead_letter_topic
from tests.harness import Services, wait_for_rows
from tests.kafka_tools import produce, read_all
from tests.support import beacon

pytestmark = pytest.mark.pipeline


def test_poison_is_dead_lettered_and_the_job_behind_it_completes(settings: Settings, pipeline: Services) -> None:
    topics = settings.topics
    marker = uuid.uuid4().hex
    poison = {
        "not-json": f"{{{marker} oops".encode(),
        "wrong-schema": json.dumps({"event_type": "ExecutionCompleted", "marker": marker}).encode(),
        "unknown-type": json.dumps({"event_type": "JobCancelled", "marker": marker}).encode(),
    }
    for topic in (topics.jobs_submitted, topics.executions_completed):
        produce(settings, topic, [(b"poison", value) for value in poison.values()])

    # A job submitted after the poison still runs end to end: nobody is stuck on a bad message.
    job_id = f"after-poison-{marker[:8]}"
    spec = {"job_id": job_id, "questions": ["math_basic"], "models": ["mistral-7b"], "regions": ["eu-west"]}
    assert beacon(settings, "submit", "-", stdin=json.dumps(spec).encode()).returncode == 0
    assert wait_for_rows(settings, pipeline, job_id, 1) == 1

    for topic in (topics.jobs_submitted, topics.executions_completed):
        parked = [r for r in read_all(settings, dead_letter_topic(topic)) if marker.encode() in r.value]
        # On the jobs topic both the recorder and each of the three runners park their own copy.
        consumers_per_topic = 4 if topic == topics.jobs_submitted else 1
        assert len(parked) == len(poison) * consumers_per_topic
        assert {r.value for r in parked} == set(poison.values())  # the original bytes
        for record in parked:
            headers = dict(record.headers)
            assert headers["beacon.source.topic"].decode() == topic
            assert int(headers["beacon.source.offset"]) >= 0
            assert headers["beacon.error"]
            assert headers["beacon.consumer"].decode().startswith(settings.topic_namespace)
