"""Pure: which cells of a job belong to one region."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.events import JobSubmitted, ModelRef, QuestionText, RegionRef


@dataclass(frozen=True)
class Cell:
    job_id: str
    region: RegionRef
    model: ModelRef
    question: QuestionText | None  # None: the job has no questions; the probe prompt is asked

    @property
    def question_id(self) -> str | None:
        return self.question.id if self.question else None


def region_of(job: JobSubmitted, region_id: str) -> RegionRef | None:
    return next((r for r in job.regions if r.id == region_id), None)


def cells(job: JobSubmitted, region_id: str) -> list[Cell]:
    """One cell per model × question for this region, or one per model when the job has no questions."""
    region = region_of(job, region_id)
    if region is None:
        return []
    questions: list[QuestionText | None] = list(job.questions) or [None]
    return [Cell(job.job_id, region, model, question) for model in job.models for question in questions]
