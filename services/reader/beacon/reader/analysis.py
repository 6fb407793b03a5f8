"""Pure: the cross-region analysis of one job, computed only from recorded answers.

Each region of a job asks in one language (its cells' `language`); a job's regions may ask in different
ones (one region in English, another in Chinese).

- Refusal rate = refused / (answered + refused): of the cells where the model replied, the share it
  declined. Cells that failed, timed out or came back empty are counted (`other`) but are not replies,
  so they move no rate. A group with no replies has rate null, never a made-up 0. Per region, model and
  question; per language too when the job's regions ask in more than one.
- Divergence of a (question, model, language) across regions = the mean pairwise Jaccard distance between
  the word sets of its *answered* cells: 1 − |A ∩ B| / |A ∪ B| over lower-cased words, averaged over every
  pair of regions. 0 means the regions got the same words, 1 means no word in common. Words are compared
  only between regions that ask in the same language (an English and a Chinese answer share no words
  whatever they say). It is null when fewer than two such regions answered (refusals are not answers;
  they show up as disagreements instead).
- A disagreement is a (question, model) that some regions refused and others answered, whatever language
  each region asks in: a refusal is a refusal in any language.
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
    f"cells of one (question, model) across the regions that ask in one language, each read from its first "
    f"{WORDS_FROM_CHARS} characters; null when fewer than two of them answered"
)
_WORD = re.compile(r"[\w']+")


@dataclass(frozen=True)
class Cell:
    region: str
    model_id: str
    question_id: str | None
    language: str  # the language asked in: the region's, in this job
    classification: str
    answer: str | None
    judge_label: str | None = None  # the judge's verdict, when one was recorded


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
    """Across regions, per (question, model): divergence between the regions that ask in one language,
    disagreements between all of them."""
    by_words: dict[tuple[str | None, str, str], list[Cell]] = defaultdict(list)
    by_pair: dict[tuple[str | None, str], list[Cell]] = defaultdict(list)
    for cell in cells:
        by_words[(cell.question_id, cell.model_id, cell.language)].append(cell)
        by_pair[(cell.question_id, cell.model_id)].append(cell)
    divergences = []
    for (question_id, model_id, language), group in sorted(
        by_words.items(), key=lambda kv: (kv[0][0] or "", *kv[0][1:])
    ):
        answered = sorted((c for c in group if c.classification == "answered"), key=lambda c: c.region)
        value = divergence([c.answer for c in answered])
        divergences.append(
            {
                "question_id": question_id,
                "model_id": model_id,
                "language": language,
                "regions_compared": [c.region for c in answered],
                "value": None if value is None else round(value, 4),
            }
        )
    disagreements = []
    for (question_id, model_id), group in sorted(by_pair.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
        refused = sorted(c.region for c in group if c.classification == "refused")
        answered_in = sorted(c.region for c in group if c.classification == "answered")
        if refused and answered_in:
            disagreements.append(
                {"question_id": question_id, "model_id": model_id, "refused_in": refused, "answered_in": answered_in}
            )
    rates = {
        "definition": "refused / (answered + refused); other = failed, timed out or empty",
        "by_region": _rates(cells, "region"),
        "by_model": _rates(cells, "model_id"),
        "by_question": _rates(cells, "question_id"),
    }
    if len({c.language for c in cells}) > 1:  # the job's regions ask in different languages
        rates["by_language"] = _rates(cells, "language")
    return {
        "refusal_rate": rates,
        "divergence": {"measure": DIVERGENCE_MEASURE, "cells": divergences},
        "disagreements": disagreements,
        "judge": _judge(cells),
    }


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
