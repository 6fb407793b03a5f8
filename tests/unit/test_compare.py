"""Two jobs compared cell by cell (beacon.domain.compare), on small hand-made jobs: every figure by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from beacon.domain.compare import compare, outcome, side_from, transition

AT = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def spec(
    questions: list[str], models: list[str], regions: dict[str, str], label: str | None = "study"
) -> dict[str, Any]:
    """A projected JobSubmitted (jobs.spec), as much of it as the comparison reads: each region with its one
    language, each question with a text in every language some region asks in."""
    asked = sorted(set(regions.values()))
    return {
        "questions": [{"id": q, "category": "c", "prompts": {lang: "p" for lang in asked}} for q in questions],
        "models": [{"id": m, "name": m} for m in models],
        "regions": [
            {"id": r, "display": r.upper(), "language": lang, "system_prompt": "s"} for r, lang in regions.items()
        ],
        "catalogue": {"version": "sha256:0123456789abcdef", "label": label},
    }


def job(job_id: str, s: dict[str, Any], version: str = "sha256:0123456789abcdef") -> dict[str, Any]:
    return {"job_id": job_id, "submitted_at": AT, "catalogue_version": version, "spec": s}


def row(region: str, model: str, question: str | None, cls: str, status: str = "completed", lang: str = "en"):
    return {
        "region": region,
        "model_id": model,
        "question_id": question,
        "language": lang,
        "status": status,
        "classification": cls,
    }


TWO_BY_TWO = spec(["q1", "q2"], ["m1"], {"us": "en", "asia": "en"})
ZH = spec(["q1", "q2"], ["m1"], {"us": "zh", "asia": "zh"})
EN_ROWS = [
    row("us", "m1", "q1", "answered"),
    row("asia", "m1", "q1", "answered"),
    row("us", "m1", "q2", "answered"),
    row("asia", "m1", "q2", "refused"),
]
ZH_ROWS = [
    row("us", "m1", "q1", "refused", lang="zh"),  # answered → refused
    row("asia", "m1", "q1", "answered", lang="zh"),
    row("us", "m1", "q2", "error", status="timeout", lang="zh"),  # answered → timeout
    row("asia", "m1", "q2", "answered", lang="zh"),  # refused → answered
]


def test_outcomes_and_transitions() -> None:
    assert outcome(None) == "pending"
    assert outcome(side_from(job("a", TWO_BY_TWO), EN_ROWS).cells[("asia", "m1", "q2")]) == "refused"
    assert outcome(side_from(job("b", ZH), ZH_ROWS).cells[("us", "m1", "q2")]) == "timeout"  # status, not "error"
    assert transition("answered", "refused") == "answered → refused"
    assert transition("failed", "failed") == "unchanged"


def test_english_against_chinese() -> None:
    doc = compare(side_from(job("en", TWO_BY_TWO), EN_ROWS), side_from(job("zh", ZH), ZH_ROWS))
    assert doc["base"] == {
        "job_id": "en",
        "submitted_at": "2026-11-27T10:00:00+00:00",
        "catalogue_version": "sha256:0123456789abcdef",
        "catalogue_label": "study",
        "languages": {"us": "en", "asia": "en"},
        "regions": ["us", "asia"],
        "models": ["m1"],
        "questions": ["q1", "q2"],
        "cells": 4,
        "recorded": 4,
        "pending": 0,
    }
    assert doc["other"]["languages"] == {"us": "zh", "asia": "zh"}
    assert doc["same_job"] is False
    assert doc["differences"] == {
        "languages": {"us": {"base": "en", "other": "zh"}, "asia": {"base": "en", "other": "zh"}},
        "catalogue_version": None,
    }
    assert doc["totals"] == {
        "shared": 4,
        "changed": 3,
        "unchanged": 1,
        "only_in_base": 0,
        "only_in_other": 0,
        # changed ones first, in the outcomes' order, unchanged last
        "transitions": {"answered → refused": 1, "answered → timeout": 1, "refused → answered": 1, "unchanged": 1},
    }
    assert doc["by_question"] == [
        {"question_id": "q1", "cells": 2, "changed": 1, "transitions": {"answered → refused": 1, "unchanged": 1}},
        {
            "question_id": "q2",
            "cells": 2,
            "changed": 2,
            "transitions": {"answered → timeout": 1, "refused → answered": 1},
        },
    ]
    assert doc["by_region"] == [
        {"region": "us", "cells": 2, "changed": 2, "transitions": {"answered → refused": 1, "answered → timeout": 1}},
        {"region": "asia", "cells": 2, "changed": 1, "transitions": {"refused → answered": 1, "unchanged": 1}},
    ]
    assert doc["by_model"] == [
        {"model_id": "m1", "cells": 4, "changed": 3, "transitions": doc["totals"]["transitions"]}
    ]
    # every shared cell, in the spec's order (question, model, region), with both sides
    assert [(c["question_id"], c["region"], c["transition"]) for c in doc["cells"]] == [
        ("q1", "us", "answered → refused"),
        ("q1", "asia", "unchanged"),
        ("q2", "us", "answered → timeout"),
        ("q2", "asia", "refused → answered"),
    ]
    assert doc["cells"][2] == {
        "region": "us",
        "model_id": "m1",
        "question_id": "q2",
        "base": {"language": "en", "status": "completed", "classification": "answered", "outcome": "answered"},
        "other": {"language": "zh", "status": "timeout", "classification": "error", "outcome": "timeout"},
        "transition": "answered → timeout",
    }
    assert doc["only_in_base"] == [] and doc["only_in_other"] == []


def test_the_same_job_twice_is_all_unchanged() -> None:
    side = side_from(job("a", TWO_BY_TWO), EN_ROWS[:3])  # one cell not recorded yet
    doc = compare(side, side)
    assert doc["same_job"] is True and doc["differences"] == {"languages": {}, "catalogue_version": None}
    assert doc["totals"]["transitions"] == {"unchanged": 4}
    assert (doc["base"]["recorded"], doc["base"]["pending"]) == (3, 1)
    assert doc["cells"][3]["base"] == {"language": None, "status": None, "classification": None, "outcome": "pending"}


def test_different_cells_compare_what_they_share_and_list_the_rest() -> None:
    base = side_from(
        job("a", spec(["q1"], ["m1", "m2"], {"us": "en"})),
        [row("us", "m1", "q1", "answered"), row("us", "m2", "q1", "refused")],
    )
    other = side_from(
        job("b", spec(["q1", "q2"], ["m1", "m3"], {"us": "en"}), version="sha256:fedcba9876543210"),
        [row("us", "m1", "q1", "error", status="failed"), row("us", "m3", "q2", "answered")],
    )
    doc = compare(base, other)
    assert doc["totals"] == {
        "shared": 1,
        "changed": 1,
        "unchanged": 0,
        "only_in_base": 1,
        "only_in_other": 3,
        "transitions": {"answered → failed": 1},
    }
    assert doc["differences"]["catalogue_version"] == {
        "base": "sha256:0123456789abcdef",
        "other": "sha256:fedcba9876543210",
    }
    assert doc["only_in_base"] == [
        {
            "region": "us",
            "model_id": "m2",
            "question_id": "q1",
            "language": "en",
            "status": "completed",
            "classification": "refused",
            "outcome": "refused",
        }
    ]
    # the other's own cells, in its order: (q1, m3) not recorded, (q2, m1) not recorded, (q2, m3) answered
    assert [(c["question_id"], c["model_id"], c["outcome"]) for c in doc["only_in_other"]] == [
        ("q1", "m3", "pending"),
        ("q2", "m1", "pending"),
        ("q2", "m3", "answered"),
    ]
    # groups only for values with shared cells: q2 and m2, m3 have none
    assert [g["question_id"] for g in doc["by_question"]] == ["q1"]
    assert [g["model_id"] for g in doc["by_model"]] == ["m1"]


def test_a_job_without_questions_has_its_no_question_cell() -> None:
    s = spec([], ["m1"], {"us": "en"})
    doc = compare(side_from(job("a", s), [row("us", "m1", None, "answered")]), side_from(job("b", s), []))
    assert doc["base"]["questions"] == ["-"]
    assert [(c["question_id"], c["transition"]) for c in doc["cells"]] == [("-", "answered → pending")]


def test_each_side_shows_its_regions_languages_and_the_regions_that_differ() -> None:
    """One language per region, read from the spec's regions: a job asking asia in Chinese and us in English
    against one asking both in English differs in asia only."""
    mixed = side_from(job("mixed", spec(["q1"], ["m1"], {"us": "en", "asia": "zh"})), [])
    assert mixed.languages == {"us": "en", "asia": "zh"}
    english = side_from(job("en", spec(["q1"], ["m1"], {"us": "en", "asia": "en"})), [])
    doc = compare(english, mixed)
    assert doc["other"]["languages"] == {"us": "en", "asia": "zh"}
    assert doc["differences"]["languages"] == {"asia": {"base": "en", "other": "zh"}}
    assert doc["totals"]["shared"] == 2  # cells match by (region, model, question), whatever the language
