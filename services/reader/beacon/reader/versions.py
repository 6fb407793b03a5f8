"""A job's version: a few numbers, read with one statement, that change whenever anything the reader shows of
the job changes, so a response built once per version can be served again for as long as the version is the
same (cache.py).

Why these numbers, from what the writers may do (beacon.infra.db: PRIVILEGES, ROW_POLICIES):

- `jobs` and `job_regions` rows are only ever inserted (one per job, one per job and region): the count of
  the job's `job_regions` rows changes whenever one is added.
- An `executions` row is inserted (one per cell, first result wins) or, only if it is a `timeout`, replaced
  by the cell's late real result, never into another timeout (recorder store.py `_insert`). Nothing deletes
  one. So an insert raises `recorded`; a supersede leaves `recorded` and lowers `timeouts`. Between two reads,
  either some insert happened (`recorded` differs) or only supersedes did (`timeouts` differs): no write
  leaves both the same. `max(recorded_at)` would not do: it is the writing transaction's start, and a
  transaction that started earlier may commit a supersede after a later one committed its insert.
- A replay (`beacon replay recorder`) swaps freshly built tables in: `tables`, their oids, tells them apart.

A job is `settled` when every expected cell is recorded and none of them is a timeout: then no write can change
its executions any more (every insert conflicts, no row may be updated), and its counts are remembered instead
of counted again; each request then reads only its expansions' count and checks that the tables are the same
ones (two index lookups instead of a pass over the job's rows). A settled job's status is terminal.

Rows edited or deleted by hand as the tables' owner (outside the recorder) are not seen until the version
changes, as before for the analysis: the recorder is the one writer.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace

import psycopg

SETTLED_JOBS_KEPT = 4096  # a version is ~100 bytes: every job a reader is asked about in a while

_TABLES = "'jobs'::regclass::oid::bigint, 'executions'::regclass::oid::bigint, 'job_regions'::regclass::oid::bigint"
# One statement: each job's row, its executions counted once (the status is in the heap: one pass over the
# job's rows, found through the unique index on (job_id, ...)), its expansions counted through their key.
_VERSIONS = f"""
SELECT j.job_id, j.expected_executions, e.recorded, e.timeouts, r.picked, {_TABLES}
FROM jobs j
CROSS JOIN LATERAL (
    SELECT count(*) AS recorded, count(*) FILTER (WHERE x.status = 'timeout') AS timeouts
    FROM executions x WHERE x.job_id = j.job_id) e
CROSS JOIN LATERAL (SELECT count(*) AS picked FROM job_regions p WHERE p.job_id = j.job_id) r
WHERE j.job_id = ANY(%s)
"""
# For settled jobs: what can still change (a region's expansion recorded late) and which tables these are.
_SETTLED = f"""
SELECT j.job_id, (SELECT count(*) FROM job_regions p WHERE p.job_id = j.job_id), {_TABLES}
FROM unnest(%s::text[]) AS j(job_id)
"""


@dataclass(frozen=True)
class JobVersion:
    tables: tuple[int, int, int]  # oids of jobs, executions, job_regions
    recorded: int
    timeouts: int
    regions_picked: int
    settled: bool


def version_of(tables: tuple[int, int, int], expected: int, recorded: int, timeouts: int, picked: int) -> JobVersion:
    """`settled`: every cell recorded (only cells of the spec are rows, one each), none of them a timeout (the
    one kind of row that may still change)."""
    return JobVersion(tables, recorded, timeouts, picked, settled=recorded == expected and timeouts == 0)


async def read(conn: psycopg.AsyncConnection, job_ids: Sequence[str]) -> dict[str, JobVersion]:
    """The version of each of `job_ids` whose JobSubmitted is projected (the others are not in the result)."""
    rows = await (await conn.execute(_VERSIONS, (list(job_ids),))).fetchall()
    return {
        job_id: version_of((t1, t2, t3), expected, recorded, timeouts, picked)
        for job_id, expected, recorded, timeouts, picked, t1, t2, t3 in rows
    }


class Versions:
    """Versions read per request; a settled job's counts are remembered (bounded, least recently used out)
    and stand for as long as the tables are the ones they were counted in."""

    def __init__(self, size: int = SETTLED_JOBS_KEPT) -> None:
        self.size = size
        self._settled: OrderedDict[str, JobVersion] = OrderedDict()

    async def of(self, conn: psycopg.AsyncConnection, job_ids: Sequence[str]) -> dict[str, JobVersion]:
        ids = list(dict.fromkeys(job_ids))
        found: dict[str, JobVersion] = {}
        settled = [j for j in ids if j in self._settled]
        if settled:
            for job_id, picked, *oids in await (await conn.execute(_SETTLED, (settled,))).fetchall():
                known = self._settled[job_id]
                if known.tables != (oids[0], oids[1], oids[2]):  # a replay swapped the tables in: count again
                    del self._settled[job_id]
                    continue
                self._settled.move_to_end(job_id)
                found[job_id] = replace(known, regions_picked=picked)
        missing = [j for j in ids if j not in found]
        for job_id, version in (await read(conn, missing) if missing else {}).items():
            found[job_id] = version
            if version.settled:
                self._settled[job_id] = version
                while len(self._settled) > self.size:
                    self._settled.popitem(last=False)
        return found
