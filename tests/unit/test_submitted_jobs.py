"""SubmittedJobs, what the worker holds cells to: this region's jobs, the first record of each job_id,
kept until an hour past their deadline (and not taken back by a later record of the same id)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from beacon.runner.submitted import GRACE, SubmittedJobs
from beacon.schemas.events import JobSubmitted, encode
from tests.fakes import FakeReader, record
from tests.unit.test_runner_loops import NAMES, REGION, a_job

JOB = a_job()


def read(*values: bytes, now: datetime) -> SubmittedJobs:
    reader = FakeReader([record(NAMES.jobs_submitted, i, v) for i, v in enumerate(values)])
    jobs = SubmittedJobs(reader, REGION, lambda: now)
    asyncio.run(jobs.start())
    return jobs


def test_the_first_record_of_a_job_is_the_job_and_poison_is_passed_over() -> None:
    other = JOB.model_copy(update={"spec_sha256": "f" * 64})
    jobs = read(b"{not json", encode(JOB), encode(other), now=JOB.deadline)
    assert asyncio.run(jobs.get("j1")) == JOB
    assert asyncio.run(jobs.get("nope")) is None


def test_jobs_of_other_regions_are_not_kept() -> None:
    elsewhere = JOB.model_copy(update={"regions": [r for r in JOB.regions if r.id != REGION]})
    assert asyncio.run(read(encode(elsewhere), now=JOB.deadline).get("j1")) is None


def test_a_job_is_dropped_an_hour_after_its_deadline_and_stays_dropped() -> None:
    assert asyncio.run(read(encode(JOB), now=JOB.deadline + GRACE).get("j1")) == JOB
    late = JOB.deadline + GRACE + timedelta(seconds=1)
    jobs = read(encode(JOB), now=late)
    assert asyncio.run(jobs.get("j1")) is None
    again: JobSubmitted = JOB.model_copy(update={"deadline": late + timedelta(days=1)})
    jobs.reader.records.append(record(NAMES.jobs_submitted, 1, encode(again)))
    assert asyncio.run(jobs.get("j1")) is None  # a later record of an ended job is no new job
