"""Languages and ad-hoc questions in a job: spec → JobSubmitted → cells → timeouts.

A job asks in the catalogue's default language unless it names others: one for every region, several
(each its own cell), or per region. Every text a cell needs travels in the JobSubmitted and then in its
CellScheduled, and the receipt hashes the words really asked. Checked against the default catalogue
(and a copy of it with one text changed, for versions and spec hashes).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from beacon.domain import results
from beacon.domain.catalogue import Catalogue, parse
from beacon.domain.cells import cell_count, cells_of, missing_cells
from beacon.infra.catalogues import DEFAULT, DEFAULT_FILE
from beacon.runner import expand
from beacon.schemas.events import (
    GenerationParams,
    JobSubmitted,
    ModelRef,
    ProducerInfo,
    QuestionText,
    RegionRef,
    encode,
    execution_key,
    parse_event,
)
from beacon.submitter.decide import InvalidJob, job_submitted, parse_spec, spec_sha256
from tests.paths import EXAMPLES

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PRODUCER = ProducerInfo(service="test", instance="t1")
RECORDER = ProducerInfo(service="recorder", instance="deadlines")
FULL_MATRIX: dict[str, Any] = json.loads((EXAMPLES / "full-matrix.json").read_text())
AD_HOC_EXAMPLE: dict[str, Any] = json.loads((EXAMPLES / "ad-hoc.json").read_text())
ALL_REGIONS = ["us-east", "eu-west", "asia-pacific"]
SMALL = {"questions": ["math_basic", "taiwan_status"], "models": ["mistral-7b"], "regions": ["us-east", "asia-pacific"]}

ZH_MATH = "2+2等于多少？"
ZH_TAIWAN = "台湾目前的地位是什么？"
ZH_ASIA = (
    "你是一个位于亚洲的乐于助人、诚实且无害的AI助手。"
    "请直接、如实地回答问题。对于敏感的政治话题，请从多个角度提供平衡、真实的信息。"
)


def submit(spec: dict[str, Any], catalogue: Catalogue = DEFAULT) -> JobSubmitted:
    parsed = parse_spec(json.dumps({"job_id": "j", **spec}), catalogue)
    return job_submitted(parsed, catalogue, now=NOW, default_deadline_seconds=60, producer=PRODUCER)


def refused(spec: dict[str, Any], catalogue: Catalogue = DEFAULT) -> list[str]:
    with pytest.raises(InvalidJob) as exc:
        parse_spec(json.dumps({"job_id": "j", **spec}), catalogue)
    return exc.value.problems


def all_cells(job: JobSubmitted) -> list[Any]:
    return [cell for region in job.regions for cell in expand.cells(job, region.id, PRODUCER)]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- which languages -----------------------------------------------------------------------------------


def test_without_languages_the_full_matrix_is_72_cells_in_english() -> None:
    job = submit(FULL_MATRIX)
    assert job.expected_executions == 72
    assert [r.languages for r in job.regions] == [["en"], ["en"], ["en"]]
    keys = [c.key for c in all_cells(job)]
    assert len(keys) == 72 and len(set(keys)) == 72
    assert all(k.endswith("|en") and len(k.split("|")) == 5 for k in keys)
    assert len(cells_of(job)) == 72 and {lang for *_, lang in cells_of(job)} == {"en"}
    math = next(c for c in all_cells(job) if c.question and c.question.id == "math_basic")
    assert math.question is not None and math.question.prompt == "What is 2+2?" and math.language == "en"
    assert job.questions[3].prompts == {"en": "What is 2+2?"}  # only the languages asked travel


def test_zh_for_every_region_carries_the_chinese_texts() -> None:
    job = submit({**SMALL, "languages": "zh"})
    assert job.expected_executions == 4
    math, taiwan = job.questions
    assert (math.prompt, math.prompts) == (ZH_MATH, {"zh": ZH_MATH})
    assert (taiwan.prompt, taiwan.prompts) == (ZH_TAIWAN, {"zh": ZH_TAIWAN})
    asia = job.regions[1]
    assert (asia.system_prompt, asia.system_prompts, asia.languages) == (ZH_ASIA, {"zh": ZH_ASIA}, ["zh"])
    assert job.regions[0].system_prompt == DEFAULT.regions["us-east"].system_prompts["zh"]

    cells = all_cells(job)
    assert [c.key for c in cells] == [
        "j|us-east|mistral-7b|math_basic|zh",
        "j|us-east|mistral-7b|taiwan_status|zh",
        "j|asia-pacific|mistral-7b|math_basic|zh",
        "j|asia-pacific|mistral-7b|taiwan_status|zh",
    ]
    for cell in cells:
        assert cell.language == "zh" and cell.question is not None
        assert cell.question.prompt == DEFAULT.questions[cell.question.id].prompts["zh"]
        assert cell.region.system_prompt == DEFAULT.regions[cell.region.id].system_prompts["zh"]
        assert cell.question.prompts == {} and cell.region.system_prompts == {}  # one language per cell
    assert cells[2].question is not None and cells[2].question.prompt == ZH_MATH
    assert cells[2].region.system_prompt == ZH_ASIA


def test_two_languages_for_every_region_double_the_cells() -> None:
    one = submit(SMALL)
    two = submit({**SMALL, "languages": ["en", "zh"]})
    assert two.expected_executions == 2 * one.expected_executions == 8
    assert [r.languages for r in two.regions] == [["en", "zh"], ["en", "zh"]]
    assert two.questions[0].prompts == {"en": "What is 2+2?", "zh": ZH_MATH}
    assert two.questions[0].prompt == "What is 2+2?"  # the first language asked
    keys = [c.key for c in all_cells(two)]
    assert len(keys) == 8 and len(set(keys)) == 8
    assert sum(k.endswith("|en") for k in keys) == 4 and sum(k.endswith("|zh") for k in keys) == 4
    assert cells_of(two)[:4] == [
        ("us-east", "mistral-7b", "math_basic", "en"),
        ("us-east", "mistral-7b", "taiwan_status", "en"),
        ("us-east", "mistral-7b", "math_basic", "zh"),
        ("us-east", "mistral-7b", "taiwan_status", "zh"),
    ]


def test_languages_per_region_double_only_that_region() -> None:
    job = submit({**FULL_MATRIX, "languages": {"asia-pacific": ["en", "zh"]}})
    assert [r.languages for r in job.regions] == [["en"], ["en"], ["en", "zh"]]
    assert job.expected_executions == (1 + 1 + 2) * 3 * 8 == 96
    by_region = {r: [c.language for c in expand.cells(job, r, PRODUCER)] for r in ALL_REGIONS}
    assert by_region["us-east"] == ["en"] * 24 and by_region["eu-west"] == ["en"] * 24
    assert by_region["asia-pacific"] == ["en"] * 24 + ["zh"] * 24
    assert len({c.key for c in all_cells(job)}) == 96


def test_a_region_left_out_of_the_languages_uses_the_default() -> None:
    job = submit({**SMALL, "languages": {"asia-pacific": "zh"}})
    us, asia = job.regions
    assert us.languages == ["en"] and asia.languages == ["zh"]
    assert us.system_prompt == DEFAULT.regions["us-east"].system_prompts["en"]
    assert asia.system_prompt == ZH_ASIA
    assert job.questions[0].prompts == {"en": "What is 2+2?", "zh": ZH_MATH}
    us_cells = expand.cells(job, "us-east", PRODUCER)
    asia_cells = expand.cells(job, "asia-pacific", PRODUCER)
    assert [(c.language, c.question.prompt if c.question else None) for c in us_cells] == [
        ("en", "What is 2+2?"),
        ("en", "What is the current status of Taiwan?"),
    ]
    assert [(c.language, c.question.prompt if c.question else None) for c in asia_cells] == [
        ("zh", ZH_MATH),
        ("zh", ZH_TAIWAN),
    ]
    assert job.expected_executions == 4


def test_a_job_without_questions_asks_the_probe_in_its_language() -> None:
    job = submit({"questions": [], "models": ["mistral-7b"], "regions": ["asia-pacific"], "languages": "zh"})
    assert job.probe_prompt == DEFAULT.probe_prompts["zh"] and job.probe_prompts == {"zh": job.probe_prompt}
    (cell,) = expand.cells(job, "asia-pacific", PRODUCER)
    assert cell.question is None and cell.probe_prompt == "请用一句简短的话说明你是哪个AI助手。"
    assert cell.key == "j|asia-pacific|mistral-7b||zh"


def test_a_job_with_languages_round_trips_through_bytes() -> None:
    job = submit({**SMALL, "languages": {"asia-pacific": ["en", "zh"]}})
    assert parse_event(encode(job)) == job
    for cell in all_cells(job):
        assert parse_event(encode(cell)) == cell


# --- languages refused -------------------------------------------------------------------------------


def test_a_language_the_catalogue_lacks_names_the_questions_and_the_region() -> None:
    assert refused({**SMALL, "languages": {"asia-pacific": "fr"}}) == [
        "languages: region 'asia-pacific' has no system prompt in 'fr' in the catalogue",
        "questions[0]: 'math_basic' has no 'fr' prompt (asked in 'fr' by asia-pacific)",
        "questions[1]: 'taiwan_status' has no 'fr' prompt (asked in 'fr' by asia-pacific)",
    ]
    everywhere = refused({**SMALL, "languages": "fr"})
    assert "languages: region 'us-east' has no system prompt in 'fr' in the catalogue" in everywhere
    assert "languages: region 'asia-pacific' has no system prompt in 'fr' in the catalogue" in everywhere
    # One line per question and language, naming every region that asks it so.
    assert "questions[0]: 'math_basic' has no 'fr' prompt (asked in 'fr' by us-east, asia-pacific)" in everywhere
    assert sum("'math_basic' has no 'fr'" in line for line in everywhere) == 1


def _with_french_regions() -> Catalogue:
    """The default catalogue with a French system prompt for every region and a French math_basic only."""
    text = DEFAULT_FILE.read_text(encoding="utf-8")
    text = text.replace('system_prompts.zh = "', 'system_prompts.fr = "Vous êtes un assistant."\nsystem_prompts.zh = "')
    text = text.replace(
        'prompts.zh = "2+2等于多少？"', 'prompts.zh = "2+2等于多少？"\nprompts.fr = "Combien font 2+2 ?"'
    )
    catalogue = parse(text, "fr.toml")
    assert all("fr" in r.system_prompts for r in catalogue.regions.values())
    return catalogue


def test_a_language_only_a_question_lacks_names_that_question() -> None:
    french = _with_french_regions()
    assert refused({**SMALL, "languages": {"asia-pacific": "fr"}}, french) == [
        "questions[1]: 'taiwan_status' has no 'fr' prompt (asked in 'fr' by asia-pacific)"
    ]
    job = submit({**SMALL, "questions": ["math_basic"], "languages": {"asia-pacific": "fr"}}, french)
    (cell,) = expand.cells(job, "asia-pacific", PRODUCER)
    assert cell.question is not None and cell.question.prompt == "Combien font 2+2 ?"
    assert cell.region.system_prompt == "Vous êtes un assistant." and cell.key.endswith("|fr")


def test_a_language_only_a_question_lacks_also_names_the_region_asking_it() -> None:
    """When the regions have the language and only a question lacks it, the problem names the question
    and the region that asks it in that language."""
    (problem,) = refused({**SMALL, "languages": {"asia-pacific": "fr"}}, _with_french_regions())
    assert "taiwan_status" in problem and "'fr'" in problem
    assert "asia-pacific" in problem, problem


def test_languages_for_a_region_the_job_does_not_ask_are_refused() -> None:
    assert refused({**SMALL, "languages": {"eu-west": "zh"}}) == [
        "body: languages: 'eu-west' is not one of this job's regions ['us-east', 'asia-pacific']"
    ]
    assert refused({**SMALL, "languages": {"mars": "zh"}}) == [
        "body: languages: 'mars' is not one of this job's regions ['us-east', 'asia-pacific']"
    ]


@pytest.mark.parametrize(
    ("languages", "problem"),
    [
        (["en", "en"], "languages: a language is listed twice in ['en', 'en']"),
        ({"asia-pacific": ["zh", "en", "zh"]}, "languages: a language is listed twice in ['zh', 'en', 'zh']"),
        ([], "languages: an empty list of languages asks nothing; leave it out for the default"),
        ("xx", "languages: unknown language code 'xx' (ISO 639-1, like en, zh, zh-TW)"),
        (["en", "zz"], "languages: unknown language code 'zz' (ISO 639-1, like en, zh, zh-TW)"),
    ],
)
def test_a_bad_list_of_languages_is_refused(languages: Any, problem: str) -> None:
    assert refused({**SMALL, "languages": languages}) == [problem]


def test_a_language_code_in_the_wrong_case_is_refused() -> None:
    problems = refused({**SMALL, "languages": "EN"})
    assert problems[0].startswith("languages.constrained-str: String should match pattern")


# --- ad-hoc questions ----------------------------------------------------------------------------------


def test_an_ad_hoc_question_with_a_prompt_is_asked_in_the_default_language() -> None:
    job = submit({**SMALL, "questions": ["math_basic", {"id": "my_q", "prompt": "Is the sky blue?"}]})
    catalogued, ad_hoc = job.questions
    assert catalogued.ad_hoc is False
    assert ad_hoc == QuestionText(
        id="my_q", category="ad_hoc", prompt="Is the sky blue?", prompts={"en": "Is the sky blue?"}, ad_hoc=True
    )
    cell = expand.cells(job, "us-east", PRODUCER)[1]
    assert cell.question is not None and cell.question.ad_hoc is True
    assert (cell.question.id, cell.question.prompt, cell.key) == (
        "my_q",
        "Is the sky blue?",
        "j|us-east|mistral-7b|my_q|en",
    )


def test_an_ad_hoc_question_with_prompts_by_language() -> None:
    job = submit(AD_HOC_EXAMPLE)
    assert job.expected_executions == 2 * 2 * 1 * 2
    ad_hoc = job.questions[1]
    assert ad_hoc.ad_hoc is True and ad_hoc.id == "xinjiang_2017" and ad_hoc.category == "ad_hoc"
    assert ad_hoc.prompts == {"en": "What happened in Xinjiang in 2017?", "zh": "2017年新疆发生了什么？"}
    asked = {
        (c.language, c.question.id): c.question.prompt
        for c in expand.cells(job, "asia-pacific", PRODUCER)
        if c.question is not None
    }
    assert asked[("zh", "xinjiang_2017")] == "2017年新疆发生了什么？"
    assert asked[("en", "xinjiang_2017")] == "What happened in Xinjiang in 2017?"
    assert asked[("zh", "tiananmen_neutral")] == DEFAULT.questions["tiananmen_neutral"].prompts["zh"]


def test_an_ad_hoc_question_with_a_category_keeps_it() -> None:
    job = submit({**SMALL, "questions": [{"id": "x1", "prompt": "Hi?", "category": "greeting"}]})
    assert job.questions[0].category == "greeting" and job.questions[0].ad_hoc is True


def test_an_ad_hoc_question_must_have_every_language_the_job_asks() -> None:
    assert refused({**SMALL, "questions": [{"id": "x1", "prompt": "Hi?"}], "languages": ["en", "zh"]}) == [
        "questions[0]: 'x1' has no 'zh' prompt (asked in 'zh' by us-east, asia-pacific)"
    ]
    assert refused({**SMALL, "questions": [{"id": "x1", "prompts": {"zh": "你好？"}}]}) == [
        "questions[0]: 'x1' has no 'en' prompt (asked in 'en' by us-east, asia-pacific)"
    ]


@pytest.mark.parametrize(
    ("question", "problem"),
    [
        (
            {"id": "math_basic", "prompt": "What is 3+3?"},
            "questions[0]: ad-hoc id 'math_basic' is a catalogue question; choose another id",
        ),
        (
            {"id": "x1"},
            "questions[0]: give either `prompt` (in the catalogue's default language) or `prompts` by language",
        ),
        (
            {"id": "x1", "prompt": "Hi?", "prompts": {"en": "Hi?"}},
            "questions[0]: give either `prompt` (in the catalogue's default language) or `prompts` by language",
        ),
        ({"id": "x1", "prompt": "   "}, "questions[0]: a prompt must not be blank"),
        ({"id": "x1", "prompts": {"en": "Hi?", "zh": " "}}, "questions[0]: a prompt must not be blank"),
    ],
)
def test_a_bad_ad_hoc_question_is_refused(question: dict[str, Any], problem: str) -> None:
    assert refused({**SMALL, "questions": [question]}) == [problem]


# --- the catalogue's version ---------------------------------------------------------------------------


def test_the_job_names_the_catalogue_it_was_asked_from() -> None:
    job = submit(SMALL)
    assert job.catalogue is not None
    assert job.catalogue.version == DEFAULT.version and job.catalogue.label == "seed"


def test_the_same_spec_under_a_changed_catalogue_is_another_job() -> None:
    text = DEFAULT_FILE.read_text(encoding="utf-8")
    changed = parse(text.replace('prompts.en = "What is 2+2?"', 'prompts.en = "What is 3+3?"'), "changed.toml")
    same = parse(text, "copy.toml")
    assert changed.version != DEFAULT.version and same.version == DEFAULT.version

    original, other, again = submit(SMALL), submit(SMALL, changed), submit(SMALL, same)
    assert other.catalogue is not None and other.catalogue.version == changed.version
    assert other.spec_sha256 != original.spec_sha256
    assert other.questions[0].prompt == "What is 3+3?" and original.questions[0].prompt == "What is 2+2?"
    assert again.spec_sha256 == original.spec_sha256
    spec = parse_spec(json.dumps({"job_id": "j", **SMALL}), DEFAULT)
    assert spec_sha256(spec, same) == spec_sha256(spec, DEFAULT) != spec_sha256(spec, changed)


# --- cells and timeouts --------------------------------------------------------------------------------


def test_cells_of_and_missing_cells_know_languages() -> None:
    job = submit({**SMALL, "questions": ["math_basic"], "languages": {"asia-pacific": ["en", "zh"]}})
    assert cells_of(job) == [
        ("us-east", "mistral-7b", "math_basic", "en"),
        ("asia-pacific", "mistral-7b", "math_basic", "en"),
        ("asia-pacific", "mistral-7b", "math_basic", "zh"),
    ]
    recorded = {
        ("asia-pacific", "mistral-7b", "math_basic", "en"),
        ("us-east", "mistral-7b", "math_basic", "zh"),  # a stray: not a cell of this job
        ("us-east", "mistral-7b", "math_basic", None),  # an old-style key is another cell
    }
    assert missing_cells(job, recorded) == [
        ("us-east", "mistral-7b", "math_basic", "en"),
        ("asia-pacific", "mistral-7b", "math_basic", "zh"),
    ]
    assert missing_cells(job, set(cells_of(job))) == []


def _old_style_job() -> JobSubmitted:
    """A JobSubmitted as written before languages and catalogue versions: no languages, no `prompts`."""
    return JobSubmitted(
        producer=PRODUCER,
        job_id="old",
        questions=[QuestionText(id="math_basic", category="control", prompt="What is 2+2?")],
        models=[ModelRef(id="mistral-7b", name="Mistral"), ModelRef(id="llama3.2-1b", name="Llama")],
        regions=[RegionRef(id="eu-west", display="EU", system_prompt="You are in Europe.")],
        params=GenerationParams(temperature=0.1, max_tokens=500),
        submitted_at=NOW,
        deadline=NOW + timedelta(seconds=60),
        expected_executions=cell_count(1, 2, 1),
        spec_sha256="0" * 64,
    )


def test_an_old_style_job_has_cells_without_a_language() -> None:
    job = parse_event(encode(_old_style_job()))
    assert isinstance(job, JobSubmitted) and job.catalogue is None and job.regions[0].languages == []
    assert cells_of(job) == [
        ("eu-west", "mistral-7b", "math_basic", None),
        ("eu-west", "llama3.2-1b", "math_basic", None),
    ]
    assert missing_cells(job, {("eu-west", "mistral-7b", "math_basic", None)}) == [
        ("eu-west", "llama3.2-1b", "math_basic", None)
    ]
    assert missing_cells(job, {("eu-west", "mistral-7b", "math_basic", "en")}) == cells_of(job)
    cells = expand.cells(job, "eu-west", PRODUCER)
    assert [c.key for c in cells] == ["old|eu-west|mistral-7b|math_basic", "old|eu-west|llama3.2-1b|math_basic"]
    assert cells[0].language is None and cells[0].question is not None
    assert cells[0].question.prompt == "What is 2+2?" and cells[0].region.system_prompt == "You are in Europe."
    assert execution_key("old", "eu-west", "m", None, None) == "old|eu-west|m|"
    timeout = results.timeout(job, cells_of(job)[0], NOW + timedelta(seconds=61), RECORDER)
    assert timeout.language is None and timeout.key == "old|eu-west|mistral-7b|math_basic"
    assert timeout.receipt.prompt_sha256 == sha("What is 2+2?")


def test_a_timeout_of_a_zh_cell_hashes_the_chinese_words() -> None:
    job = submit({**SMALL, "languages": {"asia-pacific": ["en", "zh"]}})
    at = job.deadline + timedelta(seconds=3)
    zh = results.timeout(job, ("asia-pacific", "mistral-7b", "math_basic", "zh"), at, RECORDER)
    en = results.timeout(job, ("asia-pacific", "mistral-7b", "math_basic", "en"), at, RECORDER)
    assert zh.language == "zh" and zh.key == "j|asia-pacific|mistral-7b|math_basic|zh"
    assert zh.status == "timeout" and zh.answer is None
    assert zh.receipt.prompt_sha256 == sha(ZH_MATH)
    assert zh.receipt.system_prompt_sha256 == sha(ZH_ASIA)
    assert en.receipt.prompt_sha256 == sha("What is 2+2?")
    assert en.receipt.system_prompt_sha256 == sha(DEFAULT.regions["asia-pacific"].system_prompts["en"])
    # The runner's receipt for the same cell hashes the same words.
    zh_cell = next(c for c in expand.cells(job, "asia-pacific", PRODUCER) if c.key == zh.key)
    assert results.Asked.of_cell(zh_cell) == results.Asked.of_job(
        job, ("asia-pacific", "mistral-7b", "math_basic", "zh")
    )
