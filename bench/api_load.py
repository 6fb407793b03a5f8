"""Load check of the read API on a 10,000-cell job (not a timed test): requests per second for the
matrix and the executions endpoints, with a few concurrent clients on loopback.

The catalogue caps a real job at 8 × 3 × 3 = 72 cells, so the 10,000-cell job (400 questions × 5
models × 5 regions) is written straight into the projection: the API reads the projection only.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg

from beacon.infra.settings import Settings

QUESTIONS, MODELS, REGIONS = 400, 5, 5


def seed(
    settings: Settings, job_id: str, questions: int = QUESTIONS, models: int = MODELS, regions: int = REGIONS
) -> int:
    """A finished job of questions × models × regions cells, written straight into the projection."""
    spec = {
        "job_id": job_id,
        "questions": [
            {"id": f"q{i:03d}", "category": "load", "prompts": {"en": f"question {i}"}} for i in range(questions)
        ],
        "models": [{"id": f"m{i}", "name": f"model {i}"} for i in range(models)],
        "regions": [
            {"id": f"r{i}", "display": f"R{i}", "language": "en", "system_prompt": "-"} for i in range(regions)
        ],
        "params": {"temperature": 0.1, "max_tokens": 500, "seed": None},
    }
    at = datetime.now(UTC)
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(
            "INSERT INTO jobs (job_id, spec_sha256, expected_executions, submitted_at, deadline, spec, event_id,"
            " catalogue_version) VALUES (%s, 'load', %s, %s, %s, %s, %s, 'sha256:0000000000000000')",
            (job_id, questions * models * regions, at, at, json.dumps(spec), uuid.uuid4()),
        )
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY executions (job_id, region, model_id, question_id, language, provider, status, classification,"
                " classifier_version, answer, output, receipt, started_at, completed_at, event_id) FROM STDIN"
            ) as copy,
        ):
            for q in range(questions):
                for m in range(models):
                    for r in range(regions):
                        label = "refused" if (q + m + r) % 7 == 0 else "answered"
                        copy.write_row(
                            (
                                job_id,
                                f"r{r}",
                                f"m{m}",
                                f"q{q:03d}",
                                "en",
                                "simulated",
                                "completed",
                                label,
                                "rules-2",
                                "an answer of a few words " * 20,
                                '{"attempts": []}',
                                "{}",
                                at,
                                at,
                                uuid.uuid4(),
                            )
                        )
    return questions * models * regions


async def hammer(
    base_url: str, path: str, seconds: float, clients: int, per_second: float | None = None, revalidate: bool = False
) -> dict[str, Any]:
    """`clients` clients asking for `path` for `seconds`, as fast as answers come or, with per_second, at that
    steady rate in all; requests per second and latency percentiles. With `revalidate`, each client keeps the
    body it got and asks again with its ETag, as a browser or the portal does (a 304 is an answer)."""
    done = errors = 0
    latencies: list[float] = []
    began = time.monotonic()
    stop_at = time.monotonic() + seconds

    async def client() -> None:
        nonlocal done, errors
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            etag: str | None = None
            while time.monotonic() < stop_at:
                if per_second is not None:  # the next slot of this client's share of the rate
                    slot = began + (done + errors) / per_second
                    if (wait := slot - time.monotonic()) > 0:
                        await asyncio.sleep(wait)
                sent = time.perf_counter()
                try:
                    response = await http.get(path, headers={"If-None-Match": etag} if etag else None)
                except httpx.HTTPError:
                    errors += 1  # counted and reported, not hidden
                    continue
                latencies.append((time.perf_counter() - sent) * 1000)
                done += 1
                errors += response.status_code not in ((200, 304) if etag else (200,))
                if revalidate and response.status_code == 200:
                    etag = response.headers.get("etag")

    await asyncio.gather(*(client() for _ in range(clients)))
    ordered = sorted(latencies) or [float("nan")]
    return {
        "path": path,
        "requests": done,
        "errors": errors,
        "per_s": done / (time.monotonic() - began),
        "p50_ms": ordered[len(ordered) // 2],
        "p99_ms": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
    }
