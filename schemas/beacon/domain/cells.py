"""The cells of a job, the one definition: one cell per (region, model, question), the key of the unique
index on executions (job_id, region, model_id, question_id). Each region of a job asks in one language, a
property of (job, region), not of the cell. A job without questions has one cell per (region, model),
whose question is "none".

How "no question" is written, once for each place it appears: NULL in the database and None in Python
and events, an empty last part in a Kafka key (events.execution_key), `-` in URLs and API documents
(NO_QUESTION_TOKEN), `(no question)` on screen (NO_QUESTION_LABEL).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

NO_QUESTION_TOKEN = "-"
NO_QUESTION_LABEL = "(no question)"

CellKey = tuple[str, str, str | None]  # (region, model_id, question_id or None)


def cell_count(regions: int, models: int, questions: int) -> int:
    return regions * models * max(1, questions)


def question_slots(question_ids: Sequence[str]) -> list[str | None]:
    """The questions a job's cells are asked: its own, or the single "no question"."""
    return list(question_ids) or [None]


class _HasId(Protocol):
    id: str


class _Job(Protocol):
    @property
    def regions(self) -> Sequence[_HasId]: ...
    @property
    def models(self) -> Sequence[_HasId]: ...
    @property
    def questions(self) -> Sequence[_HasId]: ...


def cells_of(job: _Job) -> list[CellKey]:
    """Every cell of a job (JobSubmitted or anything shaped like it), regions outermost."""
    questions = question_slots([q.id for q in job.questions])
    return [(r.id, m.id, q) for r in job.regions for m in job.models for q in questions]


def missing_cells(job: _Job, recorded: set[CellKey]) -> list[CellKey]:
    return [cell for cell in cells_of(job) if cell not in recorded]


def question_token(question_id: str | None) -> str:
    return NO_QUESTION_TOKEN if question_id is None else question_id


def question_from_token(token: str) -> str | None:
    return None if token == NO_QUESTION_TOKEN else token
