"""The runner's two loops driven through their seam (bootstrap.py hands them their clients): fakes of the
Kafka clients, the simulated model. What each sends, in which transaction, and which offsets it commits.
The same loops on a real broker, killed mid-job, are tests/faults."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from beacon.infra.catalogues import DEFAULT
from beacon.providers import Endpoints
from beacon.providers.routing import Routing
from beacon.runner import expand
from beacon.runner.expander import ExpandedJobs, Expander
from beacon.runner.submitted import SubmittedJobs
from beacon.runner.worker import Worker
from beacon.schemas.events import ExecutionCompleted, JobExpanded, JobSubmitted, ProducerInfo, encode, parse_event
from beacon.schemas.topics import Topics, dead_letter_topic
from beacon.submitter.decide import job_submitted, parse_spec
from tests.fakes import FakeConsumer, FakeProducer, FakeReader, Stop, record
from tests.signed import service_keys, signed, trust

NAMES = Topics("unit")
REGION = "eu-west"
INFO = ProducerInfo(service="runner", region=REGION, instance="test")


def a_job(job_id: str = "j1") -> JobSubmitted:
    spec = parse_spec(
        f'{{"job_id": "{job_id}", "questions": ["math_basic", "taiwan_status"], "models": ["mistral-7b"],'
        ' "regions": ["us-east", "eu-west"]}'.encode(),
        DEFAULT,
    )
    producer = ProducerInfo(service="submitter", instance="test")
    return job_submitted(
        spec, DEFAULT, now=datetime(2026, 1, 1, tzinfo=UTC), default_deadline_seconds=60, producer=producer
    )


def submitted_jobs(*jobs: JobSubmitted) -> SubmittedJobs:
    """What the worker holds its cells to, read from a fake jobs.submitted, at the jobs' own time."""
    records = [record(NAMES.jobs_submitted, i, signed(j)) for i, j in enumerate(jobs)]
    return SubmittedJobs(FakeReader(records), REGION, trust(), clock=lambda: datetime(2026, 1, 1, tzinfo=UTC))


def a_worker(consumer: FakeConsumer, producer: FakeProducer) -> Worker:
    """eu-west's worker on fakes, holding its cells to a_job() as read from a fake jobs.submitted."""
    return Worker(
        region=REGION,
        names=NAMES,
        group="unit.runner.eu-west",
        window_size=8,
        info=INFO,
        consumer=consumer,
        producer=producer,
        endpoints=Endpoints(Routing.simulated(), REGION, REGION),
        jobs=submitted_jobs(a_job()),
        keys=service_keys("runner", REGION),
    )


def an_expander(consumer: FakeConsumer, producer: FakeProducer, already: list | None = None) -> Expander:
    return Expander(
        region=REGION,
        routing=Routing.simulated(),
        names=NAMES,
        group="unit.expander.eu-west",
        info=INFO,
        consumer=consumer,
        producer=producer,
        expanded=ExpandedJobs(FakeReader(already or []), trust()),
        keys=service_keys("runner", REGION),
    )


def test_the_expander_emits_cells_and_the_expansion_with_the_offsets_in_one_transaction() -> None:
    j = a_job()
    jobs = NAMES.jobs_submitted
    consumer = FakeConsumer([[record(jobs, 0, signed(j)), record(jobs, 1, b"{not json"), record(jobs, 2, signed(j))]])
    producer = FakeProducer()
    expander = an_expander(consumer, producer)
    with pytest.raises(Stop):
        asyncio.run(expander.run())
    (txn,) = producer.committed
    assert all(trust().refusal(e[2]) is None for e in txn if e[0] in (NAMES.work(REGION), NAMES.expanded(REGION)))
    keys = [(e[0], e[1]) for e in txn if e[0] != "offsets"]
    cells = [c.key.encode() for c in expand.cells(j, REGION, INFO)]
    assert len(cells) == 2
    assert keys == [
        *((NAMES.work(REGION), key) for key in cells),
        (NAMES.expanded(REGION), b"j1"),
        (dead_letter_topic(jobs), None),  # the poison, parked inside the same transaction
    ]  # and the second copy of j1 in the batch adds nothing
    assert txn[-1][0] == "offsets" and list(txn[-1][1].values()) == [3] and txn[-1][2] == "unit.expander.eu-west"
    assert expander.expanded.known == {"j1": j.spec_sha256}
    assert consumer.topics == [jobs] and consumer.stopped and producer.stopped


def test_a_job_this_region_expanded_before_emits_nothing_but_its_offset() -> None:
    j = a_job()
    done = JobExpanded(producer=INFO, job_id="j1", region=REGION, spec_sha256=j.spec_sha256, cells=2)
    already = [record(NAMES.expanded(REGION), 0, signed(done), key=b"j1")]
    producer = FakeProducer()
    with pytest.raises(Stop):
        asyncio.run(an_expander(FakeConsumer([[record(NAMES.jobs_submitted, 7, signed(j))]]), producer, already).run())
    (txn,) = producer.committed
    assert [e[0] for e in txn] == ["offsets"] and list(txn[0][1].values()) == [8]


def test_an_aborted_transaction_leaves_the_job_to_do_again() -> None:
    producer = FakeProducer(fail_on=lambda topic, value: topic == NAMES.expanded(REGION))
    expander = an_expander(FakeConsumer([[record(NAMES.jobs_submitted, 0, signed(a_job()))]]), producer)
    with pytest.raises(ConnectionError):
        asyncio.run(expander.run())
    assert producer.committed == [] and len(producer.aborted) == 1
    assert expander.expanded.known == {}  # not a fact: the job is consumed again after the restart


def test_the_worker_runs_each_cell_once_emits_its_result_and_commits_after_the_ack() -> None:
    cells = expand.cells(a_job(), REGION, INFO)
    work = NAMES.work(REGION)
    records = [record(work, i, signed(c), key=c.key.encode()) for i, c in enumerate(cells)]
    records.insert(1, record(work, len(cells), b"\xff garbage"))
    for i, r in enumerate(records):
        records[i] = record(work, i, r.value, key=r.key)
    producer = FakeProducer()
    consumer = FakeConsumer(
        [records], done=lambda: bool(consumer.committed) and max(consumer.committed[-1].values()) == 3
    )
    worker = a_worker(consumer, producer)
    with pytest.raises(Stop):
        asyncio.run(worker.run())
    results = [parse_event(value) for topic, _, value, _ in producer.sent if topic == NAMES.executions_completed]
    assert all(isinstance(r, ExecutionCompleted) for r in results)
    assert sorted(r.key for r in results) == sorted(c.key for c in cells)  # each cell exactly once
    assert all(r.producer.service == "runner" and r.region == REGION for r in results)
    sent = [value for topic, _, value, _ in producer.sent if topic == NAMES.executions_completed]
    assert [trust().refusal(value) for value in sent] == [None] * len(cells)  # signed by eu-west's runner
    dead = [entry for entry in producer.sent if entry[0] == dead_letter_topic(work)]
    assert len(dead) == 1 and dict(dead[0][3])["beacon.source.offset"] == b"1"
    assert list(consumer.committed[-1].values()) == [3]  # all three records, only once every result was sent


def test_the_worker_dead_letters_cells_its_job_does_not_ask_for_and_runs_the_rest() -> None:
    cells = expand.cells(a_job(), REGION, INFO)
    work = NAMES.work(REGION)
    greedy = cells[0].model_copy(update={"params": cells[0].params.model_copy(update={"max_tokens": 1_000_000})})
    elsewhere = expand.cells(a_job(), "us-east", ProducerInfo(service="runner", region="us-east", instance="x"))[0]
    stranger = expand.cells(a_job("never-submitted"), REGION, INFO)[0]
    sent = [*cells, greedy, elsewhere, stranger]
    records = [record(work, i, signed(c), key=c.key.encode()) for i, c in enumerate(sent)]
    producer = FakeProducer()
    consumer = FakeConsumer(
        [records], done=lambda: bool(consumer.committed) and max(consumer.committed[-1].values()) == len(sent)
    )
    worker = a_worker(consumer, producer)
    with pytest.raises(Stop):
        asyncio.run(worker.run())
    results = [parse_event(value) for topic, _, value, _ in producer.sent if topic == NAMES.executions_completed]
    assert sorted(r.key for r in results) == sorted(c.key for c in cells)  # the job's own cells, once each
    errors = [dict(h)["beacon.error"].decode() for topic, _, _, h in producer.sent if topic == dead_letter_topic(work)]
    assert len(errors) == 3
    assert errors[0] == "refused (over the limits): max_tokens 1000000 is over the 32768 any job may ask"
    assert errors[1].startswith("refused (other region): a cell of region 'us-east' on the work topic of region")
    assert errors[2].startswith("refused (unknown job): job 'never-submitted' is not on jobs.submitted")


def test_the_expander_dead_letters_a_job_the_submitter_did_not_sign_and_schedules_no_cell() -> None:
    jobs = NAMES.jobs_submitted
    unsigned = record(jobs, 0, encode(a_job()))
    by_a_runner = record(jobs, 1, encode(service_keys("runner", REGION).signer.sign(a_job("j2"))))
    producer = FakeProducer()
    expander = an_expander(FakeConsumer([[unsigned, by_a_runner]]), producer)
    with pytest.raises(Stop):
        asyncio.run(expander.run())
    (txn,) = producer.committed
    assert [e[0] for e in txn] == [dead_letter_topic(jobs), dead_letter_topic(jobs), "offsets"]
    errors = [dict(e[3])["beacon.error"].decode() for e in txn[:2]]
    assert errors[0] == "refused (unsigned): JobSubmitted carries no signature"
    assert errors[1].startswith("refused (wrong_role): signed by ed25519:")
    assert errors[1].endswith("a runner of eu-west key; this needs a submitter key")
    assert expander.expanded.known == {}


def test_the_worker_dead_letters_cells_not_signed_by_its_regions_runner() -> None:
    work = NAMES.work(REGION)
    first, second = expand.cells(a_job(), REGION, INFO)
    forged = service_keys("runner", "us-east").signer.sign(second)  # another region's key, this region's cell
    records = [
        record(work, 0, encode(first), key=first.key.encode()),
        record(work, 1, encode(forged), key=second.key.encode()),
    ]
    producer = FakeProducer()
    consumer = FakeConsumer(
        [records], done=lambda: bool(consumer.committed) and max(consumer.committed[-1].values()) == 2
    )
    with pytest.raises(Stop):
        asyncio.run(a_worker(consumer, producer).run())
    assert [topic for topic, *_ in producer.sent] == [dead_letter_topic(work)] * 2  # no model was called
    errors = [dict(h)["beacon.error"].decode() for _, _, _, h in producer.sent]
    assert errors[0] == "refused (unsigned): CellScheduled carries no signature"
    assert errors[1].startswith("refused (wrong_region): signed by ed25519:")
    assert errors[1].endswith("a runner of us-east key; this is 'eu-west''s")
