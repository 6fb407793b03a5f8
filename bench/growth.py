"""How cost grows with size: the recorder's throughput and peak memory at 10k, 100k and 1M events, a rebuild
(`beacon replay recorder`) of each, the read API's latency at 1k, 10k and 100k cells per job, and the recorder's
throughput while the reader serves a steady load of matrices."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import psycopg

from beacon.infra.settings import Settings
from bench import api_load
from bench.env import (
    drop,
    free_port,
    fresh,
    peak_rss_mib,
    percentile,
    produce_workload,
    rate_until,
    service,
    stop,
)


def recorded(s: Settings, other_than: str = "") -> int:
    with psycopg.connect(s.database_url) as conn:
        (n,) = conn.execute("SELECT count(*) FROM executions WHERE job_id <> %s", (other_than,)).fetchone() or (0,)
        return n


def replay_seconds(s: Settings) -> float:
    """`beacon replay recorder` into fresh tables, as a user runs it: the command's start-up included."""
    began = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "beacon.cli", "replay", "recorder"],
        check=True,
        capture_output=True,
        env={
            **os.environ,
            "DATABASE_URL": s.database_url,
            "BEACON_TOPIC_NAMESPACE": s.topic_namespace,
            "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers,
        },
    )
    return time.monotonic() - began


def recorder_at(base: Settings, n: int) -> dict[str, Any]:
    s = fresh(base)
    try:
        asyncio.run(produce_workload(s, n, prefix=f"g{n}"))
        recorder = service(s, "recorder")
        try:
            rate = rate_until(lambda: recorded(s), n, timeout=3600)
            rss = peak_rss_mib(recorder.pid)
        finally:
            stop(recorder)
        replay_s = replay_seconds(s)
    finally:
        drop(base, s)
    return {
        "events": n,
        "per_s": rate,
        "peak_rss_mib": rss,
        "replay_s": replay_s,
        "replay_s_per_million": replay_s / n * 1e6,
    }


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health/live", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer /health/live in 60 s")


def reads_at(base: Settings, questions: int, models: int, regions: int, repeats: int = 30) -> dict[str, Any]:
    """The matrix of one finished job: the first request (built from the rows), then `repeats` more one at a
    time (served as built), then revalidations with the ETag (304, no body)."""
    s = fresh(base)
    try:
        cells = api_load.seed(s, "grow", questions, models, regions)
        port = free_port()
        reader = service(s, "reader", BEACON_HTTP_PORT=str(port))
        try:
            url = f"http://127.0.0.1:{port}"
            wait_ready(url)
            with httpx.Client(base_url=url, timeout=120) as http:
                began = time.perf_counter()
                first = http.get("/jobs/grow/matrix")
                first_ms = (time.perf_counter() - began) * 1000
                first.raise_for_status()
                warm, revalidated = [], []
                for _ in range(repeats):
                    began = time.perf_counter()
                    http.get("/jobs/grow/matrix").raise_for_status()
                    warm.append((time.perf_counter() - began) * 1000)
                etag = first.headers.get("etag")
                statuses = set()
                for _ in range(repeats if etag else 0):
                    began = time.perf_counter()
                    statuses.add(http.get("/jobs/grow/matrix", headers={"If-None-Match": etag}).status_code)
                    revalidated.append((time.perf_counter() - began) * 1000)
        finally:
            stop(reader)
    finally:
        drop(base, s)
    return {
        "cells": cells,
        "bytes": len(first.content),
        "first_ms": first_ms,
        "p50_ms": percentile(warm, 50),
        "p99_ms": percentile(warm, 99),
        "revalidate_p50_ms": percentile(revalidated, 50) if revalidated else None,
        "revalidate_statuses": sorted(statuses),
    }


def bench_growth(base: Settings, event_sizes: list[int], cell_sizes: list[int], out: dict[str, Any]) -> None:
    dims = {1_000: (40, 5, 5), 10_000: (400, 5, 5), 100_000: (1_000, 20, 5)}
    out["growth"] = {
        "recorder": [recorder_at(base, n) for n in event_sizes],
        "reads": [reads_at(base, *dims.get(c, (max(1, c // 25), 5, 5))) for c in cell_sizes],
    }


def _hammer_until(
    url: str, per_second: float, revalidate: bool, stopping: threading.Event, load: dict[str, Any]
) -> None:
    """/matrix at a steady rate, in 5 s rounds, until told to stop; what each round saw is added to `load`."""
    while not stopping.is_set():
        done = asyncio.run(api_load.hammer(url, "/jobs/load-10k/matrix", 5, 4, per_second, revalidate=revalidate))
        for key in ("requests", "errors"):
            load[key] = load.get(key, 0) + done[key]
        load.setdefault("p99s", []).append(done["p99_ms"])
        load.setdefault("rates", []).append(done["per_s"])


def bench_read_load(base: Settings, n: int, per_second: float, out: dict[str, Any]) -> None:
    """The recorder's throughput alone, then while the reader serves /matrix of a finished 10,000-cell job at a
    steady `per_second` from 4 clients: the same events, the same database, a fresh group each time."""
    s = fresh(base)
    try:
        api_load.seed(s, "load-10k")
        asyncio.run(produce_workload(s, n, prefix="rl"))
        port = free_port()
        reader = service(s, "reader", BEACON_HTTP_PORT=str(port))
        url = f"http://127.0.0.1:{port}"
        wait_ready(url)
        rates: dict[str, float] = {}
        loads: dict[str, dict[str, Any]] = {"loaded": {}, "revalidated": {}}
        try:
            # Alone; then with clients taking the whole matrix each time (gzipped, as httpx asks); then with
            # clients that keep what they got and revalidate it (a 304 each time), as a browser does.
            for run, revalidate in (("alone", False), ("loaded", False), ("revalidated", True)):
                with psycopg.connect(s.database_url, autocommit=True) as conn:
                    conn.execute("DELETE FROM executions WHERE job_id <> 'load-10k'")
                stopping = threading.Event()
                hammering = None
                if run in loads:
                    hammering = threading.Thread(
                        target=_hammer_until, args=(url, per_second, revalidate, stopping, loads[run]), daemon=True
                    )
                    hammering.start()
                    time.sleep(2)  # the load is steady before the recorder starts
                recorder = service(s, "recorder", BEACON_RECORDER_GROUP=f"{s.groups.recorder}.{run}")
                try:
                    rates[run] = rate_until(lambda: recorded(s, "load-10k"), n, timeout=3600)
                finally:
                    stop(recorder)
                    stopping.set()
                    if hammering is not None:
                        hammering.join(timeout=30)
        finally:
            stop(reader)
    finally:
        drop(base, s)
    out["read_load"] = {
        "events": n,
        "matrix_per_s_target": per_second,
        "recorder_alone_per_s": rates["alone"],
        **{
            f"{run}_{key}": value
            for run, load in loads.items()
            for key, value in {
                "matrix_per_s": sum(load.get("rates", [0])) / max(1, len(load.get("rates", []))),
                "matrix_p99_ms": max(load.get("p99s", [float("nan")])),
                "matrix_errors": load.get("errors", 0),
                "recorder_per_s": rates[run],
                "over_alone": rates[run] / rates["alone"],
            }.items()
        },
    }
