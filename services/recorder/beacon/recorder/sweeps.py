"""The recorder's periodic sweeps (the deadline clock, deadlines.py; the results waiting for their job,
pending.py): one pass every few seconds on a connection and a producer of their own, each made on first
use and made again after an outage. The database or the broker being away skips a pass, never ends the
sweep; any other error does (the recorder then stops, all of it)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from beacon.infra import kafka, logs

log = logs.get("beacon.recorder.sweeps")


class Clients:
    def __init__(
        self,
        connect: Callable[[], Awaitable[psycopg.AsyncConnection]],
        new_producer: Callable[[], Any],
        prepare: Callable[[psycopg.AsyncConnection], Awaitable[None]] | None = None,
    ) -> None:
        self._connect, self._new_producer, self._prepare = connect, new_producer, prepare
        self._conn: psycopg.AsyncConnection | None = None
        self._producer: Any = None

    async def conn(self) -> psycopg.AsyncConnection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = await self._connect()
            if self._prepare is not None:
                await self._prepare(self._conn)
        return self._conn

    async def producer(self) -> Any:
        if self._producer is None:
            producer = self._new_producer()
            await producer.start()
            self._producer = producer
        return self._producer

    async def broker_lost(self) -> None:
        if self._producer is not None:  # a fresh producer next time
            await self._producer.stop()
            self._producer = None

    async def close(self) -> None:
        await self.broker_lost()
        if self._conn is not None:
            await self._conn.close()


async def every(seconds: float, name: str, clients: Clients, one_pass: Callable[[Clients], Awaitable[None]]) -> None:
    try:
        while True:
            await asyncio.sleep(seconds)
            try:
                await one_pass(clients)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                log.warning(f"{name}_skipped", error=str(exc).strip()[:300])  # a broken connection is remade
            except Exception as exc:
                if not kafka.is_transient(exc):
                    raise
                log.warning(f"{name}_skipped", error=kafka.describe(exc))
                await clients.broker_lost()
    finally:
        await clients.close()
