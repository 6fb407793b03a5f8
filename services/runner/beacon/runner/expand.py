"""Pure: a job → the cells one region must run, as self-contained CellScheduled records, each carrying
only the texts of its own language (beacon.domain.cells says which cells a job has); and the expander's
whole decision for one JobSubmitted (`decide`): what to emit, given the jobs this region expanded already."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from beacon.domain.cells import cells_of
from beacon.domain.results import Asked
from beacon.providers.routing import Routing
from beacon.schemas.events import CellScheduled, JobExpanded, JobSubmitted, ProducerInfo, RegionRef, encode
from beacon.schemas.topics import Topics

# (topic, key, value): one record to produce.
Record = tuple[str, bytes, bytes]


# Why a job is skipped: not this region's (nothing to say), or expanded by this region before.
NOT_THIS_REGION = "not this region's"
ALREADY_EXPANDED = "already expanded"
ALREADY_EXPANDED_OTHER_SPEC = "already expanded, other spec"


@dataclass(frozen=True)
class Expansion:
    """What to emit for one job: its cells on the region's work topic, then the JobExpanded that marks it
    done (both in one transaction); `records` is empty when there is nothing to do, and `skipped` says why."""

    records: list[Record]
    cells: int = 0
    skipped: str | None = None  # NOT_THIS_REGION, ALREADY_EXPANDED or ALREADY_EXPANDED_OTHER_SPEC


def decide(
    job: JobSubmitted,
    region: str,
    expanded: Mapping[str, str],
    routing: Routing,
    producer: ProducerInfo,
    names: Topics,
    sign: Callable[[Any], Any],
) -> Expansion:
    """`expanded`: job_id → spec hash of every job this region has expanded (read from its compacted topic)."""
    if region_of(job, region) is None:
        return Expansion([], skipped=NOT_THIS_REGION)
    if job.job_id in expanded:
        same = expanded[job.job_id] == job.spec_sha256
        return Expansion([], skipped=ALREADY_EXPANDED if same else ALREADY_EXPANDED_OTHER_SPEC)
    scheduled = cells(job, region, producer)
    # Which provider each model goes to here, and which have no route of their own: the recorder projects
    # this, so `beacon status` shows it while the job runs, not only at its deadline.
    done = JobExpanded(
        producer=producer,
        job_id=job.job_id,
        region=region,
        spec_sha256=job.spec_sha256,
        cells=len(scheduled),
        providers={m.id: routing.route(region, m.id).provider for m in job.models},
        unrouted=[m.id for m in job.models if not routing.has_own_route(region, m.id)],
    )
    out = [(names.work(region), c.key.encode(), encode(sign(c))) for c in scheduled]
    out.append((names.expanded(region), done.key.encode(), encode(sign(done))))
    return Expansion(out, cells=len(scheduled))


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
                region=region,
                model=models[asked.model_id],
                question=question.model_copy(update={"prompts": {region.language: asked.prompt}}) if question else None,
                probe_prompt=None if question else asked.prompt,
                params=job.params,
                deadline=job.deadline,
            )
        )
    return out
