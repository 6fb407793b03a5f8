"""`beacon runner --region R`: the region's expander and worker, side by side in one process.

jobs.submitted ──expander.py──▶ work.<region> (+ jobs.expanded.<region>)   one Kafka transaction
work.<region>  ──worker.py────▶ model call ──▶ executions.completed        commit after the ack
"""

from __future__ import annotations

import asyncio
import os
import re

import structlog

from beacon.infra import kafka, logs, redact, topics
from beacon.infra.settings import Settings
from beacon.providers.routing import Routing
from beacon.runner.expander import Expander
from beacon.runner.worker import Worker
from beacon.schemas.ids import ID_DESCRIPTION, ID_PATTERN

log = logs.get("beacon.runner")


def load_routing(settings: Settings) -> Routing:
    if settings.routing_file is None:
        return Routing.simulated(settings.simulated_latency_ms, settings.runner_concurrency)
    return Routing.from_file(settings.routing_file)


async def run(settings: Settings, region: str) -> None:
    if not re.fullmatch(ID_PATTERN, region):  # it names topics and groups; which regions exist, jobs say
        raise ValueError(f"--region {region!r} is not a region id ({ID_DESCRIPTION})")
    routing = load_routing(settings)  # a bad routing file stops the runner before it consumes anything
    api_keys = routing.api_keys(region, os.environ)  # so does a missing or malformed API key
    for key in api_keys.values():
        redact.remember(key)
    structlog.contextvars.bind_contextvars(region=region)
    await kafka.retrying("topics", lambda: topics.ensure(settings, regions=[region]))
    # A transient Kafka failure restarts the half it hit, fresh, in this process (kafka.supervised); a
    # fatal one ends the process, and its uncommitted work is delivered again when it is started again.
    async with asyncio.TaskGroup() as group:
        group.create_task(kafka.supervised("expander", lambda: Expander(settings, region, routing).run()))
        group.create_task(kafka.supervised("worker", lambda: Worker(settings, region, routing, api_keys).run()))
