"""Rebuilding the projection from the log (`beacon replay recorder`) and re-projecting part of it
(`--since`). Re-deriving classifications without any model call (`beacon reclassify`) is reclassify.py.

Rebuild: project every topic the recorder projects (jobs, executions, each region's expansions) from the
beginning into fresh tables, admitting and holding results exactly as the recorder does (store.record); then,
holding an exclusive lock on the live tables, project what arrived meanwhile, compare checksums and swap
the fresh tables in, in one transaction. Readers see the old tables or the new ones, never a half-built one. The
live recorder may keep running: its writes wait for the lock and then go to the new tables, and any
event it wrote to the old ones is in the log, so in the new ones too. A rebuild that would leave fewer
rows than the live tables hold (the topics' retention dropped old events, or the wrong cluster) is
refused unless asked for: a replay must never lose what was recorded. A result whose job is nowhere in the
log stays out, as the recorder dead-lettered it; one whose JobSubmitted came later than the recorder's wait
(BEACON_ORPHAN_WAIT_SECONDS) is in a rebuild although the live recorder gave up on it.

Re-projection (`--since T`): the events from T onward are projected into the live tables, with the
same ON CONFLICT DO NOTHING as the recorder, so every earlier row stays and missing ones are filled in.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

import psycopg

from beacon.infra import db, kafka, logs, verifiers
from beacon.infra.keys import TrustFile
from beacon.infra.projection import storage_of
from beacon.infra.settings import Settings
from beacon.recorder import decode, store
from beacon.schemas.topics import Topics

log = logs.get("beacon.recorder.replay")

# Row fingerprints: every projected column except the surrogate id and the time the row was written.
_EXEC_ROW = (
    "concat_ws('|', job_id, region, model_id, quote_nullable(question_id), language, provider,"
    " provider_model, status,"
    " classification, classifier_version, answer, output::text, receipt::text, started_at, completed_at, event_id)"
)
_EXEC_ORDER = "job_id, region, model_id, question_id NULLS FIRST"  # the cell: a total order
_JOB_ROW = (
    "concat_ws('|', job_id, spec_sha256, expected_executions, submitted_at, deadline, spec::text, event_id,"
    " catalogue_version)"
)
_REGION_ROW = (
    "concat_ws('|', job_id, region, spec_sha256, cells, providers::text, unrouted::text, expanded_at, event_id)"
)
_REGION_ORDER = "job_id, region"
# The fresh tables, created like the live ones; each references the fresh jobs table under the live
# constraint's name, so after the swap the constraint is the live one's again.
_FRESH = (
    ("jobs", store.REBUILD.jobs, None),
    ("executions", store.REBUILD.executions, "executions_of_a_job"),
    ("job_regions", store.REBUILD.job_regions, "job_regions_of_a_job"),
)


@dataclass(frozen=True)
class Checksum:
    rows: int
    sha256: str | None

    def __str__(self) -> str:
        return f"{self.rows} rows, sha256 {self.sha256 or '-'}"


@dataclass(frozen=True)
class RebuildReport:
    events: int
    old_executions: Checksum
    new_executions: Checksum
    old_jobs: Checksum
    new_jobs: Checksum
    old_job_regions: Checksum
    new_job_regions: Checksum
    waiting: int = 0  # results left waiting for a job the log does not hold (the recorder dead-lettered them)

    @property
    def identical(self) -> bool:
        return (
            self.old_executions == self.new_executions
            and self.old_jobs == self.new_jobs
            and self.old_job_regions == self.new_job_regions
        )


class ReplayRefused(RuntimeError):
    """A rebuild that would lose rows: nothing was swapped."""


async def checksum(conn: psycopg.AsyncConnection, table: str, row: str, order: str) -> Checksum:
    """SHA-256 over the SHA-256 of each row's fingerprint, in the table's total order. PostgreSQL hashes the
    rows, so only 32 bytes a row cross the wire (streaming the rows' text to hash it here took 3.5× as long
    at 200,000 rows); a server-side cursor keeps any size in constant memory, inside the exclusive lock."""
    digest = hashlib.sha256()
    rows = 0
    async with conn.cursor(name=f"checksum_{table}", binary=True) as cur:
        await cur.execute(f"SELECT sha256(convert_to({row}, 'UTF8')) FROM {table} ORDER BY {order}")
        while chunk := await cur.fetchmany(_CHECKSUM_CHUNK):
            digest.update(b"".join(row_digest for (row_digest,) in chunk))
            rows += len(chunk)
    return Checksum(rows, digest.hexdigest() if rows else None)


_CHECKSUM_CHUNK = 5000  # rows per round trip: 160 KB of digests


@dataclass
class Projected:
    events: int = 0
    executions_inserted: int = 0
    jobs_inserted: int = 0
    refused: int = 0


async def _project(
    conn: psycopg.AsyncConnection,
    reader: kafka.TopicReader,
    into: store.Tables,
    book: store.Book,
    names: Topics,
    trust: TrustFile,
    pool: verifiers.Pool,
) -> Projected:
    """Project up to the current end. Poison, strays and rows the database refuses were dead-lettered by the
    live recorder already; here they are counted and passed over."""
    out = Projected()

    def count(done: store.Recorded) -> None:
        out.executions_inserted += done.written.executions_inserted
        out.jobs_inserted += done.written.jobs_inserted
        out.refused += len(done.refused) + len(done.strays)

    # Pipelined like the recorder (main.py): batch N is written while batch N+1 is read and decoded.
    writing: asyncio.Future[store.Recorded] | None = None
    try:
        async for records in reader.to_end():
            rows = await decode.rows_of_batch(records, names, trust, pool)
            if writing is not None:
                count(await writing)
            writing = asyncio.ensure_future(store.record(conn, rows, book, names, trust, into))
            out.events += len(records)
        if writing is not None:
            count(await writing)
            writing = None
    finally:
        if writing is not None:
            writing.cancel()
    return out


def _shape(indexdef: str) -> str:
    """An index definition without its own name and its table's name, to pair old and new indexes."""
    return re.sub(r"INDEX \S+ ON \S+", "INDEX ON", indexdef)


async def _swap(conn: psycopg.AsyncConnection, live: str, fresh: str) -> None:
    """Put `fresh` in the place of `live` under the live table's own index and sequence names."""
    cur = await conn.execute(
        "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE tablename IN (%s, %s)", (live, fresh)
    )
    rows = await cur.fetchall()
    old_names = {_shape(d): name for t, name, d in rows if t == live}
    renames = [(name, old_names[_shape(d)]) for t, name, d in rows if t == fresh and _shape(d) in old_names]
    owned = (
        "SELECT s.relname FROM pg_class s JOIN pg_depend d ON d.objid = s.oid JOIN pg_class t ON t.oid = d.refobjid"
        " WHERE s.relkind = 'S' AND t.relname = %s"
    )
    old_seq = await (await conn.execute(owned, (live,))).fetchone()
    new_seq = await (await conn.execute(owned, (fresh,))).fetchone()
    await conn.execute(f"DROP TABLE {live}")
    await conn.execute(f"ALTER TABLE {fresh} RENAME TO {live}")
    for new, old in renames:
        await conn.execute(f'ALTER INDEX "{new}" RENAME TO "{old}"')
    if old_seq and new_seq:  # the identity sequence behind executions.id
        await conn.execute(f'ALTER SEQUENCE "{new_seq[0]}" RENAME TO "{old_seq[0]}"')
    # The new table has only its owner's privileges: give the services' roles theirs again.
    roles = {r for (r,) in await (await conn.execute(db.EXISTING_ROLES, (list(db.PRIVILEGES),))).fetchall()}
    for statement in [*db.grants(live, roles), *db.row_policies(live)]:
        await conn.execute(statement)


async def rebuild(settings: Settings, allow_fewer: bool = False) -> RebuildReport:
    names = settings.topics
    # prepare_threshold=None: no server-side prepared statements that could outlive the swapped tables.
    conn = await psycopg.AsyncConnection.connect(settings.database_url, prepare_threshold=None)
    reader = kafka.TopicReader(settings, names.all(), pattern=names.projected(), **kafka.BULK_FETCH)
    book = store.Book()  # its own: what it knows of a job comes from the fresh tables
    trust = TrustFile(settings.keys_dir)
    pool = verifiers.Pool()
    await reader.start()
    try:
        await store.prepare(conn)
        async with conn.transaction():
            await conn.execute(f"DROP TABLE IF EXISTS {_FRESH_TABLES}")
            for live, fresh, reference in _FRESH:
                await conn.execute(f"CREATE TABLE {fresh} (LIKE {live} INCLUDING ALL){await storage_of(conn, live)}")
                if reference is not None:
                    await conn.execute(
                        f"ALTER TABLE {fresh} ADD CONSTRAINT {reference} FOREIGN KEY (job_id)"
                        f" REFERENCES {store.REBUILD.jobs} (job_id)"
                    )
            await conn.execute(f"CREATE TABLE {store.REBUILD.pending} (LIKE {store.LIVE.pending} INCLUDING ALL)")
        events = (await _project(conn, reader, store.REBUILD, book, names, trust, pool)).events
        log.info("rebuild_caught_up", events=events)
        async with conn.transaction():
            await conn.execute("LOCK TABLE executions, job_regions, jobs IN ACCESS EXCLUSIVE MODE")
            events += (await _project(conn, reader, store.REBUILD, book, names, trust, pool)).events  # since
            (waiting,) = await (await conn.execute(f"SELECT count(*) FROM {store.REBUILD.pending}")).fetchone() or (0,)
            report = RebuildReport(
                events=events,
                old_executions=await checksum(conn, "executions", _EXEC_ROW, _EXEC_ORDER),
                new_executions=await checksum(conn, store.REBUILD.executions, _EXEC_ROW, _EXEC_ORDER),
                old_jobs=await checksum(conn, "jobs", _JOB_ROW, "job_id"),
                new_jobs=await checksum(conn, store.REBUILD.jobs, _JOB_ROW, "job_id"),
                old_job_regions=await checksum(conn, "job_regions", _REGION_ROW, _REGION_ORDER),
                new_job_regions=await checksum(conn, store.REBUILD.job_regions, _REGION_ROW, _REGION_ORDER),
                waiting=waiting,
            )
            pairs = [
                ("executions", report.old_executions, report.new_executions),
                ("jobs", report.old_jobs, report.new_jobs),
                ("job_regions", report.old_job_regions, report.new_job_regions),
            ]
            fewer = [f"{name} {old.rows} → {new.rows}" for name, old, new in pairs if new.rows < old.rows]
            if fewer and not allow_fewer:
                raise ReplayRefused(
                    f"the rebuilt tables would hold fewer rows than the live ones ({', '.join(fewer)}): the topics"
                    " no longer hold every event (retention?) or this is not the cluster the tables came from."
                    " Nothing was changed. Use --since to re-project part of the log into the live tables, or"
                    " --allow-fewer to replace them anyway."
                )
            # The tables that reference jobs first, so that dropping the live jobs table leaves nothing dangling.
            for live, fresh, _ in reversed(_FRESH):
                await _swap(conn, live, fresh)
        log.info("rebuild_swapped", identical=report.identical, events=events, waiting=waiting)
        return report
    finally:
        await pool.close()
        await reader.stop()
        if not conn.closed:
            await conn.execute(f"DROP TABLE IF EXISTS {_FRESH_TABLES}")
            await conn.commit()
        await conn.close()


_FRESH_TABLES = ", ".join([*(fresh for _, fresh, _ in _FRESH), store.REBUILD.pending])


@dataclass(frozen=True)
class ReprojectReport:
    events: int
    executions_inserted: int
    jobs_inserted: int
    refused: int  # rows the database refused and strays (dead-lettered by the live recorder already)
    before: Checksum
    after: Checksum


async def reproject(settings: Settings, since: datetime) -> ReprojectReport:
    """Project the events from `since` onward into the live tables; rows already there stay as they are."""
    names = settings.topics
    conn = await psycopg.AsyncConnection.connect(settings.database_url)
    reader = kafka.TopicReader(settings, names.all(), since=since, pattern=names.projected(), **kafka.BULK_FETCH)
    pool = verifiers.Pool()
    await reader.start()
    try:
        await store.prepare(conn)
        before = await _executions_checksum(conn)
        done = await _project(conn, reader, store.LIVE, store.Book(), names, TrustFile(settings.keys_dir), pool)
        after = await _executions_checksum(conn)
        log.info("reprojected", since=since.isoformat(), events=done.events, inserted=done.executions_inserted)
        return ReprojectReport(done.events, done.executions_inserted, done.jobs_inserted, done.refused, before, after)
    finally:
        await pool.close()
        await reader.stop()
        await conn.close()


async def _executions_checksum(conn: psycopg.AsyncConnection) -> Checksum:
    async with conn.transaction():
        return await checksum(conn, "executions", _EXEC_ROW, _EXEC_ORDER)
