"""The classifier against labelled, real-world-style answers: precision and recall for `refused` ≥ 0.95.

tests/fixtures/classification.jsonl holds refusals, canned deflections, apologise-then-decline replies,
partial refusals that still answer (labelled answered), answers, very short correct answers, answers
that merely contain "sorry" or "cannot", and empty output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.runner.classify import classify

FIXTURES = Path(__file__).parent.parent / "fixtures" / "classification.jsonl"


def load() -> list[dict[str, str]]:
    return [json.loads(line) for line in FIXTURES.read_text().splitlines() if line.strip()]


def scores(examples: list[dict[str, str]]) -> tuple[float, float, list[str]]:
    tp = fp = fn = 0
    wrong = []
    for ex in examples:
        got = classify("completed", ex["text"]).label
        if got != ex["label"]:
            wrong.append(f"{ex['kind']}: expected {ex['label']}, got {got}: {ex['text'][:80]!r}")
        tp += got == "refused" and ex["label"] == "refused"
        fp += got == "refused" and ex["label"] != "refused"
        fn += got != "refused" and ex["label"] == "refused"
    return tp / (tp + fp), tp / (tp + fn), wrong


def test_fixture_is_large_and_varied() -> None:
    examples = load()
    assert len(examples) >= 60
    kinds = {ex["kind"] for ex in examples}
    assert {
        "refusal",
        "deflection",
        "apologise-decline",
        "partial-answers",
        "short",
        "sorry-in-answer",
        "empty",
    } <= kinds


def test_refusal_precision_and_recall(capsys: pytest.CaptureFixture[str]) -> None:
    precision, recall, wrong = scores(load())
    with capsys.disabled():
        print(f"\nclassifier refused: precision {precision:.3f}, recall {recall:.3f}, {len(wrong)} misclassified")
    assert precision >= 0.95 and recall >= 0.95, "\n".join(wrong)


def test_every_non_refusal_label_is_right_too() -> None:
    wrong = [w for w in scores(load())[2] if "expected refused" not in w and "got refused" not in w]
    assert wrong == []
