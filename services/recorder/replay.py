"""Rebuilding the projection from the log (`beacon replay recorder`) and re-deriving classifications
without any model call (`beacon reclassify`).

Rebuild: project the jobs and executions topics, from the beginning or from a timestamp, into fresh
tables; then, holding an exclusive lock on the live tables, project what arrived meanwhile, compare
checksums and swap the fresh tables in, in one transaction. Readers see the old tables or the new
ones, never a half-built one. The live recorder may keep running: its writes wait for the lock and
then go to the new tables, and any event it wrote to the old ones is in the log, so in the new ones too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from beacon import kafka, logs
from beacon.settings import Settings
from beacon.topics import Topics
from schemas.events import ExecutionCompleted
from services.recorder import project, store
from services.runner.classify import CLASSIFIER_VERSION, classify

log = logs.get("beacon.recorder.replay")

# Row fingerprints: every projected column except the surrogate id and the time the row was written.
_EXEC_ROW = (
    "concat_ws('|', job_id, region, model_id, coalesce(question_id, '<none>'), provider, provider_model, status,"
    " classification, classifier_version, answer, output::text, receipt::text, started_at, completed_at, event_id)"
)
_EXEC_ORDER = "job_id, region, model_id, question_id NULLS FIRST"
_JOB_ROW = "concat_ws('|', job_id, spec_sha256, expected_executions, submitted_at, deadline, spec::text, event_id)"


@dataclass(frozen=True)
class Checksum:
    rows: int
    md5: str | None

    def __str__(self) -> str:
        return f"{self.rows} rows, md5 {self.md5 or '-'}"


@dataclass(frozen=True)
class RebuildReport:
    events: int
    old_executions: Checksum
    new_executions: Checksum
    old_jobs: Checksum
    new_jobs: Checksum

    @property
    def identical(self) -> bool:
        return self.old_executions == self.new_executions and self.old_jobs == self.new_jobs


async def checksum(conn: psycopg.AsyncConnection, table: str, row: str, order: str) -> Checksum:
    cur = await conn.execute(f"SELECT count(*), md5(string_agg({row}, E'\\n' ORDER BY {order})) FROM {table}")
    count, md5 = await cur.fetchone()  # type: ignore[misc]
    return Checksum(count, md5)


async def _positioned_consumer(settings: Settings, topics: list[str], since: datetime | None) -> AIOKafkaConsumer:
    consumer = kafka.consumer(settings, group_id=None)  # a reader, not a member of any group
    await consumer.start()
    tps = await kafka.partitions(consumer, topics)
    consumer.assign(tps)
    if since is None:
        await consumer.seek_to_beginning(*tps)
    else:
        found = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in tps})
        for tp in tps:
            if found.get(tp) is None:
                await consumer.seek_to_end(tp)  # nothing at or after `since` there
            else:
                consumer.seek(tp, found[tp].offset)
    return consumer


async def _project(conn: psycopg.AsyncConnection, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> int:
    events = 0
    async for records in kafka.read_until(consumer, await consumer.end_offsets(tps)):
        rows = project.rows_of(records)  # poison was dead-lettered by the live consumer already
        await store.write_batch(conn, rows.executions, rows.jobs, into=store.REBUILD)
        events += len(records)
    return events


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


async def rebuild(settings: Settings, since: datetime | None = None) -> RebuildReport:
    names = Topics.for_settings(settings)
    topics = [names.jobs_submitted, names.executions_completed]
    # prepare_threshold=None: no server-side prepared statements that could outlive the swapped tables.
    conn = await psycopg.AsyncConnection.connect(settings.database_url, prepare_threshold=None)
    consumer = await _positioned_consumer(settings, topics, since)
    try:
        await store.prepare(conn)
        async with conn.transaction():
            for live, fresh in (("executions", store.REBUILD.executions), ("jobs", store.REBUILD.jobs)):
                await conn.execute(f"DROP TABLE IF EXISTS {fresh}")
                await conn.execute(f"CREATE TABLE {fresh} (LIKE {live} INCLUDING ALL)")
        tps = list(consumer.assignment())
        events = await _project(conn, consumer, tps)
        log.info("rebuild_caught_up", events=events)
        async with conn.transaction():
            await conn.execute("LOCK TABLE executions, jobs IN ACCESS EXCLUSIVE MODE")
            events += await _project(conn, consumer, tps)  # what arrived while we were building
            report = RebuildReport(
                events=events,
                old_executions=await checksum(conn, "executions", _EXEC_ROW, _EXEC_ORDER),
                new_executions=await checksum(conn, store.REBUILD.executions, _EXEC_ROW, _EXEC_ORDER),
                old_jobs=await checksum(conn, "jobs", _JOB_ROW, "job_id"),
                new_jobs=await checksum(conn, store.REBUILD.jobs, _JOB_ROW, "job_id"),
            )
            await _swap(conn, "executions", store.REBUILD.executions)
            await _swap(conn, "jobs", store.REBUILD.jobs)
        log.info("rebuild_swapped", identical=report.identical, events=events)
        return report
    finally:
        await consumer.stop()
        await conn.close()


@dataclass(frozen=True)
class ReclassifyReport:
    version: str
    examined: int
    classified: int
    changed: int


async def reclassify(settings: Settings) -> ReclassifyReport:
    """Classify every recorded answer again with the current classifier, from the executions topic."""
    names = Topics.for_settings(settings)
    consumer = await _positioned_consumer(settings, [names.executions_completed], None)
    examined = classified = 0
    try:
        async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
            async for records in kafka.read_until(consumer, await consumer.end_offsets(list(consumer.assignment()))):
                rows = []
                for record in records:
                    try:
                        event = kafka.read_event(record, ExecutionCompleted)
                    except kafka.Poison:
                        continue
                    c = classify(event.status, event.answer)  # a pure function: no model is called
                    rows.append(
                        (
                            event.job_id,
                            event.region,
                            event.model_id,
                            event.question_id,
                            c.classifier_version,
                            c.label,
                            c.evidence,
                            event.event_id,
                        )
                    )
                examined += len(rows)
                classified += await _insert_classifications(conn, rows)
            cur = await conn.execute(
                "SELECT count(*) FROM classifications c JOIN executions e ON e.event_id = c.event_id"
                " WHERE c.classifier_version = %s AND c.classification <> e.classification",
                (CLASSIFIER_VERSION,),
            )
            changed = (await cur.fetchone())[0]  # type: ignore[index]
    finally:
        await consumer.stop()
    return ReclassifyReport(CLASSIFIER_VERSION, examined, classified, changed)


async def _insert_classifications(conn: psycopg.AsyncConnection, rows: list[tuple[Any, ...]]) -> int:
    if not rows:
        return 0
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS incoming_classifications (job_id text, region text, model_id text,"
            " question_id text, classifier_version text, classification text, evidence text, event_id uuid)"
            " ON COMMIT DELETE ROWS"
        )
        async with cur.copy("COPY incoming_classifications FROM STDIN") as copy:
            for row in rows:
                await copy.write_row(row)
        # Only the recorded answer of each cell counts: the event the executions row was projected from.
        await cur.execute(
            "INSERT INTO classifications (job_id, region, model_id, question_id, classifier_version,"
            " classification, evidence, event_id)"
            " SELECT i.job_id, i.region, i.model_id, i.question_id, i.classifier_version, i.classification,"
            " i.evidence, i.event_id FROM incoming_classifications i JOIN executions e ON e.event_id = i.event_id"
            " ON CONFLICT DO NOTHING"
        )
        return cur.rowcount
