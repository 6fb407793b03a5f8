"""The submitter's composition root: the one place its Kafka producer and database connections are made from
the settings, for the HTTP service and for `beacon submit` alike."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from psycopg import AsyncConnection

from beacon.infra import db, kafka, keys
from beacon.infra.settings import Settings
from beacon.schemas.commands import JobSpec
from beacon.submitter.publish import Publisher, Submitted, submit_with

# Connections to the registry: a POST borrows one for two statements, so a few serve many clients; a POST
# that finds none free within POOL_WAIT_SECONDS is answered 503 (the pool's PoolTimeout is an
# OperationalError) rather than queued for ever.
POOL_MAX_SIZE = 4
POOL_WAIT_SECONDS = 10.0
APPLICATION_NAME = "beacon-submitter"  # what pg_stat_activity shows for the submitter's connections


class Pool:
    """The HTTP service's connections: a pool its requests borrow from."""

    def __init__(self, settings: Settings) -> None:
        from psycopg_pool import AsyncConnectionPool  # imported here: `beacon submit` opens no pool

        self.pool = AsyncConnectionPool(
            settings.database_url,
            min_size=1,
            max_size=POOL_MAX_SIZE,
            timeout=POOL_WAIT_SECONDS,
            kwargs={"application_name": APPLICATION_NAME},
            open=False,
        )

    async def open(self) -> None:
        await self.pool.open(wait=True, timeout=self.pool.timeout)

    def connection(self) -> AbstractAsyncContextManager[AsyncConnection[Any]]:
        return self.pool.connection()

    async def close(self) -> None:
        await self.pool.close()


class OneConnection:
    """`beacon submit`'s connection: the one its one transaction needs, made directly. A pool would add its
    workers, and a refused password or a stopped server would cost its whole wait (POOL_WAIT_SECONDS) where a
    direct connection fails at once, saying why (db.connect_async)."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.database_url
        self.conn: AsyncConnection[Any] | None = None

    async def open(self) -> None:
        self.conn = await db.connect_async(self.url, application_name=APPLICATION_NAME)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        assert self.conn is not None, "open() first"
        async with self.conn.transaction():  # committed when the block ends, as a pool's connection() is
            yield self.conn

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()


def publisher(
    settings: Settings,
    kafka_wait_s: float = 10.0,
    on_wait: Callable[[str, float], None] | None = None,
    one_job: bool = False,
) -> Publisher:
    """The HTTP service's publisher, or with `one_job` that of `beacon submit`: one connection instead of a
    pool, no checks at start (publish.py), and no linger before the one send (nothing will join its batch)."""
    return Publisher(
        settings,
        new_producer=lambda: kafka.producer(settings, linger_ms=0) if one_job else kafka.producer(settings),
        new_connections=lambda: OneConnection(settings) if one_job else Pool(settings),
        new_signer=lambda: keys.signer(settings.keys_dir, "submitter"),
        kafka_wait_s=kafka_wait_s,
        on_wait=on_wait,
        checks_at_start=not one_job,
    )


async def submit_once(
    settings: Settings, spec: JobSpec, on_wait: Callable[[str, float], None] | None = None
) -> Submitted:
    """`beacon submit`: one job, waiting out an unavailable Kafka for BEACON_KAFKA_WAIT_SECONDS."""
    return await submit_with(
        publisher(settings, kafka_wait_s=settings.kafka_wait_seconds, on_wait=on_wait, one_job=True), spec
    )
