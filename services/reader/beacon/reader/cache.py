"""Response bodies built once per version of what they show (versions.py) and kept as the bytes sent, in
memory, bounded; served by conditional.py.

An entry is found by its request (`key`: the endpoint and its parameters) and is used only while what it was
built from (`depends`: the job versions read in the same database snapshot as its content, and anything else
the body shows) equals what the request found now. Each body's ETag is a hash of its bytes: strong by
construction (one tag, one sequence of bytes) and the same in every reader process and after a restart. A
large body is kept gzipped too (a 10,000-cell matrix: 1.2 MB, 32 kB gzipped), compressed once, not per request.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter

MAX_BYTES = 128 * 1024 * 1024  # every body kept, together
MAX_ENTRIES = 256
# A larger body is served but not kept (it would push out most others). The largest job (MAX_CELLS_PER_JOB,
# 100,000 cells) has a matrix of about 12 MB: kept, or each request for it, a 304 included, builds it again
# (measured: 390 ms a request instead of 2 ms).
MAX_ENTRY_BYTES = 16 * 1024 * 1024
GZIP_FROM_BYTES = 1024  # below this, gzip saves too little to be worth a second body
GZIP_LEVEL = 6  # zlib's default: a 1.2 MB matrix in 18 ms, once per version
_AS_DECLARED = TypeAdapter(dict[str, Any])  # how FastAPI serializes what the routes return


@dataclass(frozen=True)
class Body:
    data: bytes
    etag: str  # quoted, as sent

    @classmethod
    def of(cls, data: bytes) -> Body:
        return cls(data, '"' + hashlib.blake2b(data, digest_size=16).hexdigest() + '"')


@dataclass(frozen=True)
class Entry:
    depends: Hashable
    identity: Body
    gzip: Body | None  # None for a small body

    @property
    def size(self) -> int:
        return len(self.identity.data) + (len(self.gzip.data) if self.gzip else 0)


def render(content: dict[str, Any]) -> bytes:
    """The bytes FastAPI sends when a route declared `-> dict[str, Any]` returns `content`: the same Pydantic
    serializer, called the same way (tests/unit/test_read_cache.py holds them side by side)."""
    return _AS_DECLARED.dump_json(_AS_DECLARED.validate_python(content), by_alias=True)


def entry_of(depends: Hashable, content: dict[str, Any]) -> Entry:
    """CPU-bound for a large body (best on a worker thread: zlib lets go of the GIL)."""
    data = render(content)
    # mtime=0: the same body always gzips to the same bytes, so its ETag is the same after a rebuild.
    packed = Body.of(gzip.compress(data, GZIP_LEVEL, mtime=0)) if len(data) >= GZIP_FROM_BYTES else None
    return Entry(depends, Body.of(data), packed)


class Representations:
    """The bodies lately built, at most one per key (its latest version) and MAX_BYTES in all, the least
    recently used out first; and the builds under way, so that requests arriving together for a body not
    built yet wait for one build rather than each doing its own."""

    def __init__(
        self, max_bytes: int = MAX_BYTES, max_entries: int = MAX_ENTRIES, max_entry_bytes: int = MAX_ENTRY_BYTES
    ) -> None:
        self.max_bytes, self.max_entries, self.max_entry_bytes = max_bytes, max_entries, max_entry_bytes
        self._entries: OrderedDict[Hashable, Entry] = OrderedDict()
        self._bytes = 0
        self._building: dict[tuple[Hashable, Hashable], asyncio.Future[Entry]] = {}

    @property
    def size(self) -> tuple[int, int]:
        """(entries, bytes) kept."""
        return len(self._entries), self._bytes

    def get(self, key: Hashable, depends: Hashable) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None or entry.depends != depends:
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: Hashable, entry: Entry) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old.size
        if entry.size > self.max_entry_bytes:
            return
        self._entries[key] = entry
        self._bytes += entry.size
        while self._bytes > self.max_bytes or len(self._entries) > self.max_entries:
            _, gone = self._entries.popitem(last=False)
            self._bytes -= gone.size

    async def get_or_build(self, key: Hashable, depends: Hashable, build: Callable[[], Awaitable[Entry]]) -> Entry:
        """The entry of `key` built from `depends`, or the one `build` makes and keeps. `build` reads its own
        snapshot, which may be newer than `depends`: the entry is kept under what it was built from, so a
        body is only ever paired with its own versions."""
        entry = self.get(key, depends)
        if entry is not None:
            return entry
        flight = (key, depends)
        task = self._building.get(flight)
        if task is None:
            task = asyncio.ensure_future(self._build(key, build))
            self._building[flight] = task
            task.add_done_callback(lambda _: self._building.pop(flight, None))
        # Shielded: a client that goes away cancels its own wait, not the build the others wait for.
        return await asyncio.shield(task)

    async def _build(self, key: Hashable, build: Callable[[], Awaitable[Entry]]) -> Entry:
        entry = await build()
        self.put(key, entry)
        return entry
