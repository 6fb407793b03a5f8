"""Pure: whether the worker may run a CellScheduled it was handed (`refusal`: None, or why not).

A cell on the work topic is only a claim; the job on jobs.submitted (written by the submitter alone) is
the authority. A cell is run only when it is exactly one of its job's cells for this worker's region and
asks exactly what the job asks (the same model, prompt, language, system prompt, parameters and deadline):
so a record forged or misrouted onto the topic can never run a model for another region, ask more tokens
or a hotter temperature than the job allows, or add a cell the job never had. What is refused is
dead-lettered with the reason, never run.
"""

from __future__ import annotations

from beacon.domain.cells import CellKey
from beacon.domain.results import Asked
from beacon.schemas.commands import MAX_TOKENS
from beacon.schemas.events import CellScheduled, JobSubmitted

# The reasons, as the dead-letter record's header and the worker's counter name them.
OTHER_REGION = "other region"
WRONG_KEY = "wrong key"
NOT_A_RUNNER = "not produced by this region's runner"
OVER_LIMIT = "over the limits"
UNKNOWN_JOB = "unknown job"
NOT_A_CELL_OF_THE_JOB = "not a cell of its job"
NOT_AS_ASKED = "not as its job asks"


def refusal(cell: CellScheduled, key: bytes | None, region: str, job: JobSubmitted | None) -> tuple[str, str] | None:
    """(reason, why) when the cell must not run; `key` is its Kafka key, `job` the JobSubmitted of its
    job_id (None when jobs.submitted has none)."""
    if cell.region.id != region:
        return OTHER_REGION, f"a cell of region {cell.region.id!r} on the work topic of region {region!r}"
    if key != cell.key.encode():
        got = key.decode(errors="replace")[:200] if key is not None else None
        return WRONG_KEY, f"Kafka key {got!r} is not the cell's own key {cell.key!r}"
    if cell.producer.service != "runner" or cell.producer.region != region:
        return NOT_A_RUNNER, (
            f"produced by {cell.producer.service!r} of region {cell.producer.region!r}; only the expander of "
            f"region {region!r} schedules its cells"
        )
    if cell.params.max_tokens > MAX_TOKENS:
        return OVER_LIMIT, f"max_tokens {cell.params.max_tokens} is over the {MAX_TOKENS} any job may ask"
    if job is None:
        return UNKNOWN_JOB, f"job {cell.job_id!r} is not on jobs.submitted (or its deadline passed long ago)"
    cell_key: CellKey = (region, cell.model.id, cell.question.id if cell.question else None)
    missing = _not_in_job(job, cell_key)
    if missing:
        return NOT_A_CELL_OF_THE_JOB, f"job {job.job_id!r} has no {missing}"
    differences = _differences(cell, job, cell_key)
    if differences:
        return NOT_AS_ASKED, "; ".join(differences)
    return None


def _not_in_job(job: JobSubmitted, cell: CellKey) -> str | None:
    region, model_id, question_id = cell
    if all(r.id != region for r in job.regions):
        return f"region {region!r}"
    if all(m.id != model_id for m in job.models):
        return f"model {model_id!r}"
    if question_id is None and job.questions:
        return "cell without a question (it has questions)"
    if question_id is not None and all(q.id != question_id for q in job.questions):
        return f"question {question_id!r}"
    return None


def _differences(cell: CellScheduled, job: JobSubmitted, key: CellKey) -> list[str]:
    """What the cell asks that its job does not, field by field (parameters named, texts only said to differ)."""
    out = []
    wanted = job.params.model_dump()
    for name, value in cell.params.model_dump().items():
        if value != wanted[name]:
            out.append(f"{name} {value!r} where its job asks {wanted[name]!r}")
    region = next(r for r in job.regions if r.id == key[0])
    model = next(m for m in job.models if m.id == key[1])
    if cell.region != region:
        out.append("its region's language, system prompt or name differ from its job's")
    if cell.model != model:
        out.append(f"its model {cell.model.id!r} is described otherwise than in its job")
    if cell.deadline != job.deadline:
        out.append(f"deadline {cell.deadline.isoformat()} where its job's is {job.deadline.isoformat()}")
    if Asked.of_cell(cell).prompt != Asked.of_job(job, key).prompt:
        out.append("its prompt differs from its job's")
    return out
