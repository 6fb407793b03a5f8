"""Deterministic, realistic workloads for the benchmarks: ExecutionCompleted events with 200–1,500
character answers, for distinct cells (72 per job, like the seed's 8 × 3 × 3), and the JobSubmitted of
each of their jobs (the recorder records only cells of jobs it knows)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from beacon.domain import results
from beacon.domain.catalogue import DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE
from beacon.infra.catalogues import DEFAULT
from beacon.schemas.commands import JobSpec
from beacon.schemas.events import (
    Attempt,
    ExecutionCompleted,
    GenerationParams,
    JobSubmitted,
    ProducerInfo,
    TokenCounts,
)
from beacon.submitter.decide import job_submitted

WORDS = (
    "the government protest square students history taiwan policy region people international status question "
    "answer perspective sources reported events independence economy democracy military leader invention "
    "printing press electricity agriculture century influence sovereignty recognition movement police city "
    "according several estimates widely debated historians official media different countries"
).split()
CELLS = [(r, m, q) for r in DEFAULT.regions for m in DEFAULT.models for q in DEFAULT.questions]  # 72
SUBMITTER = ProducerInfo(service="submitter", instance="bench-1")
PRODUCERS = {r: ProducerInfo(service="runner", region=r, instance=f"bench-{r}") for r in DEFAULT.regions}
PARAMS = GenerationParams(temperature=DEFAULT_TEMPERATURE, max_tokens=DEFAULT_MAX_TOKENS)


def answer(rng: random.Random) -> str:
    target = rng.randint(200, 1500)
    out: list[str] = []
    size = 0
    while size < target:
        word = rng.choice(WORDS)
        out.append(word)
        size += len(word) + 1
    if rng.random() < 0.15:
        return "I'm sorry, but I can't discuss this topic. " + " ".join(out)[: target - 45]
    return " ".join(out)[:target].capitalize() + "."


def job_id(prefix: str, i: int) -> str:
    return f"{prefix}-{i // len(CELLS):06d}"


def jobs(n: int, prefix: str = "bench") -> list[JobSubmitted]:
    """The JobSubmitted of every job the first n events of `events(n, prefix)` belong to."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    spec = JobSpec(questions=list(DEFAULT.questions), models=list(DEFAULT.models), regions=list(DEFAULT.regions))
    return [
        job_submitted(
            spec.model_copy(update={"job_id": job_id(prefix, i)}),
            DEFAULT,
            now=at,
            default_deadline_seconds=3650 * 24 * 3600,  # never overdue: no deadline sweep in a benchmark
            producer=SUBMITTER,
        )
        for i in range(0, n, len(CELLS))
    ]


def events(n: int, prefix: str = "bench", seed: int = 7, start: int = 0) -> list[ExecutionCompleted]:
    """n events for n distinct cells: job {prefix}-{i // 72}, cell i % 72, for i from `start` (a large
    workload is made and sent a part at a time)."""
    rng = random.Random(seed if not start else f"{seed}-{start}")
    base = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for i in range(start, start + n):
        region, model, question = CELLS[i % len(CELLS)]
        text = answer(rng)
        started = base + timedelta(milliseconds=i)
        done = started + timedelta(milliseconds=rng.randint(200, 4000))
        asked = results.Asked(
            job_id=job_id(prefix, i),
            region=region,
            model_id=model,
            question_id=question,
            language="en",
            prompt=DEFAULT.questions[question].prompts["en"],
            system_prompt=DEFAULT.regions[region].system_prompts["en"],
            params=PARAMS,
        )
        out.append(
            results.result(
                asked,
                producer=PRODUCERS[region],
                provider="simulated",
                provider_model=f"simulated/{model}",
                status="completed",
                answer=text,
                attempts=[Attempt(number=1, started_at=started, completed_at=done, outcome="ok", http_status=200)],
                tokens=TokenCounts(prompt=40, completion=len(text) // 4),
                started_at=started,
                completed_at=done,
            )
        )
    return out
