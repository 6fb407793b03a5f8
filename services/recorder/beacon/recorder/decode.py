"""Records → rows for a whole batch, as the recorder and a replay both do it: the signatures verified in the
verifier processes (beacon.infra.verifiers) while the events are parsed here, and the event loop turned
between slices, so that the previous batch's write (its COPY, INSERT and COMMIT: the database's work, on the
other core) goes on meanwhile instead of waiting for this batch's Python to finish."""

from __future__ import annotations

import asyncio

from aiokafka.structs import ConsumerRecord

from beacon.infra import kafka, keys, verifiers
from beacon.infra.keys import TrustFile
from beacon.recorder import project
from beacon.schemas.topics import Topics

# Records decoded between two turns of the event loop (a millisecond or two): each of the write's round trips
# to PostgreSQL waits for a turn; 16 recorded 5–15 % faster than 128 (bench.run --only recorder, three runs).
SLICE = 16


async def rows_of_batch(
    records: list[ConsumerRecord], names: Topics, trust: TrustFile, pool: verifiers.Pool
) -> project.Rows:
    """project.rows_of over `records`, poison included, in their order."""
    checked = keys.Checked(trust, kafka.MAX_EVENT_BYTES, pool)
    for i in range(0, len(records), SLICE):  # every signature on its way first, then the parsing
        checked.add(r.value or b"" for r in records[i : i + SLICE])
        await asyncio.sleep(0)
    checked.flush()
    out = project.Rows()
    for i in range(0, len(records), SLICE):
        await checked.ready(i + SLICE)
        out.extend(project.rows_of(records[i : i + SLICE], names, checked))
        await asyncio.sleep(0)
    return out
