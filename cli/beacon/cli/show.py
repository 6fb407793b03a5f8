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
    expected = summary.expected
    done = min(summary.recorded, expected)
    filled = int(width * done / expected) if expected else 0
    counts = " ".join(f"{k}={v}" for k, v in sorted(summary.by_classification.items()))
    return safe(f"[{'#' * filled}{'.' * (width - filled)}] {summary.recorded}/{expected} {summary.status} {counts}")


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
        if summary and summary.recorded >= summary.expected:
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
    """Which catalogue the job asks with and each region's one language, and, per region, whether a runner
    has picked it up and which of its models have no route there — visible while the job runs, not at its
    deadline."""
    lines = []
    if summary.catalogue:
        label = summary.catalogue.get("label") or "unlabelled"
        lines.append(f"  catalogue: {label} ({summary.catalogue.get('version')})")
    if summary.languages:
        lines.append(f"  languages: {', '.join(f'{r} {lang}' for r, lang in summary.languages.items())}")
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
    return render(spec, rows)  # escapes every label and cell


def compare_text(doc: dict[str, Any]) -> str:
    """`beacon compare`: each job's header side by side, the transitions per question as a table, the totals
    (and per region and model), the cells that changed, then the cells of one job only. Every value is
    escaped: ids, labels and classes come from the projection or from an API."""
    from beacon.domain.cells import NO_QUESTION_LABEL, NO_QUESTION_TOKEN

    def q(token: Any) -> str:
        return NO_QUESTION_LABEL if token == NO_QUESTION_TOKEN else str(token)

    def langs(side: dict[str, Any]) -> str:
        return ", ".join(f"{r} {lang}" for r, lang in side["languages"].items())

    def catalogue(side: dict[str, Any]) -> str:
        label = side.get("catalogue_label")
        return f"{side.get('catalogue_version') or '(none)'}" + (f" ({label})" if label else "")

    def recorded(side: dict[str, Any]) -> str:
        pending = f", {side['pending']} pending" if side["pending"] else ""
        return f"{side['cells']} ({side['recorded']} recorded{pending})"

    def table(head: list[str], rows: list[list[str]]) -> list[str]:
        cells = [[safe(c) for c in row] for row in [head, *rows]]
        widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
        out = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
        out.insert(1, "  ".join("-" * w for w in widths))
        return out

    base, other, totals = doc["base"], doc["other"], doc["totals"]
    lines = [safe(f"compare {base['job_id']} (base) with {other['job_id']} (other)"), ""]
    header = [
        ["job", base["job_id"], other["job_id"]],
        ["submitted", base["submitted_at"] or "(unknown)", other["submitted_at"] or "(unknown)"],
        ["catalogue", catalogue(base), catalogue(other)],
        ["languages", langs(base), langs(other)],
        ["cells", recorded(base), recorded(other)],
    ]
    lines += table(["", "base", "other"], header)
    lines.append("")
    transitions = list(totals["transitions"])
    lines.append(
        f"shared cells {totals['shared']}: {totals['changed']} changed, {totals['unchanged']} unchanged;"
        f" only in base {totals['only_in_base']}, only in other {totals['only_in_other']}"
    )
    if transitions:
        lines.append("")
        rows = [
            [q(g["question_id"]), *(str(g["transitions"].get(t, "·")) for t in transitions)] for g in doc["by_question"]
        ]
        rows.append(["total", *(str(totals["transitions"][t]) for t in transitions)])
        lines += table(["question", *transitions], rows)
        lines.append("")
        for name, field in (("by region", "region"), ("by model", "model_id")):
            parts = [
                f"{g[field]}: " + ", ".join(f"{t} {n}" for t, n in g["transitions"].items())
                for g in doc[name.replace(" ", "_")]
            ]
            lines.append(safe(f"{name}: " + "; ".join(parts)))
    changed = [c for c in doc["cells"] if c["transition"] != "unchanged"]
    if changed:
        lines += ["", f"changed cells ({len(changed)}):"]
        lines += [
            "  " + line
            for line in table(
                ["question", "model", "region", "base", "other", "transition"],
                [
                    [
                        q(c["question_id"]),
                        c["model_id"],
                        c["region"],
                        f"{c['base']['status'] or 'pending'}/{c['base']['classification'] or '-'}",
                        f"{c['other']['status'] or 'pending'}/{c['other']['classification'] or '-'}",
                        c["transition"],
                    ]
                    for c in changed
                ],
            )
        ]
    for name, title in (("only_in_base", "only in base"), ("only_in_other", "only in other")):
        cells = doc[name]
        if not cells:
            continue
        lines += ["", f"{title} ({len(cells)}), not compared:"]
        lines += [
            "  " + line
            for line in table(
                ["question", "model", "region", "status", "classification"],
                [
                    [
                        q(c["question_id"]),
                        c["model_id"],
                        c["region"],
                        c["status"] or "pending",
                        c["classification"] or "-",
                    ]
                    for c in cells
                ],
            )
        ]
    return "\n".join(lines)
