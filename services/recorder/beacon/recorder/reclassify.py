"""`beacon reclassify [--judge]`: label every recorded answer again, from the executions topic, into the
`classifications` table beside the recorded label — with the current rules (beacon.domain.classify), or with
a judge: any object with a rubric version and a `verdict(question, answer)` (the CLI hands in
beacon.providers.judge's, built from the routing file), so the recorder itself never calls a model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg

from beacon.domain.classify import CLASSIFIER_VERSION, classify
from beacon.infra import kafka
from beacon.infra.keys import TrustFile
from beacon.infra.projection import CLASSIFICATION_COLUMNS, columns, copy_rows
from beacon.infra.settings import Settings
from beacon.schemas.events import ExecutionCompleted, Judgement


@dataclass(frozen=True)
class ReclassifyReport:
    version: str
    examined: int
    classified: int
    changed: int
    # (label recorded with the execution, label of this version) → cells, for every cell of this version
    transitions: dict[tuple[str, str], int]


class Judge(Protocol):
    """A second opinion on recorded answers, from a model asked a versioned rubric."""

    version: str  # the rubric's version: each label is stored under it
    concurrency: int  # questions in flight at once

    async def verdict(self, question: str, answer: str) -> Judgement: ...


Labeller = Callable[[ExecutionCompleted], Awaitable[tuple[str, str | None] | None]]


async def reclassify(settings: Settings, judge: Judge | None = None) -> ReclassifyReport:
    """Label every recorded answer again, from the executions topic, into `classifications` beside the
    recorded label: with the current rules (a pure function), or with `judge` — a model asked the rubric
    about each recorded, completed answer it has not judged yet. The answering models are never called."""
    names = settings.topics
    reader = kafka.TopicReader(settings, [names.executions_completed])
    trust = TrustFile(settings.keys_dir)
    await reader.start()
    version = judge.version if judge is not None else CLASSIFIER_VERSION
    examined = classified = 0
    try:
        async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
            label = await _judge_labeller(conn, judge) if judge is not None else _rules_labeller
            async for records in reader.to_end():
                events = []
                for record in records:
                    try:
                        events.append(kafka.read_event(record, ExecutionCompleted, trust=trust))
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
        await reader.stop()
    changed = sum(n for (old, new), n in transitions.items() if old != new)
    return ReclassifyReport(version, examined, classified, changed, transitions)


async def _rules_labeller(event: ExecutionCompleted) -> tuple[str, str | None]:
    c = classify(event.status, event.answer)  # a pure function: no model is called
    return c.label, c.evidence


async def _judge_labeller(conn: psycopg.AsyncConnection, judge: Judge) -> Labeller:
    """Label the answers that are recorded (the event the row came from), completed and not blank, and not
    labelled by this rubric before. A verdict the runner's judge already recorded with the answer is
    copied, not asked again; a second run asks nothing."""
    cur = await conn.execute(
        "SELECT e.event_id, coalesce(q.prompt, j.spec->'probe_prompts'->>e.language, ''),"
        " CASE WHEN e.output->'judgement'->>'judge_version' = %(v)s THEN e.output->'judgement' END"
        " FROM executions e LEFT JOIN jobs j ON j.job_id = e.job_id"
        " LEFT JOIN LATERAL (SELECT x->'prompts'->>e.language AS prompt"
        "   FROM jsonb_array_elements(j.spec->'questions') x"
        "   WHERE x->>'id' = e.question_id) q ON true"
        " WHERE e.status = 'completed' AND btrim(coalesce(e.answer, '')) <> ''"
        " AND NOT EXISTS (SELECT 1 FROM classifications c WHERE c.event_id = e.event_id"
        "   AND c.classifier_version = %(v)s)",
        {"v": judge.version},
    )
    todo = {event_id: (prompt, recorded) for event_id, prompt, recorded in await cur.fetchall()}
    slots = asyncio.Semaphore(judge.concurrency)

    async def label(event: ExecutionCompleted) -> tuple[str, str | None] | None:
        question, recorded = todo.pop(event.event_id, (None, None))  # pop: a duplicate event is not judged twice
        if question is None or event.answer is None:
            return None
        if recorded is not None:
            return recorded["label"], recorded["reason"]
        async with slots:
            got = await judge.verdict(question, event.answer)
        return got.label, got.reason

    return label


async def _insert_classifications(conn: psycopg.AsyncConnection, rows: list[tuple[Any, ...]]) -> int:
    if not rows:
        return 0
    cols = columns(CLASSIFICATION_COLUMNS)
    picked = ", ".join(f"i.{c}" for c in CLASSIFICATION_COLUMNS)
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS incoming_classifications ON COMMIT DELETE ROWS AS"
            f" SELECT {cols} FROM classifications WITH NO DATA"
        )
        await copy_rows(cur, "incoming_classifications", CLASSIFICATION_COLUMNS, rows)
        # Only the recorded answer of each cell counts: the event the executions row was projected from.
        await cur.execute(
            f"INSERT INTO classifications ({cols}) SELECT {picked} FROM incoming_classifications i"
            " JOIN executions e ON e.event_id = i.event_id ON CONFLICT DO NOTHING"
        )
        return cur.rowcount
