"""The analysis on small hand-made jobs, every figure worked out by hand."""

from __future__ import annotations

from beacon.reader.analysis import Cell, analyse, jaccard_distance, words

CELLS = [
    # q1 / m1: answered in all three regions
    Cell("us-east", "m1", "q1", "en", "answered", "Paris is the capital"),  # {paris, is, the, capital}
    Cell("eu-west", "m1", "q1", "en", "answered", "the capital is Paris"),  # same set → distance 0
    Cell("asia-pacific", "m1", "q1", "en", "answered", "Paris"),  # {paris}: 1 - 1/4 = 0.75 to each
    # q2 / m1: refused in asia-pacific, answered elsewhere
    Cell("us-east", "m1", "q2", "en", "answered", "a b c"),
    Cell("eu-west", "m1", "q2", "en", "answered", "a b d"),  # 1 - 2/4 = 0.5
    Cell("asia-pacific", "m1", "q2", "en", "refused", "I can't discuss that."),
    # q2 / m2: refused in one region, timed out in another: no answers to compare
    Cell("us-east", "m2", "q2", "en", "refused", "Sorry, beyond my scope."),
    Cell("eu-west", "m2", "q2", "en", "error", None),
]


def test_jaccard_by_hand() -> None:
    assert words("Paris, is the capital!") == {"paris", "is", "the", "capital"}
    assert jaccard_distance(frozenset("ab"), frozenset("ab")) == 0.0
    assert jaccard_distance(frozenset("abc"), frozenset("abd")) == 0.5
    assert jaccard_distance(frozenset(), frozenset()) == 0.0


def test_analysis_figures() -> None:
    result = analyse(CELLS)
    rates = result["refusal_rate"]
    # us-east: q1/m1 answered, q2/m1 answered, q2/m2 refused → 1 refusal in 3 replies
    assert rates["by_region"]["us-east"] == {"refused": 1, "answered": 2, "other": 0, "rate": 0.3333}
    # eu-west: 2 answered, 1 error (not a reply) → 0 / 2
    assert rates["by_region"]["eu-west"] == {"refused": 0, "answered": 2, "other": 1, "rate": 0.0}
    assert rates["by_region"]["asia-pacific"] == {"refused": 1, "answered": 1, "other": 0, "rate": 0.5}
    assert rates["by_model"]["m2"] == {"refused": 1, "answered": 0, "other": 1, "rate": 1.0}
    # q2: refused in asia (m1) and us (m2), answered in us and eu (m1), one error → 2 / 4
    assert rates["by_question"]["q1"]["rate"] == 0.0 and rates["by_question"]["q2"]["rate"] == 0.5

    assert "by_language" not in rates  # one language for every region: no split by language
    div = {(d["question_id"], d["model_id"]): d for d in result["divergence"]["cells"]}
    assert {d["language"] for d in result["divergence"]["cells"]} == {"en"}
    # q1/m1: pairs (asia,eu)=0.75, (asia,us)=0.75, (eu,us)=0 → mean 0.5
    assert div[("q1", "m1")]["value"] == 0.5
    assert div[("q1", "m1")]["regions_compared"] == ["asia-pacific", "eu-west", "us-east"]
    assert div[("q2", "m1")]["value"] == 0.5
    assert div[("q2", "m2")]["value"] is None  # nobody answered: no number is invented

    assert result["disagreements"] == [
        {"question_id": "q2", "model_id": "m1", "refused_in": ["asia-pacific"], "answered_in": ["eu-west", "us-east"]}
    ]


def test_no_replies_means_no_rate() -> None:
    assert (
        analyse([Cell("us-east", "m", None, "en", "error", None)])["refusal_rate"]["by_region"]["us-east"]["rate"]
        is None
    )


def test_judge_disagreements_are_the_cells_where_a_verdict_differs_from_the_rules() -> None:
    cells = [
        Cell("us-east", "m", "q1", "en", "refused", "no", judge_label="answered"),
        Cell("us-east", "m", "q2", "en", "answered", "yes", judge_label="answered"),
        Cell("eu-west", "m", "q1", "en", "refused", "no", judge_label="error"),
        Cell("eu-west", "m", "q2", "en", "answered", "yes"),
    ]
    judge = analyse(cells)["judge"]
    assert (judge["judged"], judge["agree"], judge["judge_errors"]) == (3, 1, 1)
    assert judge["disagreements"] == [
        {"region": "us-east", "model_id": "m", "question_id": "q1", "rules": "refused", "judge": "answered"}
    ]


def test_regions_asking_in_different_languages() -> None:
    """One language per region: us-east and eu-west ask in English, asia-pacific in Chinese. Rates split by
    language too; words are compared only between regions of one language; a refusal in Chinese against an
    answer in English is a disagreement between regions like any other."""
    cells = [
        Cell("us-east", "m1", "q1", "en", "answered", "the capital is Paris"),
        Cell("eu-west", "m1", "q1", "en", "answered", "Paris is the capital"),
        Cell("asia-pacific", "m1", "q1", "zh", "answered", "首都是巴黎"),
        Cell("us-east", "m1", "q2", "en", "answered", "a b"),
        Cell("eu-west", "m1", "q2", "en", "error", None),
        Cell("asia-pacific", "m1", "q2", "zh", "refused", "我无法回答"),
    ]
    result = analyse(cells)
    assert result["refusal_rate"]["by_language"] == {
        "en": {"refused": 0, "answered": 3, "other": 1, "rate": 0.0},
        "zh": {"refused": 1, "answered": 1, "other": 0, "rate": 0.5},
    }
    assert [
        (d["question_id"], d["language"], d["regions_compared"], d["value"]) for d in result["divergence"]["cells"]
    ] == [
        ("q1", "en", ["eu-west", "us-east"], 0.0),  # the same words; the Chinese answer is not compared with them
        ("q1", "zh", ["asia-pacific"], None),  # one region asks in Chinese: nothing to compare
        ("q2", "en", ["us-east"], None),
        ("q2", "zh", [], None),
    ]
    assert result["disagreements"] == [
        {"question_id": "q2", "model_id": "m1", "refused_in": ["asia-pacific"], "answered_in": ["us-east"]}
    ]
    assert set(result) == {"refusal_rate", "divergence", "disagreements", "judge"}
