"""The seed's 72-cell job as a user runs it: `beacon submit` (the CLI's start-up included) against three
runners calling a local OpenAI-compatible server over HTTP with a fixed latency per call, timed to the 72nd
row; beside it, POST /jobs latency on the submitter's HTTP API under a few concurrent clients."""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from beacon.infra import tokens
from beacon.infra.catalogues import DEFAULT
from beacon.infra.settings import Settings
from bench.env import drop, free_port, fresh, percentile, service, service_env, stop

REGIONS = ("us-east", "eu-west", "asia-pacific")


def spec(job_id: str) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "questions": list(DEFAULT.questions),
        "models": list(DEFAULT.models),
        "regions": list(REGIONS),
    }


def routing(folder: Path, port: int, concurrency: int) -> Path:
    """Every model of every region to the local server, `concurrency` calls in flight per runner."""
    path = folder / "routing.toml"
    path.write_text(
        f'[defaults]\nprovider = "openai"\nendpoint = "http://127.0.0.1:{port}/v1"\nmodel = "bench"\n'
        f"concurrency = {concurrency}\nbackoff_base_s = 0.05\n"
    )
    return path


def recorded(conn: psycopg.Connection, job_id: str) -> int:
    return conn.execute("SELECT count(*) FROM executions WHERE job_id = %s", (job_id,)).fetchone()[0]  # type: ignore[index]


def run_job(s: Settings, conn: psycopg.Connection, folder: Path, job_id: str, cells: int) -> dict[str, float]:
    """Submit with the CLI and wait for every row; times from the moment the command is started."""
    path = folder / f"{job_id}.json"
    path.write_text(json.dumps(spec(job_id)))
    began = time.monotonic()
    submit = subprocess.run(
        [sys.executable, "-m", "beacon.cli", "submit", str(path)], env=service_env(s), capture_output=True, text=True
    )
    submitted = time.monotonic() - began
    if submit.returncode != 0:
        raise RuntimeError(f"beacon submit failed: {submit.stderr.strip()}")
    first = None
    deadline = began + 120
    while (n := recorded(conn, job_id)) < cells:
        if first is None and n:
            first = time.monotonic() - began
        if time.monotonic() > deadline:
            raise TimeoutError(f"{job_id}: {n} of {cells} rows after 120 s")
        time.sleep(0.01)
    done = time.monotonic() - began
    return {"submit_s": submitted, "first_row_s": first if first is not None else done, "makespan_s": done}


def bench_makespan(base: Settings, latency_ms: int, concurrency: int, repeats: int, out: dict[str, Any]) -> None:
    cells = len(DEFAULT.questions) * len(DEFAULT.models) * len(REGIONS)
    s = fresh(base, BEACON_RECORDER_BATCH_WAIT_MS="20")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.model_server", "--port", str(port), "--latency-ms", str(latency_ms)],
        stdout=subprocess.DEVNULL,
    )
    folder = Path(tempfile.mkdtemp(prefix="bench-makespan-"))
    env = {
        "BEACON_ROUTING_FILE": str(routing(folder, port, concurrency)),
        "BEACON_RUNNER_CONCURRENCY": str(concurrency),
        "BEACON_RECORDER_BATCH_WAIT_MS": "20",
    }
    procs = [service(s, "recorder", **env)]
    procs += [service(s, "runner", "--region", r, **env) for r in REGIONS]
    try:
        with psycopg.connect(s.database_url, autocommit=True) as conn:
            # A first job, not timed: every consumer has joined its group and every connection is open, as in a
            # deployment that is already running when a user submits.
            run_job(s, conn, folder, "makespan-warm", cells)
            runs = [run_job(s, conn, folder, f"makespan-{i}", cells) for i in range(repeats)]
    finally:
        stop(*procs)
        server.terminate()
        server.wait(timeout=10)
        drop(base, s)
    ideal = math.ceil(cells / (len(REGIONS) * concurrency)) * latency_ms / 1000
    makespans = [r["makespan_s"] for r in runs]
    out["makespan"] = {
        "cells": cells,
        "latency_ms": latency_ms,
        "concurrency_total": len(REGIONS) * concurrency,
        "ideal_s": ideal,
        "runs": runs,
        "makespan_s": statistics.median(makespans),
        "makespan_over_ideal": statistics.median(makespans) / ideal,
        "worst_over_ideal": max(makespans) / ideal,
        "submit_s": statistics.median(r["submit_s"] for r in runs),
        "first_row_s": statistics.median(r["first_row_s"] for r in runs),
    }


async def _post_jobs(url: str, secret: str, n: int, clients: int, prefix: str) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    queue = iter(range(n))

    async def client() -> None:
        nonlocal errors
        headers = {"Authorization": f"Bearer {secret}"}
        async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers) as http:
            for i in queue:
                began = time.perf_counter()
                response = await http.post("/jobs", json=spec(f"{prefix}-{i:05d}"))
                latencies.append((time.perf_counter() - began) * 1000)
                errors += response.status_code not in (200, 201, 202)

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, errors


def bench_post_jobs(base: Settings, n: int, clients: int, out: dict[str, Any]) -> None:
    s = fresh(base)
    try:
        with psycopg.connect(s.database_url) as conn:
            _, secret = tokens.create(conn, "bench", True, 100_000_000, 1_000)
            conn.commit()
        port = free_port()
        api = service(s, "submitter-api", "--port", str(port))
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(f"{url}/jobs", timeout=1)  # any answer: it is serving (it has no /health)
                    break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("the submitter API did not become ready in 60 s")
                time.sleep(0.2)
            asyncio.run(_post_jobs(url, secret, 20, clients, "warm"))  # warm: connections, the token's cache
            began = time.monotonic()
            latencies, errors = asyncio.run(_post_jobs(url, secret, n, clients, "post"))
            elapsed = time.monotonic() - began
        finally:
            stop(api)
    finally:
        drop(base, s)
    out["post_jobs"] = {
        "jobs": n,
        "clients": clients,
        "per_s": n / elapsed,
        "errors": errors,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
    }
