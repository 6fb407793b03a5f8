"""Records → rows for a whole batch, as the recorder and a replay both do it: the signatures verified on the
trust file's threads (libsodium frees the GIL) while the events are parsed here, and the event loop turned
between slices, so that the previous batch's write (its COPY, INSERT and COMMIT: the database's work, on the
other core) goes on meanwhile instead of waiting for this batch's Python to finish."""

from __future__ import annotations

import asyncio

from aiokafka.structs import ConsumerRecord

from beacon.infra import kafka
from beacon.infra.keys import TrustFile
from beacon.recorder import project
from beacon.schemas.topics import Topics

SLICE = 128  # records decoded between two turns of the event loop: a few milliseconds


async def rows_of_batch(records: list[ConsumerRecord], names: Topics, trust: TrustFile) -> project.Rows:
    """project.rows_of over `records`, poison included, in their order."""
    checked = trust.checked([r.value or b"" for r in records], max_bytes=kafka.MAX_EVENT_BYTES)
    out = project.Rows()
    for i in range(0, len(records), SLICE):
        out.extend(project.rows_of(records[i : i + SLICE], names, checked))
        await asyncio.sleep(0)
    return out
