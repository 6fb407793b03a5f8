"""Pure: a job → the cells one region must run, as self-contained CellScheduled records."""

from __future__ import annotations

from schemas.events import CellScheduled, JobSubmitted, ProducerInfo, QuestionText, RegionRef


def region_of(job: JobSubmitted, region_id: str) -> RegionRef | None:
    return next((r for r in job.regions if r.id == region_id), None)


def cells(job: JobSubmitted, region_id: str, producer: ProducerInfo) -> list[CellScheduled]:
    """One cell per model × question for this region, or one per model when the job has no questions."""
    region = region_of(job, region_id)
    if region is None:
        return []
    questions: list[QuestionText | None] = list(job.questions) or [None]
    return [
        CellScheduled(
            producer=producer,
            job_id=job.job_id,
            region=region,
            model=model,
            question=question,
            probe_prompt=job.probe_prompt,
            params=job.params,
            deadline=job.deadline,
        )
        for model in job.models
        for question in questions
    ]
