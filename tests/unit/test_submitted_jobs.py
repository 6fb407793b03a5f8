"""SubmittedJobs, what the worker holds cells to: this region's jobs, the first record of each job_id,
kept until an hour past their deadline (and not taken back by a later record of the same id), and only
jobs the submitter signed."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from beacon.runner.submitted import GRACE, SubmittedJobs
from beacon.schemas.events import JobSubmitted, encode
from tests.fakes import FakeReader, record
from tests.signed import service_keys, sign, signed, trust
from tests.unit.test_runner_loops import NAMES, REGION, a_job

JOB = sign(a_job())  # as the submitter sends it: encode(JOB) is its signed bytes


def read(*values: bytes, now: datetime) -> SubmittedJobs:
    reader = FakeReader([record(NAMES.jobs_submitted, i, v) for i, v in enumerate(values)])
    jobs = SubmittedJobs(reader, REGION, trust(), lambda: now)
    asyncio.run(jobs.start())
    return jobs


def test_the_first_record_of_a_job_is_the_job_and_poison_is_passed_over() -> None:
    other = JOB.model_copy(update={"spec_sha256": "f" * 64})
    jobs = read(b"{not json", encode(JOB), signed(other), now=JOB.deadline)
    assert asyncio.run(jobs.get("j1")) == JOB
    assert asyncio.run(jobs.get("nope")) is None


def test_a_job_the_submitter_did_not_sign_is_no_job() -> None:
    unsigned = a_job()
    by_a_runner = service_keys("runner", REGION).signer.sign(a_job())
    edited = JOB.model_copy(update={"spec_sha256": "f" * 64})  # signed, then changed
    for value in (encode(unsigned), encode(by_a_runner), encode(edited)):
        assert asyncio.run(read(value, now=JOB.deadline).get("j1")) is None
    jobs = read(encode(unsigned), encode(JOB), now=JOB.deadline)  # a forged first record takes nothing
    assert asyncio.run(jobs.get("j1")) == JOB


def test_jobs_of_other_regions_are_not_kept() -> None:
    elsewhere = JOB.model_copy(update={"regions": [r for r in JOB.regions if r.id != REGION]})
    assert asyncio.run(read(signed(elsewhere), now=JOB.deadline).get("j1")) is None


def test_a_job_is_dropped_an_hour_after_its_deadline_and_stays_dropped() -> None:
    assert asyncio.run(read(encode(JOB), now=JOB.deadline + GRACE).get("j1")) == JOB
    late = JOB.deadline + GRACE + timedelta(seconds=1)
    jobs = read(encode(JOB), now=late)
    assert asyncio.run(jobs.get("j1")) is None
    again: JobSubmitted = JOB.model_copy(update={"deadline": late + timedelta(days=1)})
    jobs.reader.records.append(record(NAMES.jobs_submitted, 1, signed(again)))
    assert asyncio.run(jobs.get("j1")) is None  # a later record of an ended job is no new job
