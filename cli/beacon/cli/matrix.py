"""Pure: the per-question grid — questions as rows, model × region as columns, a classification per cell."""

from __future__ import annotations

from typing import Any

from beacon.domain.cells import NO_QUESTION_LABEL as NO_QUESTION
from beacon.infra.terminal import safe

SHOW = {"answered": "answered", "refused": "REFUSED", "empty": "empty", "error": "error"}


def grid(spec: dict[str, Any], rows: list[dict[str, Any]]) -> tuple[list[str], list[str], dict[tuple[str, str], str]]:
    """Returns (row labels, column labels, {(row, column): text}); missing cells are left out (pending).
    A cell is (question, model, region): one row per question."""
    questions = [q["id"] for q in spec["questions"]] or [NO_QUESTION]
    columns = [f"{m['id']} {r['display']}" for m in spec["models"] for r in spec["regions"]]
    display = {r["id"]: r["display"] for r in spec["regions"]}
    cells = {}
    for row in rows:
        text = SHOW.get(row["classification"], row["classification"])
        if row["status"] != "completed":
            text = row["status"]
        column = f"{row['model_id']} {display.get(row['region'], row['region'])}"
        cells[(row["question_id"] or NO_QUESTION, column)] = text
    return questions, columns, cells


def render(spec: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The grid as text for a terminal: every label and cell escaped (beacon.infra.terminal), since ids and
    display names come from the projection or from an API, not from this program."""
    questions, columns, raw = grid(spec, rows)
    cells = {key: safe(text) for key, text in raw.items()}
    labels = {label: safe(label) for label in [*questions, *columns]}
    first = max(len("question"), *(len(labels[q]) for q in questions))
    widths = [max(len(labels[c]), 8) for c in columns]
    lines = ["  ".join(["question".ljust(first), *(labels[c].ljust(w) for c, w in zip(columns, widths, strict=True))])]
    lines.append("  ".join(["-" * first, *("-" * w for w in widths)]))
    for q in questions:
        lines.append(
            "  ".join(
                [
                    labels[q].ljust(first),
                    *(cells.get((q, c), "·").ljust(w) for c, w in zip(columns, widths, strict=True)),
                ]
            )
        )
    return "\n".join(line.rstrip() for line in lines)
