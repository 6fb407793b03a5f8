"""The recorder's composition root: the one place its Kafka clients and database connections are made from
the settings. The loops (main.Recorder, deadlines.sweep) take them as factories, so a restart makes fresh
ones and a test can hand in fakes."""

from __future__ import annotations

from collections.abc import Awaitable

import psycopg

from beacon.infra import kafka, keys
from beacon.infra.settings import Settings
from beacon.recorder import deadlines, pending
from beacon.recorder.main import Clients, Recorder


def kafka_clients(settings: Settings) -> Clients:
    consumer = kafka.consumer(
        settings,
        group_id=settings.groups.recorder,
        max_poll_records=settings.recorder_batch_size,
        # A new region's expansion topic (its runner creates it) is found by the pattern within this.
        metadata_max_age_ms=10_000,
        **kafka.BULK_FETCH,
    )
    return Clients(consumer=consumer, producer=kafka.producer(settings))


def recorder(settings: Settings) -> Recorder:
    # Read now, so missing keys stop the recorder at start with what to do (keys.KeysError).
    trust = keys.TrustFile(settings.keys_dir)
    signer = keys.signer(settings.keys_dir, "recorder")  # the deadline clock signs its timeouts

    async def connect() -> psycopg.AsyncConnection:
        return await psycopg.AsyncConnection.connect(settings.database_url)

    async def connect_autocommit() -> psycopg.AsyncConnection:
        return await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True)

    def deadline_clock() -> Awaitable[None]:
        return deadlines.sweep(
            settings,
            new_producer=lambda: kafka.producer(settings),
            connect=connect_autocommit,
            signer=signer,
        )

    def pending_sweep() -> Awaitable[None]:
        return pending.sweep(settings, new_producer=lambda: kafka.producer(settings), connect=connect_autocommit)

    return Recorder(
        settings,
        kafka_clients=lambda: kafka_clients(settings),
        connect=connect,
        deadline_clock=deadline_clock,
        trust=trust,
        pending_sweep=pending_sweep,
    )
