"""Pure: a job → the cells one region must run, as self-contained CellScheduled records."""

from __future__ import annotations

from beacon.schemas.cells import question_slots
from beacon.schemas.events import CellScheduled, JobSubmitted, ProducerInfo, RegionRef


def region_of(job: JobSubmitted, region_id: str) -> RegionRef | None:
    return next((r for r in job.regions if r.id == region_id), None)


def cells(job: JobSubmitted, region_id: str, producer: ProducerInfo) -> list[CellScheduled]:
    """One cell per model × question for this region (schemas/cells.py: one per model without questions)."""
    region = region_of(job, region_id)
    if region is None:
        return []
    by_id = {q.id: q for q in job.questions}
    return [
        CellScheduled(
            producer=producer,
            job_id=job.job_id,
            region=region,
            model=model,
            question=by_id[question_id] if question_id is not None else None,
            probe_prompt=job.probe_prompt,
            params=job.params,
            deadline=job.deadline,
        )
        for model in job.models
        for question_id in question_slots(list(by_id))
    ]
