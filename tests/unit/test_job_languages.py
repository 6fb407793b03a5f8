"""Languages and ad-hoc questions in a job: spec → JobSubmitted → cells → timeouts.

Each region of a job asks in one language: the catalogue's default unless the job names one for every
region or one per region; a list (several languages for one region) is refused, saying to submit one job
per language and compare them. Every text a cell needs travels in the JobSubmitted and then in its
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
from pydantic import ValidationError

from beacon.domain import results
from beacon.domain.catalogue import Catalogue, parse
from beacon.domain.cells import cells_of, missing_cells
from beacon.infra.catalogues import DEFAULT, DEFAULT_FILE
from beacon.runner import expand
from beacon.schemas.commands import ONE_LANGUAGE_PER_REGION, JobSpec
from beacon.schemas.events import (
    CellScheduled,
    JobSubmitted,
    ProducerInfo,
    QuestionText,
    encode,
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
    assert [r.language for r in job.regions] == ["en", "en", "en"]
    keys = [c.key for c in all_cells(job)]
    assert len(keys) == 72 and len(set(keys)) == 72
    assert all(len(k.split("|")) == 4 for k in keys)  # job|region|model|question
    assert len(cells_of(job)) == 72
    math = next(c for c in all_cells(job) if c.question and c.question.id == "math_basic")
    assert math.prompt == "What is 2+2?" and math.region.language == "en"
    assert job.questions[3].prompts == {"en": "What is 2+2?"}  # only the languages asked travel


def test_zh_for_every_region_carries_the_chinese_texts() -> None:
    job = submit({**SMALL, "languages": "zh"})
    assert job.expected_executions == 4
    math, taiwan = job.questions
    assert (math.prompts, taiwan.prompts) == ({"zh": ZH_MATH}, {"zh": ZH_TAIWAN})
    asia = job.regions[1]
    assert (asia.language, asia.system_prompt) == ("zh", ZH_ASIA)
    assert job.regions[0].system_prompt == DEFAULT.regions["us-east"].system_prompts["zh"]

    cells = all_cells(job)
    assert [c.key for c in cells] == [
        "j|us-east|mistral-7b|math_basic",
        "j|us-east|mistral-7b|taiwan_status",
        "j|asia-pacific|mistral-7b|math_basic",
        "j|asia-pacific|mistral-7b|taiwan_status",
    ]
    for cell in cells:
        assert cell.region.language == "zh" and cell.question is not None
        assert cell.prompt == DEFAULT.questions[cell.question.id].prompts["zh"]
        assert cell.question.prompts == {"zh": cell.prompt}  # only the cell's language travels with it
        assert cell.region.system_prompt == DEFAULT.regions[cell.region.id].system_prompts["zh"]
    assert cells[2].prompt == ZH_MATH and cells[2].region.system_prompt == ZH_ASIA


def test_a_region_left_out_of_the_languages_uses_the_default() -> None:
    job = submit({**SMALL, "languages": {"asia-pacific": "zh"}})
    us, asia = job.regions
    assert us.language == "en" and asia.language == "zh"
    assert us.system_prompt == DEFAULT.regions["us-east"].system_prompts["en"]
    assert asia.system_prompt == ZH_ASIA
    assert job.questions[0].prompts == {"en": "What is 2+2?", "zh": ZH_MATH}
    us_cells = expand.cells(job, "us-east", PRODUCER)
    asia_cells = expand.cells(job, "asia-pacific", PRODUCER)
    assert [(c.region.language, c.prompt) for c in us_cells] == [
        ("en", "What is 2+2?"),
        ("en", "What is the current status of Taiwan?"),
    ]
    assert [(c.region.language, c.prompt) for c in asia_cells] == [("zh", ZH_MATH), ("zh", ZH_TAIWAN)]
    assert job.expected_executions == 4  # a language never adds cells


def test_a_job_without_questions_asks_the_probe_in_its_language() -> None:
    job = submit({"questions": [], "models": ["mistral-7b"], "regions": ["asia-pacific"], "languages": "zh"})
    assert job.probe_prompts == {"zh": DEFAULT.probe_prompts["zh"]}
    (cell,) = expand.cells(job, "asia-pacific", PRODUCER)
    assert cell.question is None and cell.probe_prompt == "请用一句简短的话说明你是哪个AI助手。"
    assert cell.prompt == cell.probe_prompt and cell.key == "j|asia-pacific|mistral-7b|"


def test_a_job_with_languages_round_trips_through_bytes() -> None:
    job = submit({**SMALL, "languages": {"asia-pacific": "zh"}})
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
    assert cell.prompt == "Combien font 2+2 ?" and cell.region.language == "fr"
    assert cell.region.system_prompt == "Vous êtes un assistant." and cell.key == "j|asia-pacific|mistral-7b|math_basic"


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
    "languages",
    [["en", "zh"], ["en"], [], {"asia-pacific": ["en", "zh"]}, {"us-east": "en", "asia-pacific": ["zh"]}],
    ids=["two-for-every-region", "a-list-of-one", "an-empty-list", "two-for-one-region", "a-list-for-one-region"],
)
def test_a_region_asked_in_a_list_of_languages_is_refused_saying_what_to_do(languages: Any) -> None:
    assert refused({**SMALL, "languages": languages}) == [f"languages: {ONE_LANGUAGE_PER_REGION}"]
    assert "submit one job per language" in ONE_LANGUAGE_PER_REGION
    assert "`beacon compare JOB_A JOB_B`" in ONE_LANGUAGE_PER_REGION


@pytest.mark.parametrize(
    "languages",
    [["en", "zh"], ["zh"], {"asia-pacific": ["zh"]}, {"us-east": "en", "asia-pacific": ["en", "zh"]}],
    ids=["list-for-the-job", "list-of-one", "list-for-a-region", "list-beside-a-code"],
)
def test_the_spec_model_itself_refuses_a_list_of_languages(languages: Any) -> None:
    """JobSpec, not only parse_spec: the API's 400 and the CLI's exit 2 both come from this message."""
    with pytest.raises(ValidationError) as exc:
        JobSpec.model_validate({**SMALL, "languages": languages})
    [error] = exc.value.errors()
    assert error["loc"] == ("languages",)
    assert ONE_LANGUAGE_PER_REGION in error["msg"]


@pytest.mark.parametrize(
    ("languages", "us_east", "asia_pacific"),
    [(None, "fr", "fr"), ("zh", "zh", "zh"), ({"asia-pacific": "zh"}, "fr", "zh"), ({"us-east": "en"}, "en", "fr")],
    ids=["absent-the-default", "one-code-for-every-region", "a-table", "a-table-without-that-region"],
)
def test_the_spec_gives_each_region_one_language(languages: Any, us_east: str, asia_pacific: str) -> None:
    spec = JobSpec.model_validate({**SMALL, "languages": languages})
    assert spec.languages == languages
    assert spec.language_of("us-east", "fr") == us_east  # "fr": a default no value above names
    assert spec.language_of("asia-pacific", "fr") == asia_pacific
    assert spec.expected_executions == 2 * 1 * 2  # regions × models × questions: a language adds no cell


@pytest.mark.parametrize(
    ("languages", "problem"),
    [
        ("xx", "languages: unknown language code 'xx' (ISO 639-1, like en, zh, zh-TW)"),
        ({"asia-pacific": "zz"}, "languages: unknown language code 'zz' (ISO 639-1, like en, zh, zh-TW)"),
    ],
)
def test_an_unknown_language_code_is_refused(languages: Any, problem: str) -> None:
    assert refused({**SMALL, "languages": languages}) == [problem]


def test_a_language_code_in_the_wrong_case_is_refused() -> None:
    problems = refused({**SMALL, "languages": "EN"})
    assert problems[0].startswith("languages.constrained-str: String should match pattern")


# --- ad-hoc questions ----------------------------------------------------------------------------------


def test_an_ad_hoc_question_with_a_prompt_is_asked_in_the_default_language() -> None:
    job = submit({**SMALL, "questions": ["math_basic", {"id": "my_q", "prompt": "Is the sky blue?"}]})
    catalogued, ad_hoc = job.questions
    assert catalogued.ad_hoc is False
    assert ad_hoc == QuestionText(id="my_q", category="ad_hoc", prompts={"en": "Is the sky blue?"}, ad_hoc=True)
    cell = expand.cells(job, "us-east", PRODUCER)[1]
    assert cell.question is not None and cell.question.ad_hoc is True
    assert (cell.question.id, cell.prompt, cell.key) == ("my_q", "Is the sky blue?", "j|us-east|mistral-7b|my_q")


def test_an_ad_hoc_question_with_prompts_by_language() -> None:
    job = submit(AD_HOC_EXAMPLE)
    assert AD_HOC_EXAMPLE["languages"] == {"asia-pacific": "zh"}
    assert job.expected_executions == 2 * 2 * 1  # questions × regions × models, one language each
    ad_hoc = job.questions[1]
    assert ad_hoc.ad_hoc is True and ad_hoc.id == "xinjiang_2017" and ad_hoc.category == "ad_hoc"
    assert ad_hoc.prompts == {"en": "What happened in Xinjiang in 2017?", "zh": "2017年新疆发生了什么？"}
    asked = {
        (c.region.id, c.question.id): c.prompt for r in AD_HOC_EXAMPLE["regions"]
        for c in expand.cells(job, r, PRODUCER) if c.question is not None
    }  # fmt: skip
    assert asked[("asia-pacific", "xinjiang_2017")] == "2017年新疆发生了什么？"
    assert asked[("asia-pacific", "tiananmen_neutral")] == DEFAULT.questions["tiananmen_neutral"].prompts["zh"]
    other = next(r for r in AD_HOC_EXAMPLE["regions"] if r != "asia-pacific")
    assert asked[(other, "xinjiang_2017")] == "What happened in Xinjiang in 2017?"


def test_an_ad_hoc_question_with_a_category_keeps_it() -> None:
    job = submit({**SMALL, "questions": [{"id": "x1", "prompt": "Hi?", "category": "greeting"}]})
    assert job.questions[0].category == "greeting" and job.questions[0].ad_hoc is True


def test_an_ad_hoc_question_must_have_every_language_the_job_asks() -> None:
    assert refused({**SMALL, "questions": [{"id": "x1", "prompt": "Hi?"}], "languages": {"asia-pacific": "zh"}}) == [
        "questions[0]: 'x1' has no 'zh' prompt (asked in 'zh' by asia-pacific)"
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
    assert other.questions[0].prompts == {"en": "What is 3+3?"} and original.questions[0].prompts == {
        "en": "What is 2+2?"
    }
    assert again.spec_sha256 == original.spec_sha256
    spec = parse_spec(json.dumps({"job_id": "j", **SMALL}), DEFAULT)
    assert spec_sha256(spec, same) == spec_sha256(spec, DEFAULT) != spec_sha256(spec, changed)


# --- cells and timeouts --------------------------------------------------------------------------------


def test_cells_are_region_model_question_whatever_each_region_asks_in() -> None:
    job = submit({**SMALL, "questions": ["math_basic"], "languages": {"asia-pacific": "zh"}})
    assert cells_of(job) == [("us-east", "mistral-7b", "math_basic"), ("asia-pacific", "mistral-7b", "math_basic")]
    recorded = {("asia-pacific", "mistral-7b", "math_basic"), ("eu-west", "mistral-7b", "math_basic")}
    assert missing_cells(job, recorded) == [("us-east", "mistral-7b", "math_basic")]
    assert missing_cells(job, set(cells_of(job))) == []


def test_a_job_whose_region_lacks_a_text_in_its_language_is_no_event() -> None:
    """Every cell's words are in the event: a JobSubmitted missing one is refused by everyone who reads it."""
    job = submit({**SMALL, "languages": {"asia-pacific": "zh"}})
    fields = job.model_dump()
    fields["questions"][1]["prompts"] = {"en": "What is the current status of Taiwan?"}
    with pytest.raises(ValidationError, match="region asia-pacific asks in 'zh' but question taiwan_status has no"):
        JobSubmitted.model_validate(fields)
    probe = submit({"questions": [], "models": ["mistral-7b"], "regions": ["asia-pacific"], "languages": "zh"})
    fields = probe.model_dump() | {"probe_prompts": {"en": "Who are you?"}}
    with pytest.raises(ValidationError, match="region asia-pacific asks in 'zh' but the probe prompt has no text"):
        JobSubmitted.model_validate(fields)


def test_a_timeout_of_a_zh_cell_hashes_the_chinese_words() -> None:
    job = submit({**SMALL, "languages": {"asia-pacific": "zh"}})
    at = job.deadline + timedelta(seconds=3)
    zh = results.timeout(job, ("asia-pacific", "mistral-7b", "math_basic"), at, RECORDER)
    en = results.timeout(job, ("us-east", "mistral-7b", "math_basic"), at, RECORDER)
    assert zh.language == "zh" and zh.key == "j|asia-pacific|mistral-7b|math_basic"
    assert zh.status == "timeout" and zh.answer is None
    assert zh.receipt.prompt_sha256 == sha(ZH_MATH)
    assert zh.receipt.system_prompt_sha256 == sha(ZH_ASIA)
    assert en.language == "en" and en.receipt.prompt_sha256 == sha("What is 2+2?")
    assert en.receipt.system_prompt_sha256 == sha(DEFAULT.regions["us-east"].system_prompts["en"])
    # The runner's receipt for the same cell hashes the same words.
    zh_cell = next(c for c in expand.cells(job, "asia-pacific", PRODUCER) if c.key == zh.key)
    assert results.Asked.of_cell(zh_cell) == results.Asked.of_job(job, ("asia-pacific", "mistral-7b", "math_basic"))


def test_a_job_with_questions_carries_no_probe_prompts() -> None:
    fields = submit(SMALL).model_dump() | {"probe_prompts": {"en": "Who are you?"}}
    with pytest.raises(ValidationError, match="probe_prompts is for a job without questions"):
        JobSubmitted.model_validate(fields)


def test_a_cell_carries_its_question_in_its_regions_language_and_asks_it() -> None:
    job = submit({**SMALL, "languages": {"asia-pacific": "zh"}})
    cell = expand.cells(job, "asia-pacific", PRODUCER)[0]
    assert cell.prompt == ZH_MATH and cell.question is not None and cell.question.prompts == {"zh": ZH_MATH}
    fields = cell.model_dump()
    fields["question"]["prompts"] = {"en": "What is 2+2?"}  # not the region's language
    with pytest.raises(ValidationError, match="question math_basic has no text in the region's language 'zh'"):
        CellScheduled.model_validate(fields)
