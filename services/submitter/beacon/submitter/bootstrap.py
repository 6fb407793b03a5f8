"""The submitter's composition root: the one place its Kafka producer and database pool are made from the
settings, for the HTTP service and for `beacon submit` alike."""

from __future__ import annotations

from collections.abc import Callable

from psycopg_pool import AsyncConnectionPool

from beacon.infra import kafka, keys
from beacon.infra.settings import Settings
from beacon.schemas.commands import JobSpec
from beacon.submitter.publish import Publisher, Submitted, submit_with

# Connections to the registry: a POST borrows one for two statements, so a few serve many clients; a POST
# that finds none free within POOL_WAIT_SECONDS is answered 503 (the pool's PoolTimeout is an
# OperationalError) rather than queued for ever.
POOL_MAX_SIZE = 4
POOL_WAIT_SECONDS = 10.0


def publisher(
    settings: Settings, kafka_wait_s: float = 10.0, on_wait: Callable[[str, float], None] | None = None
) -> Publisher:
    def pool() -> AsyncConnectionPool:
        return AsyncConnectionPool(
            settings.database_url,
            min_size=1,
            max_size=POOL_MAX_SIZE,
            timeout=POOL_WAIT_SECONDS,
            kwargs={"application_name": "beacon-submitter"},
            open=False,
        )

    return Publisher(
        settings,
        new_producer=lambda: kafka.producer(settings),
        new_pool=pool,
        new_signer=lambda: keys.signer(settings.keys_dir, "submitter"),
        kafka_wait_s=kafka_wait_s,
        on_wait=on_wait,
    )


async def submit_once(
    settings: Settings, spec: JobSpec, on_wait: Callable[[str, float], None] | None = None
) -> Submitted:
    """`beacon submit`: one job, waiting out an unavailable Kafka for BEACON_KAFKA_WAIT_SECONDS."""
    return await submit_with(publisher(settings, kafka_wait_s=settings.kafka_wait_seconds, on_wait=on_wait), spec)
