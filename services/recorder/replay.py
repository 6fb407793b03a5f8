"""Rebuilding the projection from the log (`beacon replay recorder`), re-projecting part of it
(`--since`), and re-deriving classifications without any model call (`beacon reclassify`).

Rebuild: project the jobs and executions topics from the beginning into fresh tables; then, holding an
exclusive lock on the live tables, project what arrived meanwhile, compare checksums and swap the fresh
tables in, in one transaction. Readers see the old tables or the new ones, never a half-built one. The
live recorder may keep running: its writes wait for the lock and then go to the new tables, and any
event it wrote to the old ones is in the log, so in the new ones too. A rebuild that would leave fewer
rows than the live tables hold (the topics' retention dropped old events, or the wrong cluster) is
refused unless asked for: a replay must never lose what was recorded.

Re-projection (`--since T`): the events from T onward are projected into the live tables, with the
same ON CONFLICT DO NOTHING as the recorder, so every earlier row stays and missing ones are filled in.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable
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
from services.runner.judge import JUDGE_VERSION, verdict
from services.runner.providers.base import Provider

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


class ReplayRefused(RuntimeError):
    """A rebuild that would lose rows: nothing was swapped."""


async def checksum(conn: psycopg.AsyncConnection, table: str, row: str, order: str) -> Checksum:
    """MD5 of the table's row fingerprints joined by newlines, streamed through a server-side cursor so
    a table of any size is hashed in constant memory (one string of the whole table would hit
    PostgreSQL's 1 GB limit, inside the exclusive lock). Same value as md5(string_agg(row, E'\\n'))."""
    digest = hashlib.md5(usedforsecurity=False)
    rows = 0
    async with conn.cursor(name=f"checksum_{table}") as cur:
        await cur.execute(f"SELECT {row} FROM {table} ORDER BY {order}")
        async for (text,) in cur:
            if rows:
                digest.update(b"\n")
            digest.update(text.encode())
            rows += 1
    return Checksum(rows, digest.hexdigest() if rows else None)


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


@dataclass
class Projected:
    events: int = 0
    executions_inserted: int = 0
    jobs_inserted: int = 0
    refused: int = 0


async def _project(
    conn: psycopg.AsyncConnection, consumer: AIOKafkaConsumer, tps: list[TopicPartition], into: store.Tables
) -> Projected:
    """Project up to the current end. Poison and rows the database refuses were dead-lettered by the live
    recorder already; here they are counted and passed over."""
    out = Projected()
    async for records in kafka.read_until(consumer, await consumer.end_offsets(tps)):
        rows = project.rows_of(records)
        written, refused = await store.write_or_isolate(conn, rows.executions, rows.jobs, into=into)
        out.events += len(records)
        out.executions_inserted += written.executions_inserted
        out.jobs_inserted += written.jobs_inserted
        out.refused += len(refused)
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


async def rebuild(settings: Settings, allow_fewer: bool = False) -> RebuildReport:
    names = Topics.for_settings(settings)
    topics = [names.jobs_submitted, names.executions_completed]
    # prepare_threshold=None: no server-side prepared statements that could outlive the swapped tables.
    conn = await psycopg.AsyncConnection.connect(settings.database_url, prepare_threshold=None)
    consumer = await _positioned_consumer(settings, topics, None)
    try:
        await store.prepare(conn)
        async with conn.transaction():
            for live, fresh in (("executions", store.REBUILD.executions), ("jobs", store.REBUILD.jobs)):
                await conn.execute(f"DROP TABLE IF EXISTS {fresh}")
                await conn.execute(f"CREATE TABLE {fresh} (LIKE {live} INCLUDING ALL)")
        tps = list(consumer.assignment())
        events = (await _project(conn, consumer, tps, store.REBUILD)).events
        log.info("rebuild_caught_up", events=events)
        async with conn.transaction():
            await conn.execute("LOCK TABLE executions, jobs IN ACCESS EXCLUSIVE MODE")
            events += (await _project(conn, consumer, tps, store.REBUILD)).events  # what arrived meanwhile
            report = RebuildReport(
                events=events,
                old_executions=await checksum(conn, "executions", _EXEC_ROW, _EXEC_ORDER),
                new_executions=await checksum(conn, store.REBUILD.executions, _EXEC_ROW, _EXEC_ORDER),
                old_jobs=await checksum(conn, "jobs", _JOB_ROW, "job_id"),
                new_jobs=await checksum(conn, store.REBUILD.jobs, _JOB_ROW, "job_id"),
            )
            fewer = (
                report.new_executions.rows < report.old_executions.rows or report.new_jobs.rows < report.old_jobs.rows
            )
            if fewer and not allow_fewer:
                raise ReplayRefused(
                    f"the rebuilt tables would hold fewer rows than the live ones (executions "
                    f"{report.old_executions.rows} → {report.new_executions.rows}, jobs {report.old_jobs.rows} → "
                    f"{report.new_jobs.rows}): the topics no longer hold every event (retention?) or this is not "
                    "the cluster the tables came from. Nothing was changed. Use --since to re-project part of "
                    "the log into the live tables, or --allow-fewer to replace them anyway."
                )
            await _swap(conn, "executions", store.REBUILD.executions)
            await _swap(conn, "jobs", store.REBUILD.jobs)
        log.info("rebuild_swapped", identical=report.identical, events=events)
        return report
    finally:
        await consumer.stop()
        if not conn.closed:
            await conn.execute("DROP TABLE IF EXISTS executions_rebuild, jobs_rebuild")
            await conn.commit()
        await conn.close()


@dataclass(frozen=True)
class ReprojectReport:
    events: int
    executions_inserted: int
    jobs_inserted: int
    refused: int  # rows the database refused (dead-lettered by the live recorder already)
    before: Checksum
    after: Checksum


async def reproject(settings: Settings, since: datetime) -> ReprojectReport:
    """Project the events from `since` onward into the live tables; rows already there stay as they are."""
    names = Topics.for_settings(settings)
    topics = [names.jobs_submitted, names.executions_completed]
    conn = await psycopg.AsyncConnection.connect(settings.database_url)
    consumer = await _positioned_consumer(settings, topics, since)
    try:
        await store.prepare(conn)
        before = await _executions_checksum(conn)
        done = await _project(conn, consumer, list(consumer.assignment()), store.LIVE)
        after = await _executions_checksum(conn)
        log.info("reprojected", since=since.isoformat(), events=done.events, inserted=done.executions_inserted)
        return ReprojectReport(done.events, done.executions_inserted, done.jobs_inserted, done.refused, before, after)
    finally:
        await consumer.stop()
        await conn.close()


async def _executions_checksum(conn: psycopg.AsyncConnection) -> Checksum:
    async with conn.transaction():
        return await checksum(conn, "executions", _EXEC_ROW, _EXEC_ORDER)


@dataclass(frozen=True)
class ReclassifyReport:
    version: str
    examined: int
    classified: int
    changed: int
    # (label recorded with the execution, label of this version) → cells, for every cell of this version
    transitions: dict[tuple[str, str], int]


Labeller = Callable[[ExecutionCompleted], Awaitable[tuple[str, str | None] | None]]


async def reclassify(settings: Settings, judge: Provider | None = None, judge_concurrency: int = 4) -> ReclassifyReport:
    """Label every recorded answer again, from the executions topic, into `classifications` beside the
    recorded label: with the current rules (a pure function), or with `judge` — a model asked the rubric
    about each recorded, completed answer it has not judged yet. The answering models are never called."""
    names = Topics.for_settings(settings)
    consumer = await _positioned_consumer(settings, [names.executions_completed], None)
    version = JUDGE_VERSION if judge is not None else CLASSIFIER_VERSION
    examined = classified = 0
    try:
        async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
            label = await _judge_labeller(conn, judge, judge_concurrency) if judge is not None else _rules_labeller
            async for records in kafka.read_until(consumer, await consumer.end_offsets(list(consumer.assignment()))):
                events = []
                for record in records:
                    try:
                        events.append(kafka.read_event(record, ExecutionCompleted))
                    except kafka.Poison:
                        continue
                labels = await asyncio.gather(*(label(e) for e in events))
                rows = [
                    (e.job_id, e.region, e.model_id, e.question_id, version, got[0], got[1], e.event_id)
                    for e, got in zip(events, labels, strict=True)
                    if got is not None
                ]
                examined += len(events)
                classified += await _insert_classifications(conn, rows)
            cur = await conn.execute(
                "SELECT e.classification, c.classification, count(*) FROM classifications c"
                " JOIN executions e ON e.event_id = c.event_id WHERE c.classifier_version = %s GROUP BY 1, 2",
                (version,),
            )
            transitions = {(old, new): n for old, new, n in await cur.fetchall()}
    finally:
        await consumer.stop()
    changed = sum(n for (old, new), n in transitions.items() if old != new)
    return ReclassifyReport(version, examined, classified, changed, transitions)


async def _rules_labeller(event: ExecutionCompleted) -> tuple[str, str | None]:
    c = classify(event.status, event.answer)  # a pure function: no model is called
    return c.label, c.evidence


async def _judge_labeller(conn: psycopg.AsyncConnection, judge: Provider, concurrency: int) -> Labeller:
    """Label the answers that are recorded (the event the row came from), completed and not blank, and not
    labelled by this rubric before. A verdict the runner's judge already recorded with the answer is
    copied, not asked again; a second run asks nothing."""
    cur = await conn.execute(
        "SELECT e.event_id, coalesce(q.prompt, j.spec->>'probe_prompt', ''),"
        " CASE WHEN e.output->'judgement'->>'judge_version' = %(v)s THEN e.output->'judgement' END"
        " FROM executions e LEFT JOIN jobs j ON j.job_id = e.job_id"
        " LEFT JOIN LATERAL (SELECT x->>'prompt' AS prompt FROM jsonb_array_elements(j.spec->'questions') x"
        "   WHERE x->>'id' = e.question_id) q ON true"
        " WHERE e.status = 'completed' AND btrim(coalesce(e.answer, '')) <> ''"
        " AND NOT EXISTS (SELECT 1 FROM classifications c WHERE c.event_id = e.event_id"
        "   AND c.classifier_version = %(v)s)",
        {"v": JUDGE_VERSION},
    )
    todo = {event_id: (prompt, recorded) for event_id, prompt, recorded in await cur.fetchall()}
    slots = asyncio.Semaphore(concurrency)

    async def label(event: ExecutionCompleted) -> tuple[str, str | None] | None:
        question, recorded = todo.pop(event.event_id, (None, None))  # pop: a duplicate event is not judged twice
        if question is None or event.answer is None:
            return None
        if recorded is not None:
            return recorded["label"], recorded["reason"]
        async with slots:
            got = await verdict(judge, question, event.answer)
        return got.label, got.reason

    return label


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
