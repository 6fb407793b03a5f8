"""Pure: a job → the cells one region must run, as self-contained CellScheduled records, each carrying
only the texts of its own language (schemas/cells.py says which cells a job has)."""

from __future__ import annotations

from beacon.domain.cells import cells_of
from beacon.domain.results import Asked
from beacon.schemas.events import CellScheduled, JobSubmitted, ProducerInfo, RegionRef


def region_of(job: JobSubmitted, region_id: str) -> RegionRef | None:
    return next((r for r in job.regions if r.id == region_id), None)


def cells(job: JobSubmitted, region_id: str, producer: ProducerInfo) -> list[CellScheduled]:
    region = region_of(job, region_id)
    if region is None:
        return []
    models = {m.id: m for m in job.models}
    questions = {q.id: q for q in job.questions}
    out = []
    for cell in cells_of(job):
        if cell[0] != region_id:
            continue
        asked = Asked.of_job(job, cell)
        question = questions.get(asked.question_id) if asked.question_id is not None else None
        out.append(
            CellScheduled(
                producer=producer,
                job_id=job.job_id,
                region=RegionRef(id=region.id, display=region.display, system_prompt=asked.system_prompt),
                model=models[asked.model_id],
                question=question.model_copy(update={"prompt": asked.prompt, "prompts": {}}) if question else None,
                probe_prompt=None if question else asked.prompt,
                language=asked.language,
                params=job.params,
                deadline=job.deadline,
            )
        )
    return out
