"""Writing a batch: one transaction, COPY into a temporary table, then INSERT … ON CONFLICT DO NOTHING (and a
cell's late real result takes its timeout's place: `_insert`).

The unique index on (job_id, region, model_id, question_id) NULLS NOT DISTINCT (migrations 001, 005)
decides duplicates, in the database, atomically: no check-then-insert. Within a batch the first event per
key (in Kafka order) wins because rows are inserted in the order they were consumed.

Only a cell of a known job becomes a row (`executions` and `job_regions` reference `jobs`). In the batch's
transaction the jobs are written first; then each result and expansion is admitted (admit.py) against its
job, read from the jobs table through a cache (`Book`). One whose job is not there yet waits in
pending_results as its Kafka record; when its job is written it is projected before any later result of that
job, so it wins over them exactly as if it had come after the job, live and in a replay. One that is no
cell of its job is returned as a stray, to be dead-lettered.

A row PostgreSQL refuses for what it holds (a NUL byte, a value out of range) must not stop the
recorder: it would meet the same event again after every restart. The batch is then written again row by
row, each behind a savepoint, and the refused rows come back with the database's error for the caller
to dead-letter; the rest of the batch is written. Only a transient failure (`is_transient`: the server or
the connection) is raised, for the caller to wait out and retry.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from beacon.domain.cells import CellKey
from beacon.infra.keys import TrustFile
from beacon.infra.projection import (
    EXECUTION_COLUMNS,
    JOB_COLUMNS,
    JOB_REGION_COLUMNS,
    columns,
    copy_rows,
    storage_of,
)
from beacon.recorder import admit, project
from beacon.schemas.events import JobSubmitted
from beacon.schemas.topics import Topics

_COLUMNS = {"executions": EXECUTION_COLUMNS, "jobs": JOB_COLUMNS, "job_regions": JOB_REGION_COLUMNS}
_PENDING_COLS = ("topic", '"partition"', '"offset"', "job_id", "key", "value", '"timestamp"')


@dataclass(frozen=True)
class Tables:
    executions: str = "executions"
    jobs: str = "jobs"
    job_regions: str = "job_regions"
    pending: str = "pending_results"

    def of(self, kind: str) -> str:
        return {"executions": self.executions, "jobs": self.jobs, "job_regions": self.job_regions}[kind]


LIVE = Tables()
REBUILD = Tables("executions_rebuild", "jobs_rebuild", "job_regions_rebuild", "pending_results_rebuild")


@dataclass(frozen=True)
class Written:
    executions_inserted: int
    executions_duplicate: int
    jobs_inserted: int
    timeouts_superseded: int = 0  # timeouts replaced by the cell's real result, arrived late


@dataclass(frozen=True)
class Refused:
    """A row the database refused, as the record it came from."""

    record: ConsumerRecord
    error: str


@dataclass(frozen=True)
class Stray:
    """A result or expansion that is no cell of its (known) job."""

    record: ConsumerRecord
    why: str


@dataclass(frozen=True)
class Recorded:
    written: Written
    refused: list[Refused] = field(default_factory=list)
    strays: list[Stray] = field(default_factory=list)
    held: int = 0  # records put aside to wait for their job
    adopted: int = 0  # waiting records whose job has come (projected, or marked to be dead-lettered)


class Book:
    """What the recorder knows of each job's cells (admit.JobCells), read from the jobs table and kept: a
    job's row never changes once written. Bounded, least recently used first out."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._known: OrderedDict[str, admit.JobCells] = OrderedDict()

    async def lookup(
        self, conn: psycopg.AsyncConnection, jobs_table: str, ids: Iterable[str]
    ) -> dict[str, admit.JobCells]:
        """The jobs among `ids` that the table holds (this transaction's own writes included)."""
        found: dict[str, admit.JobCells] = {}
        missing = []
        for job_id in ids:
            if job_id in self._known:
                self._known.move_to_end(job_id)
                found[job_id] = self._known[job_id]
            else:
                missing.append(job_id)
        if missing:
            cur = await conn.execute(f"SELECT spec FROM {jobs_table} WHERE job_id = ANY(%s)", (missing,))
            for (spec,) in await cur.fetchall():
                cells = admit.JobCells.of_spec(spec)
                found[cells.job_id] = cells
        return found

    def remember(self, jobs: dict[str, admit.JobCells]) -> None:
        """After the transaction that read them committed (a rolled-back job must not be remembered)."""
        for job_id, cells in jobs.items():
            self._known[job_id] = cells
            self._known.move_to_end(job_id)
        while len(self._known) > self.size:
            self._known.popitem(last=False)


def is_transient(exc: BaseException) -> bool:
    """A failure of the server or the connection, not of the data: wait and retry the same batch.
    Class 54 (program limit exceeded, e.g. an index row too large) is the data's fault."""
    if not isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return False
    return not (getattr(exc, "sqlstate", None) or "").startswith("54")


async def prepare(conn: psycopg.AsyncConnection) -> None:
    """Create this connection's staging tables once (temporary, emptied at every commit)."""
    async with conn.transaction():
        for kind, cols in _COLUMNS.items():
            table = f"incoming_{kind}"
            storage = await storage_of(conn, kind)  # rows kept inline there too (migration 008)
            await conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {table}{storage} ON COMMIT DELETE ROWS AS "
                f"SELECT {columns(cols)} FROM {kind} WITH NO DATA"
            )
            # `seq` keeps consumption order so "first event per key wins" is deterministic.
            await conn.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS seq bigserial")


# A late result supersedes a timeout: the deadline records a missing cell as `timeout` so that every job ends,
# but when the cell's real result arrives after that (a region cut off past the deadline, then healed), the
# result takes its place. Order does not matter, so a replay ends the same: a cell's row is its first real
# result in Kafka order if it has one, else its timeout. A real result never replaces another. The recorder's
# role may UPDATE no other row (beacon.infra.db.ROW_POLICIES).
_KEY = ("job_id", "region", "model_id", "question_id")
# question_id may be NULL (a job without questions); `=` on the others keeps the unique index usable.
_SAME_CELL = (
    "e.job_id = i.job_id AND e.region = i.region AND e.model_id = i.model_id"
    " AND e.question_id IS NOT DISTINCT FROM i.question_id"
)


def _supersede_sql(target: str, source: str) -> str:
    """Put each cell's first real result of `source` (alias i, ordered by seq when it has it) in the place
    of that cell's timeout in `target`."""
    cols = EXECUTION_COLUMNS
    return (
        f"UPDATE {target} e SET ({columns(cols)}, recorded_at) = ({columns(f'i.{c}' for c in cols)}, now())"
        f" FROM {source} WHERE e.status = 'timeout' AND {_SAME_CELL}"
    )


async def _insert(
    conn: psycopg.AsyncConnection, kind: str, target: str, rows: Sequence[tuple[Any, ...]], isolate: bool
) -> tuple[int, int, list[tuple[int, str]]]:
    """Insert in order, duplicates skipped; returns (inserted, timeouts superseded, [(index, error)] of the
    rows refused). In bulk a refused row raises; isolated, each row is behind its own savepoint."""
    if not rows:
        return 0, 0, []
    cols = _COLUMNS[kind]
    names = columns(cols)
    results = kind == "executions"
    if not isolate:
        async with conn.cursor() as cur:
            await copy_rows(cur, f"incoming_{kind}", cols, rows)
            # Real results before timeouts: within one batch too, a cell's real result wins over its timeout.
            order = "(status = 'timeout'), seq" if results else "seq"
            await cur.execute(
                f"INSERT INTO {target} ({names}) SELECT {names} FROM incoming_{kind} ORDER BY {order}"
                " ON CONFLICT DO NOTHING"
            )
            inserted, superseded = cur.rowcount, 0
            if results and inserted < len(rows):  # some cells had rows already: a timeout among them?
                key = columns(_KEY)
                first_real = (
                    f"(SELECT DISTINCT ON ({key}) * FROM incoming_{kind} WHERE status <> 'timeout'"
                    f" ORDER BY {key}, seq) i"
                )
                await cur.execute(_supersede_sql(target, first_real))
                superseded = cur.rowcount
            return inserted, superseded, []
    insert = f"INSERT INTO {target} ({names}) VALUES ({', '.join(['%s'] * len(cols))}) ON CONFLICT DO NOTHING"
    # Parameters straight into the columns (so PostgreSQL types them as the columns are typed).
    supersede = (
        f"UPDATE {target} SET ({names}, recorded_at) = ({', '.join(['%s'] * len(cols))}, now())"
        " WHERE status = 'timeout' AND job_id = %s AND region = %s AND model_id = %s"
        " AND question_id IS NOT DISTINCT FROM %s"
    )
    status_at = cols.index("status") if results else -1
    key_at = [cols.index(c) for c in _KEY] if results else []
    inserted, superseded, refused = 0, 0, []
    # One by one in Kafka order, so within the batch too a timeout recorded first is superseded.
    for index, row in enumerate(rows):
        try:
            async with conn.transaction():  # a savepoint: a refused row leaves the others intact
                done = (await conn.execute(insert, row)).rowcount
                inserted += done
                if not done and results and row[status_at] != "timeout":
                    superseded += (await conn.execute(supersede, (*row, *(row[i] for i in key_at)))).rowcount
        except Exception as exc:
            if is_transient(exc):
                raise
            refused.append((index, f"{type(exc).__name__}: {str(exc).strip()}"[:2000]))
    return inserted, superseded, refused


@dataclass
class _Item:
    kind: str  # "executions" or "job_regions"
    row: tuple[Any, ...]
    record: ConsumerRecord
    waiting: bool  # came out of pending_results


async def _waiting(
    conn: psycopg.AsyncConnection, into: Tables, ids: set[str], every_known: bool
) -> list[ConsumerRecord]:
    """Records waiting for a job the jobs table now holds (of `ids`, or of any job), in Kafka order, locked:
    a second writer adopting them at the same time waits, then finds them gone."""
    cur = await conn.execute(
        f'SELECT topic, "partition", "offset", key, value, "timestamp" FROM {into.pending} p'
        f" WHERE p.verdict IS NULL AND (%s OR p.job_id = ANY(%s))"
        f" AND EXISTS (SELECT 1 FROM {into.jobs} j WHERE j.job_id = p.job_id)"
        ' ORDER BY topic, "partition", "offset" FOR UPDATE OF p',
        (every_known, list(ids)),
    )
    return [
        ConsumerRecord(t, p, o, ts, 0, k, v, None, len(k or b""), len(v), ())
        for t, p, o, k, v, ts in await cur.fetchall()
    ]


async def record(
    conn: psycopg.AsyncConnection,
    rows: project.Rows,
    book: Book,
    names: Topics,
    trust: TrustFile,
    into: Tables = LIVE,
    every_known: bool = False,
) -> Recorded:
    """Write one batch (jobs, then the results and expansions that are cells of known jobs, the others held
    or returned as strays), adopting the held records whose job is now known — of this batch's jobs, or with
    `every_known` of any (the recorder's periodic sweep, pending.py)."""
    try:
        return await _record(conn, rows, book, names, trust, into, every_known, isolate=False)
    except Exception as exc:
        if is_transient(exc):
            raise
    return await _record(conn, rows, book, names, trust, into, every_known, isolate=True)


async def _record(
    conn: psycopg.AsyncConnection,
    rows: project.Rows,
    book: Book,
    names: Topics,
    trust: TrustFile,
    into: Tables,
    every_known: bool,
    isolate: bool,
) -> Recorded:
    refused: list[Refused] = []
    strays: list[Stray] = []
    async with conn.transaction():
        jobs_inserted, _, bad = await _insert(conn, "jobs", into.jobs, rows.jobs, isolate)
        refused += [Refused(rows.job_sources[i], error) for i, error in bad]
        ids = {r[0] for r in rows.executions} | {r[0] for r in rows.job_regions} | {r[0] for r in rows.jobs}
        waiting = await _waiting(conn, into, ids, every_known) if ids or every_known else []
        adopted = project.rows_of(waiting, names, trust)
        items = [
            *(
                _Item("executions", r, s, True)
                for r, s in zip(adopted.executions, adopted.execution_sources, strict=True)
            ),
            *(
                _Item("job_regions", r, s, True)
                for r, s in zip(adopted.job_regions, adopted.job_region_sources, strict=True)
            ),
            *(_Item("executions", r, s, False) for r, s in zip(rows.executions, rows.execution_sources, strict=True)),
            *(
                _Item("job_regions", r, s, False)
                for r, s in zip(rows.job_regions, rows.job_region_sources, strict=True)
            ),
        ]
        known = await book.lookup(conn, into.jobs, {item.row[0] for item in items})
        admitted: dict[str, list[_Item]] = {"executions": [], "job_regions": []}
        held: list[_Item] = []
        verdicts: list[tuple[str, ConsumerRecord]] = [(p.why, p.record) for p in adopted.poison]
        for item in items:
            job = known.get(item.row[0])
            if job is None:
                held.append(item)  # never a waiting one: its job is known, or it would not have been read
                continue
            why = admit.why_not(job, item.kind, item.row)
            if why is None:
                admitted[item.kind].append(item)
            elif item.waiting:
                verdicts.append((admit.NOT_A_CELL + why, item.record))
            else:
                strays.append(Stray(item.record, why))
        inserted, refused_results, superseded = {}, 0, 0
        for kind, chosen in admitted.items():
            inserted[kind], late, bad = await _insert(conn, kind, into.of(kind), [i.row for i in chosen], isolate)
            superseded += late
            refused_results += len(bad) if kind == "executions" else 0
            for index, error in bad:
                if chosen[index].waiting:
                    verdicts.append((f"PostgreSQL refused the row: {error}", chosen[index].record))
                else:
                    refused.append(Refused(chosen[index].record, error))
        if held:
            await conn.cursor().executemany(
                f"INSERT INTO {into.pending} ({', '.join(_PENDING_COLS)}) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                [
                    (
                        i.record.topic,
                        i.record.partition,
                        i.record.offset,
                        i.row[0],
                        i.record.key,
                        i.record.value,
                        i.record.timestamp,
                    )
                    for i in held
                ],
            )
        if waiting:
            marked = {(r.topic, r.partition, r.offset): why for why, r in verdicts}
            await conn.cursor().executemany(
                f'UPDATE {into.pending} SET verdict = %s WHERE topic = %s AND "partition" = %s AND "offset" = %s',
                [(why, *where) for where, why in marked.items()],
            )
            done = [(r.topic, r.partition, r.offset) for r in waiting if (r.topic, r.partition, r.offset) not in marked]
            await conn.cursor().executemany(
                f'DELETE FROM {into.pending} WHERE topic = %s AND "partition" = %s AND "offset" = %s', done
            )
    book.remember(known)
    duplicates = len(admitted["executions"]) - refused_results - inserted["executions"] - superseded
    written = Written(inserted["executions"], duplicates, jobs_inserted, superseded)
    return Recorded(written, refused, strays, held=len(held), adopted=len(waiting))


# --- what the deadline clock reads -------------------------------------------------------------------


async def overdue_jobs(conn: psycopg.AsyncConnection) -> list[JobSubmitted]:
    """Jobs past their deadline with cells of their spec still unrecorded."""
    cur = await conn.execute(
        "SELECT j.spec FROM jobs j WHERE j.deadline < now() AND j.expected_executions >"
        " (SELECT count(*) FROM executions e WHERE e.job_id = j.job_id)"  # every row is a cell of its job
    )
    jobs = []
    for (spec,) in await cur.fetchall():
        try:
            jobs.append(JobSubmitted.model_validate(spec))
        except ValidationError:
            continue  # a projected spec this version cannot read: no sweep for it, and no crash of the sweeper
    return jobs


async def recorded_cells(conn: psycopg.AsyncConnection, job_id: str) -> set[CellKey]:
    cur = await conn.execute("SELECT region, model_id, question_id FROM executions WHERE job_id = %s", (job_id,))
    return {tuple(row) for row in await cur.fetchall()}  # type: ignore[misc]
