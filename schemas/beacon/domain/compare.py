"""Pure: two jobs compared cell by cell — `beacon compare`, `GET /compare`, the portal's compare view.

Its two uses: the same questions asked in English and in Chinese (two jobs, one language each), and the same
job asked again later (drift). Cells match by (region, model_id, question_id), never by language: each
region of a job asks in one language, and the language is what differs between the two jobs, shown per
region at the top.

A job's cells are its spec's: every (region, model, question) of its JobSubmitted, recorded or not (a cell
not recorded yet is `pending`; the recorder records no other cell). Each cell's **outcome** is its
classification when the call completed (answered / refused / empty / error), else its status (failed /
timeout), or `pending`; the **transition** from base to other is `unchanged` or "answered → refused",
"refused → answered", "answered → failed", "answered → timeout", ….
Cells of one job only are listed apart (`only_in_base`, `only_in_other`); the rest, the shared cells, are
compared and summed per question, per region and per model.

Input: the projected job (its jobs row: job_id, submitted_at, catalogue_version, spec) and its recorded rows
(region, model_id, question_id, language, status, classification). No I/O; queries.py reads, this decides.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from beacon.domain.cells import question_token

OUTCOMES = ("answered", "refused", "empty", "error", "failed", "timeout", "pending")
UNCHANGED = "unchanged"
ARROW = " → "

Key = tuple[str, str, str | None]  # (region, model_id, question_id or None)


@dataclass(frozen=True)
class Row:
    region: str
    model_id: str
    question_id: str | None
    language: str | None
    status: str
    classification: str

    @property
    def key(self) -> Key:
        return (self.region, self.model_id, self.question_id)


@dataclass(frozen=True)
class Side:
    """One job as the comparison sees it: its header and its cells, each recorded row or None (pending)."""

    job_id: str
    submitted_at: str | None
    catalogue_version: str | None
    catalogue_label: str | None
    regions: tuple[str, ...]
    models: tuple[str, ...]
    questions: tuple[str | None, ...]  # (None,) for a job without questions
    languages: dict[str, str | None]  # region → the one language it asks in (None: none recorded)
    cells: dict[Key, Row | None]  # in the spec's order: question, then model, then region

    def header(self) -> dict[str, Any]:
        recorded = sum(row is not None for row in self.cells.values())
        return {
            "job_id": self.job_id,
            "submitted_at": self.submitted_at,
            "catalogue_version": self.catalogue_version,
            "catalogue_label": self.catalogue_label,
            "languages": dict(self.languages),
            "regions": list(self.regions),
            "models": list(self.models),
            "questions": [question_token(q) for q in self.questions],
            "cells": len(self.cells),
            "recorded": recorded,
            "pending": len(self.cells) - recorded,
        }


def _ids(items: Any) -> list[str]:
    return [x["id"] for x in items or [] if isinstance(x, Mapping) and isinstance(x.get("id"), str)]


def _when(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else (None if value is None else str(value))


def side_from(job: Mapping[str, Any], rows: Iterable[Mapping[str, Any]]) -> Side:
    """A side from its jobs row (job_id, submitted_at, catalogue_version, spec: the JobSubmitted) and its
    recorded rows."""
    spec = job.get("spec") or {}
    job_id = str(job["job_id"])
    regions, models = _ids(spec.get("regions")), _ids(spec.get("models"))
    questions: list[str | None] = list(_ids(spec.get("questions"))) or [None]
    languages = {
        r["id"]: r["language"] if isinstance(r.get("language"), str) else None
        for r in spec.get("regions") or []
        if isinstance(r, Mapping) and isinstance(r.get("id"), str)
    }
    recorded: dict[Key, list[Row]] = {}
    for raw in rows:
        row = Row(
            raw["region"],
            raw["model_id"],
            raw["question_id"],
            raw.get("language"),
            raw["status"],
            raw["classification"],
        )
        recorded.setdefault(row.key, []).append(row)
    cells: dict[Key, Row | None] = {}
    for q in questions:
        for m in models:
            for r in regions:
                found = recorded.get((r, m, q))
                cells[(r, m, q)] = found[0] if found else None
    catalogue = spec.get("catalogue") if isinstance(spec.get("catalogue"), Mapping) else {}
    label = catalogue.get("label")
    return Side(
        job_id=job_id,
        submitted_at=_when(job.get("submitted_at")),
        catalogue_version=job.get("catalogue_version") or catalogue.get("version"),
        catalogue_label=label if isinstance(label, str) else None,
        regions=tuple(regions),
        models=tuple(models),
        questions=tuple(questions),
        languages=languages,
        cells=cells,
    )


def outcome(row: Row | None) -> str:
    """answered / refused / empty / error for a completed call, failed / timeout otherwise, pending if unrecorded."""
    if row is None:
        return "pending"
    return row.classification if row.status == "completed" else row.status


def transition(base: str, other: str) -> str:
    return UNCHANGED if base == other else f"{base}{ARROW}{other}"


def _order(label: str) -> tuple[int, int, int, str]:
    """Changed transitions first, by their outcomes' order, `unchanged` last."""
    if label == UNCHANGED:
        return (1, 0, 0, label)
    a, _, b = label.partition(ARROW)
    rank = {o: i for i, o in enumerate(OUTCOMES)}
    return (0, rank.get(a, len(OUTCOMES)), rank.get(b, len(OUTCOMES)), label)


def _counted(labels: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return {k: counts[k] for k in sorted(counts, key=_order)}


def _cell_side(row: Row | None) -> dict[str, Any]:
    if row is None:
        return {"language": None, "status": None, "classification": None, "outcome": "pending"}
    return {
        "language": row.language,
        "status": row.status,
        "classification": row.classification,
        "outcome": outcome(row),
    }


def _where(key: Key) -> dict[str, Any]:
    region, model_id, question_id = key
    return {"region": region, "model_id": model_id, "question_id": question_token(question_id)}


def _group(cells: list[dict[str, Any]], field: str, order: list[Any]) -> list[dict[str, Any]]:
    out = []
    for value in order:
        mine = [c for c in cells if c[field] == value]
        if mine:
            labels = [c["transition"] for c in mine]
            out.append(
                {
                    field: value,
                    "cells": len(mine),
                    "changed": sum(label != UNCHANGED for label in labels),
                    "transitions": _counted(labels),
                }
            )
    return out


def compare(base: Side, other: Side) -> dict[str, Any]:
    """The comparison document: both headers, every shared cell with both sides and its transition, the
    sums per question, region and model, the overall counts per transition, and the cells of one side only."""
    shared = [key for key in base.cells if key in other.cells]
    cells = []
    for key in shared:
        a, b = base.cells[key], other.cells[key]
        label = transition(outcome(a), outcome(b))
        cells.append({**_where(key), "base": _cell_side(a), "other": _cell_side(b), "transition": label})
    labels = [c["transition"] for c in cells]

    def union(*lists: Iterable[Any]) -> list[Any]:
        return list(dict.fromkeys(x for xs in lists for x in xs))

    def alone(side: Side, against: Side) -> list[dict[str, Any]]:
        return [{**_where(k), **_cell_side(row)} for k, row in side.cells.items() if k not in against.cells]

    only_in_base, only_in_other = alone(base, other), alone(other, base)
    languages = {
        r: {"base": base.languages.get(r), "other": other.languages.get(r)}
        for r in union(base.regions, other.regions)
        if r in base.languages and r in other.languages and base.languages[r] != other.languages[r]
    }
    return {
        "base": base.header(),
        "other": other.header(),
        "same_job": base.job_id == other.job_id,
        "differences": {
            "languages": languages,
            "catalogue_version": (
                {"base": base.catalogue_version, "other": other.catalogue_version}
                if base.catalogue_version != other.catalogue_version
                else None
            ),
        },
        "totals": {
            "shared": len(cells),
            "changed": sum(label != UNCHANGED for label in labels),
            "unchanged": labels.count(UNCHANGED),
            "only_in_base": len(only_in_base),
            "only_in_other": len(only_in_other),
            "transitions": _counted(labels),
        },
        "by_question": _group(
            cells, "question_id", [question_token(q) for q in union(base.questions, other.questions)]
        ),
        "by_region": _group(cells, "region", union(base.regions, other.regions)),
        "by_model": _group(cells, "model_id", union(base.models, other.models)),
        "cells": cells,
        "only_in_base": only_in_base,
        "only_in_other": only_in_other,
    }
