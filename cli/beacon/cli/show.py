"""What the CLI shows of a job — its summary, a progress line while it runs, where it runs, its grid —
read from the database or the reader's API (reading.py). Used by `beacon status`, `matrix` and the demo."""

from __future__ import annotations

import sys
import time
from typing import Any

from beacon.infra.settings import Settings
from beacon.infra.terminal import safe


class UserError(Exception):
    """Wrong input from the user: the message says what and how to fix it."""


def summary_of(settings: Settings, job_id: str, api: str | None = None) -> Any:
    from beacon.cli.reading import source

    summary = source(settings, api).summary(job_id)
    if summary is None:
        raise UserError(f"no job {job_id!r} is recorded (is the recorder running? `make demo` starts it)")
    return summary


def progress_line(summary: Any, width: int = 30) -> str:
    expected = summary.expected or 0
    done = min(summary.recorded, expected) if expected else 0
    filled = int(width * done / expected) if expected else 0
    counts = " ".join(f"{k}={v}" for k, v in sorted(summary.by_classification.items()))
    stray = f" (+{summary.stray} stray)" if summary.stray else ""
    return safe(
        f"[{'#' * filled}{'.' * (width - filled)}] {summary.recorded}/{summary.expected or '?'} "
        f"{summary.status or 'unknown'} {counts}{stray}"
    )


def watch(settings: Settings, job_id: str, timeout: float, out: Any = sys.stdout, api: str | None = None) -> Any:
    """Redraw a progress line until the job has every cell recorded; returns the final summary."""
    began = time.monotonic()
    redraw = out.isatty()  # a terminal gets one line redrawn; a log file gets a line per change
    shown = ""
    while True:
        try:
            summary = summary_of(settings, job_id, api)
        except UserError:
            summary = None  # not projected yet: the recorder has not seen JobSubmitted
        line = progress_line(summary) if summary else f"[{'.' * 30}] waiting for {safe(job_id)} to be recorded"
        if line != shown:
            print(f"\r{line:<100}" if redraw else line, end="" if redraw else "\n", file=out, flush=True)
            shown = line
        if summary and summary.expected and summary.recorded >= summary.expected:
            if redraw:
                print(file=out)
            return summary
        if time.monotonic() - began > timeout:
            if redraw:
                print(file=out)
            raise TimeoutError(
                f"{job_id} is not finished after {timeout:.0f} s; are the runners and the recorder running? "
                "Their logs are in .beacon/logs/."
            )
        time.sleep(0.5)


def where_text(summary: Any) -> list[str]:
    """Which catalogue and languages the job asks with, and, per region, whether a runner has picked it
    up and which of its models have no route there — visible while the job runs, not at its deadline."""
    lines = []
    if summary.catalogue:
        label = summary.catalogue.get("label") or "unlabelled"
        lines.append(f"  catalogue: {label} ({summary.catalogue.get('version')})")
    if summary.languages:
        lines.append(f"  languages: {', '.join(summary.languages)}")
    done = summary.status in ("completed", "partial", "failed")
    for r in summary.regions:
        if r["picked_up"]:
            providers = ", ".join(f"{m}→{p}" for m, p in r["providers"].items())
            lines.append(f"  region {r['region']}: picked up by its runner ({providers})")
            if r["unrouted"]:
                lines.append(
                    f"    no route of their own there: {', '.join(r['unrouted'])} (sent to the routing file's"
                    " defaults; add regions.<region>.<model> to route them)"
                )
        elif not done:
            lines.append(
                f"  region {r['region']}: no runner has picked the job up yet"
                f" (is `beacon runner --region {r['region']}` running?)"
            )
    return lines


def counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "none"


def matrix_text(settings: Settings, job_id: str, api: str | None = None) -> str:
    from beacon.cli.matrix import render
    from beacon.cli.reading import source

    summary_of(settings, job_id, api)
    spec, rows = source(settings, api).grid(job_id)
    if not spec.get("models"):
        raise UserError(f"{job_id}: JobSubmitted is not recorded yet, so the grid's shape is unknown")
    return render(spec, rows)  # escapes every label and cell
