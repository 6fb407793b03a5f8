"""`beacon runner --region R`: the region's expander and worker, side by side in one process.

jobs.submitted ──expander.py──▶ work.<region> (+ jobs.expanded.<region>)   one Kafka transaction
work.<region>  ──worker.py────▶ model call ──▶ executions.completed        commit after the ack

The decisions are pure (expand.py; the classifier and receipts in beacon.domain); the clients are made in
bootstrap.py.
"""

from __future__ import annotations

import asyncio
import os
import re

import structlog

from beacon.infra import kafka, keys, logs, redact, topics
from beacon.infra.settings import Settings
from beacon.runner import bootstrap
from beacon.schemas.ids import ID_DESCRIPTION, ID_PATTERN

log = logs.get("beacon.runner")


async def run(settings: Settings, region: str) -> None:
    if not re.fullmatch(ID_PATTERN, region):  # it names topics and groups; which regions exist, jobs say
        raise ValueError(f"--region {region!r} is not a region id ({ID_DESCRIPTION})")
    # A bad routing file stops the runner before it consumes anything; so does a missing or malformed API key.
    routing = bootstrap.load_routing(settings)
    api_keys = routing.api_keys(region, os.environ)
    for key in api_keys.values():
        redact.remember(key)
    structlog.contextvars.bind_contextvars(region=region)
    own = keys.of_service(settings.keys_dir, "runner", region)  # it signs as this region's runner
    await kafka.retrying("topics", lambda: topics.ensure(settings, regions=[region]))
    # A transient Kafka failure restarts the half it hit, fresh, in this process (kafka.supervised); a
    # fatal one ends the process, and its uncommitted work is delivered again when it is started again.
    async with asyncio.TaskGroup() as group:
        group.create_task(
            kafka.supervised("expander", lambda: bootstrap.expander(settings, region, routing, own).run())
        )
        group.create_task(
            kafka.supervised("worker", lambda: bootstrap.worker(settings, region, routing, api_keys, own).run())
        )
