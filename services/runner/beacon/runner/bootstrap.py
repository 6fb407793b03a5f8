"""The runner's composition root: the one place its Kafka clients and model endpoints are made from the
settings. The loops (expander.py, worker.py) only use what they are handed, so a test can hand them fakes;
each call makes fresh clients, which is what a restart after a transient Kafka failure needs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from beacon.infra import kafka, keys
from beacon.infra.settings import Settings
from beacon.providers import Endpoints
from beacon.providers.routing import Routing
from beacon.runner import submitted
from beacon.runner.expander import ExpandedJobs, Expander
from beacon.runner.submitted import SubmittedJobs
from beacon.runner.worker import Worker
from beacon.schemas.events import ProducerInfo


def load_routing(settings: Settings) -> Routing:
    if settings.routing_file is None:
        return Routing.simulated(settings.simulated_latency_ms, settings.runner_concurrency)
    return Routing.from_file(settings.routing_file)


def expander(settings: Settings, region: str, routing: Routing, own: keys.ServiceKeys) -> Expander:
    names, group = settings.topics, settings.groups.expander(region)
    info = ProducerInfo(service="runner", region=region, instance=kafka.instance_id(f"expander-{region}"))
    # A unique transactional id per process: a restarted expander never has to wait for the previous
    # one's transaction to time out. The price is no zombie fencing across instances; a stalled zombie
    # could at worst schedule cells twice, and the recorder's unique index keeps the rows exact.
    producer = kafka.producer(settings, transactional_id=f"{group}.{info.instance}")
    # No group: every instance reads it all. A short fetch wait: catching up must not idle on markers.
    reader = kafka.TopicReader(settings, [names.expanded(region)], fetch_max_wait_ms=10)
    return Expander(
        region=region,
        routing=routing,
        names=names,
        group=group,
        info=info,
        consumer=kafka.consumer(settings, group_id=group),
        producer=producer,
        expanded=ExpandedJobs(reader, own.trust),
        keys=own,
    )


def worker(
    settings: Settings, region: str, routing: Routing, api_keys: Mapping[str, str], own: keys.ServiceKeys
) -> Worker:
    group = settings.groups.runner(region)
    # fetch_max_wait_ms: cells are written in transactions, and a broker may hold a read_committed fetch
    # for its whole wait even once the commit marker lands; a short wait keeps cells moving.
    consumer = kafka.consumer(settings, group_id=group, max_poll_interval_ms=3_600_000, fetch_max_wait_ms=50)
    since = submitted.since(datetime.now(UTC))
    jobs_reader = kafka.TopicReader(settings, [settings.topics.jobs_submitted], since=since, fetch_max_wait_ms=10)
    return Worker(
        region=region,
        names=settings.topics,
        group=group,
        window_size=settings.runner_concurrency,
        info=ProducerInfo(service="runner", region=region, instance=kafka.instance_id(f"runner-{region}")),
        consumer=consumer,
        producer=kafka.producer(settings),
        # The runner needs no catalogue: a cell carries its region's display name for the simulated model.
        endpoints=Endpoints(routing, region, region, api_keys),
        # What each cell is held to: its job as the submitter wrote it (committed records only).
        jobs=SubmittedJobs(jobs_reader, region, own.trust),
        keys=own,
    )
