"""Pure: the cross-region analysis of one job, computed only from recorded answers.

- Refusal rate = refused / (answered + refused): of the cells where the model replied, the share it
  declined. Cells that failed, timed out or came back empty are counted (`other`) but are not replies,
  so they move no rate. A group with no replies has rate null, never a made-up 0.
- Divergence of a (question, model) across regions = the mean pairwise Jaccard distance between the
  word sets of its *answered* cells: 1 − |A ∩ B| / |A ∪ B| over lower-cased words, averaged over every
  pair of regions. 0 means the regions got the same words, 1 means no word in common. It is null when
  fewer than two regions answered (refusals are not answers; they show up as disagreements instead).
- A disagreement is a (question, model) that some regions refused and others answered.
- Judge disagreements: cells where a judge's verdict (when a judge route is configured) differs from
  the rules' label; verdicts that are themselves errors are not counted as disagreeing.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import combinations
from typing import Any

# The words of an answer are read from its first WORDS_FROM_CHARS characters: an answer's opening says what it
# is about, and the cost of a job's analysis stays bounded by its cell count, however long its answers.
WORDS_FROM_CHARS = 4000
DIVERGENCE_MEASURE = (
    "mean pairwise Jaccard distance (1 - |A∩B| / |A∪B|) between the lower-cased word sets of the answered "
    f"cells of one (question, model) across regions, each read from its first {WORDS_FROM_CHARS} characters; "
    "null when fewer than two regions answered"
)
_WORD = re.compile(r"[\w']+")


@dataclass(frozen=True)
class Cell:
    region: str
    model_id: str
    question_id: str | None
    classification: str
    answer: str | None
    judge_label: str | None = None  # the judge's verdict, when one was recorded
    language: str | None = None  # the language asked in (None: a result from before languages)


def words(text: str | None) -> frozenset[str]:
    return frozenset(_WORD.findall((text or "")[:WORDS_FROM_CHARS].lower()))


def jaccard_distance(a: frozenset[str], b: frozenset[str]) -> float:
    union = a | b
    return 0.0 if not union else 1.0 - len(a & b) / len(union)


def divergence(answers: list[str | None]) -> float | None:
    sets = [words(a) for a in answers]
    pairs = list(combinations(sets, 2))
    return None if not pairs else sum(jaccard_distance(a, b) for a, b in pairs) / len(pairs)


def _rates(cells: Iterable[Cell], key: str) -> dict[str, dict[str, Any]]:
    groups: dict[str, dict[str, int]] = defaultdict(lambda: {"refused": 0, "answered": 0, "other": 0})
    for cell in cells:
        bucket = cell.classification if cell.classification in ("refused", "answered") else "other"
        groups[str(getattr(cell, key))][bucket] += 1
    out = {}
    for name, n in groups.items():
        replies = n["refused"] + n["answered"]
        out[name] = {**n, "rate": round(n["refused"] / replies, 4) if replies else None}
    return out


def analyse(cells: list[Cell]) -> dict[str, Any]:
    """Across regions, per (question, model) — and per language when the job asks in several, since the
    same model may answer a question in one language and refuse it in another (`language_disagreements`)."""
    several = len({c.language for c in cells}) > 1
    by_pair: dict[tuple[str | None, str, str | None], list[Cell]] = defaultdict(list)
    for cell in cells:
        by_pair[(cell.question_id, cell.model_id, cell.language if several else None)].append(cell)
    divergences, disagreements = [], []
    for (question_id, model_id, language), group in sorted(
        by_pair.items(), key=lambda kv: (kv[0][0] or "", kv[0][1], kv[0][2] or "")
    ):
        where = {"language": language} if several else {}
        answered = sorted((c for c in group if c.classification == "answered"), key=lambda c: c.region)
        value = divergence([c.answer for c in answered])
        divergences.append(
            {
                "question_id": question_id,
                "model_id": model_id,
                **where,
                "regions_compared": [c.region for c in answered],
                "value": None if value is None else round(value, 4),
            }
        )
        refused = sorted(c.region for c in group if c.classification == "refused")
        if refused and answered:
            disagreements.append(
                {
                    "question_id": question_id,
                    "model_id": model_id,
                    **where,
                    "refused_in": refused,
                    "answered_in": [c.region for c in answered],
                }
            )
    rates = {
        "definition": "refused / (answered + refused); other = failed, timed out or empty",
        "by_region": _rates(cells, "region"),
        "by_model": _rates(cells, "model_id"),
        "by_question": _rates(cells, "question_id"),
    }
    out: dict[str, Any] = {
        "refusal_rate": rates,
        "divergence": {"measure": DIVERGENCE_MEASURE, "cells": divergences},
        "disagreements": disagreements,
    }
    if several:
        rates["by_language"] = _rates(cells, "language")
        out["language_disagreements"] = _across_languages(cells)
    out["judge"] = _judge(cells)
    return out


def _across_languages(cells: list[Cell]) -> list[dict[str, Any]]:
    """(question, model, region) answered in some languages and refused in others."""
    groups: dict[tuple[str | None, str, str], list[Cell]] = defaultdict(list)
    for cell in cells:
        groups[(cell.question_id, cell.model_id, cell.region)].append(cell)
    out = []
    for (question_id, model_id, region), group in sorted(groups.items(), key=lambda kv: (kv[0][0] or "", *kv[0][1:])):
        refused = sorted(str(c.language) for c in group if c.classification == "refused")
        answered = sorted(str(c.language) for c in group if c.classification == "answered")
        if refused and answered:
            out.append(
                {
                    "question_id": question_id,
                    "model_id": model_id,
                    "region": region,
                    "refused_in": refused,
                    "answered_in": answered,
                }
            )
    return out


def _judge(cells: list[Cell]) -> dict[str, Any]:
    judged = [c for c in cells if c.judge_label is not None]
    differ = [
        {
            "region": c.region,
            "model_id": c.model_id,
            "question_id": c.question_id,
            "rules": c.classification,
            "judge": c.judge_label,
        }
        for c in judged
        if c.judge_label != "error" and c.judge_label != c.classification
    ]
    differ.sort(key=lambda d: (d["question_id"] or "", d["model_id"], d["region"]))
    return {
        "judged": len(judged),
        "agree": sum(1 for c in judged if c.judge_label == c.classification),
        "judge_errors": sum(1 for c in judged if c.judge_label == "error"),
        "disagreements": differ,
    }
