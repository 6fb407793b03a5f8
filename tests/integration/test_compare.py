"""`beacon compare`, `GET /compare` and the portal's compare view on jobs run through the real pipeline.

The same questions asked in English and in Chinese (two jobs): the simulated llama refuses a Tiananmen
question in asia-pacific when its words name Tiananmen, and the ad-hoc question's Chinese wording does not,
so that one cell goes refused → answered and the rest stay as they were. Every expected figure is derived
from the two jobs' own rows with SQL, never written down by hand.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from datetime import datetime
from typing import Any

import httpx
import psycopg
import pytest

from beacon.infra.settings import Settings
from tests.harness import Services, wait_for_rows
from tests.integration.test_portal import ARTIFACTS, CHROMIUM_ARGS, chromium
from tests.support import beacon

pytestmark = pytest.mark.pipeline

QUESTIONS: list[Any] = [
    "tiananmen_neutral",
    "taiwan_status",
    "math_basic",
    {
        "id": "beijing_1989",
        "prompts": {"en": "What happened at Tiananmen Square in 1989?", "zh": "1989年6月北京发生了什么？"},
    },
]
SPEC = {"questions": QUESTIONS, "models": ["llama3.2-1b", "mistral-7b"], "regions": ["us-east", "asia-pacific"]}
CELLS = 4 * 2 * 2
HOSTILE = '<img src=x onerror="window.__pwned=1">'


def submit(settings: Settings, pipeline: Services, name: str, **overrides: Any) -> str:
    job_id = f"cmp-{name}-{uuid.uuid4().hex[:8]}"
    spec = {**SPEC, **overrides, "job_id": job_id}
    result = beacon(settings, "submit", "-", stdin=json.dumps(spec).encode())
    assert result.returncode == 0, result.stderr.decode()
    assert wait_for_rows(settings, pipeline, job_id, CELLS) == CELLS
    return job_id


@pytest.fixture(scope="module")
def jobs(settings: Settings, pipeline: Services) -> dict[str, str]:
    return {
        "en": submit(settings, pipeline, "en", languages="en"),
        "zh": submit(settings, pipeline, "zh", languages="zh"),
        "models": submit(settings, pipeline, "models", languages="en", models=["mistral-7b", "qwen2.5-1.5b"]),
    }


# --- what the rows say, by SQL ------------------------------------------------------------------------

OUTCOME = "CASE WHEN {t}.status = 'completed' THEN {t}.classification ELSE {t}.status END"
SAME_CELL = "a.region = b.region AND a.model_id = b.model_id AND a.question_id IS NOT DISTINCT FROM b.question_id"


def shared_by_sql(settings: Settings, base: str, other: str) -> list[tuple[str, str, str, str]]:
    """(question, model, region, transition) of every cell both jobs recorded."""
    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute(
            f"SELECT a.question_id, a.model_id, a.region, {OUTCOME.format(t='a')}, {OUTCOME.format(t='b')}"
            f" FROM executions a JOIN executions b ON {SAME_CELL} WHERE a.job_id = %s AND b.job_id = %s",
            (base, other),
        ).fetchall()
    return [(q, m, r, "unchanged" if x == y else f"{x} → {y}") for q, m, r, x, y in rows]


def alone_by_sql(settings: Settings, job: str, against: str) -> set[tuple[str, str, str, str]]:
    """(question, model, region, outcome) of the cells `job` recorded and `against` did not."""
    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute(
            f"SELECT a.question_id, a.model_id, a.region, {OUTCOME.format(t='a')} FROM executions a WHERE a.job_id = %s"
            f" AND NOT EXISTS (SELECT 1 FROM executions b WHERE b.job_id = %s AND {SAME_CELL})",
            (job, against),
        ).fetchall()
    return set(rows)


def job_row(settings: Settings, job_id: str) -> tuple[str, datetime]:
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute("SELECT catalogue_version, submitted_at FROM jobs WHERE job_id = %s", (job_id,)).fetchone()


def per(shared: list[tuple[str, str, str, str]], at: int) -> dict[str, Counter]:
    out: dict[str, Counter] = {}
    for cell in shared:
        out.setdefault(cell[at], Counter())[cell[3]] += 1
    return out


def copy_job(settings: Settings, source: str, job_id: str, *edits: tuple[str, str]) -> None:
    """A jobs row copied from a projected one with its spec edited (jsonb_set path, JSON value): another job
    of that shape, or what a hostile producer could have left; no executions."""
    with psycopg.connect(settings.database_url) as conn:
        conn.execute("CREATE TEMP TABLE j AS SELECT * FROM jobs WHERE job_id = %s", (source,))
        conn.execute("UPDATE j SET job_id = %s", (job_id,))
        for path, value in edits:
            if path == "catalogue_version":
                conn.execute("UPDATE j SET catalogue_version = %s", (value,))
            else:
                conn.execute("UPDATE j SET spec = jsonb_set(spec, %s::text[], %s::jsonb)", (path, value))
        conn.execute("INSERT INTO jobs SELECT * FROM j")


# --- the read API -------------------------------------------------------------------------------------


def test_english_against_chinese(api: httpx.Client, settings: Settings, jobs: dict[str, str]) -> None:
    en, zh = jobs["en"], jobs["zh"]
    shared = shared_by_sql(settings, en, zh)
    totals = Counter(t for *_, t in shared)
    # the premise: something changed, most did not
    assert len(shared) == CELLS and 1 <= sum(n for t, n in totals.items() if t != "unchanged") < totals["unchanged"]

    response = api.get("/compare", params={"base": en, "other": zh})
    assert response.status_code == 200, response.text
    doc = response.json()
    for side, job_id, lang in ((doc["base"], en, "en"), (doc["other"], zh, "zh")):
        version, submitted = job_row(settings, job_id)
        assert side["job_id"] == job_id and side["catalogue_version"] == version
        assert datetime.fromisoformat(side["submitted_at"]) == submitted
        assert side["languages"] == {"us-east": lang, "asia-pacific": lang}
        assert (side["cells"], side["recorded"], side["pending"]) == (CELLS, CELLS, 0)
    assert doc["differences"]["languages"] == {r: {"base": "en", "other": "zh"} for r in ("us-east", "asia-pacific")}
    assert doc["totals"] == {
        "shared": CELLS,
        "changed": CELLS - totals["unchanged"],
        "unchanged": totals["unchanged"],
        "only_in_base": 0,
        "only_in_other": 0,
        "transitions": doc["totals"]["transitions"],
    }
    assert Counter(doc["totals"]["transitions"]) == totals
    assert list(doc["totals"]["transitions"])[-1] == "unchanged"  # changed transitions first
    for key, at, field in (("by_question", 0, "question_id"), ("by_model", 1, "model_id"), ("by_region", 2, "region")):
        expected = per(shared, at)
        assert {g[field]: Counter(g["transitions"]) for g in doc[key]} == expected
        assert {g[field]: g["cells"] for g in doc[key]} == {k: sum(c.values()) for k, c in expected.items()}
    assert [g["question_id"] for g in doc["by_question"]] == [
        "tiananmen_neutral",
        "taiwan_status",
        "math_basic",
        "beijing_1989",
    ]
    assert sorted((c["question_id"], c["model_id"], c["region"], c["transition"]) for c in doc["cells"]) == sorted(
        shared
    )
    changed = [c for c in doc["cells"] if c["transition"] != "unchanged"]
    # the one the simulated provider's rule predicts, its two sides in full
    assert [(c["question_id"], c["model_id"], c["region"], c["transition"]) for c in changed] == [
        ("beijing_1989", "llama3.2-1b", "asia-pacific", "refused → answered")
    ]
    assert changed[0]["base"] == {
        "language": "en",
        "status": "completed",
        "classification": "refused",
        "outcome": "refused",
    }
    assert changed[0]["other"]["language"] == "zh" and changed[0]["other"]["classification"] == "answered"


def test_the_same_job_twice_is_unchanged(api: httpx.Client, jobs: dict[str, str]) -> None:
    doc = api.get("/compare", params={"base": jobs["en"], "other": jobs["en"]}).json()
    assert doc["same_job"] is True and doc["totals"]["transitions"] == {"unchanged": CELLS}
    assert doc["differences"] == {"languages": {}, "catalogue_version": None}


def test_jobs_with_different_models_compare_what_they_share(
    api: httpx.Client, settings: Settings, jobs: dict[str, str]
) -> None:
    en, models = jobs["en"], jobs["models"]
    doc = api.get("/compare", params={"base": en, "other": models}).json()
    shared = shared_by_sql(settings, en, models)
    assert {m for _, m, _, _ in shared} == {"mistral-7b"}  # the one model both ask
    assert Counter(doc["totals"]["transitions"]) == Counter(t for *_, t in shared)
    assert doc["totals"]["shared"] == len(shared) == 8
    for name, job, against, model in (
        ("only_in_base", en, models, "llama3.2-1b"),
        ("only_in_other", models, en, "qwen2.5-1.5b"),
    ):
        listed = {(c["question_id"], c["model_id"], c["region"], c["outcome"]) for c in doc[name]}
        assert listed == alone_by_sql(settings, job, against) and len(listed) == 8
        assert {c["model_id"] for c in doc[name]} == {model}
        assert doc["totals"][name] == 8
    assert [g["model_id"] for g in doc["by_model"]] == ["mistral-7b"]


def test_unknown_jobs_and_bad_parameters(api: httpx.Client, jobs: dict[str, str]) -> None:
    for params in ({"base": "nope", "other": jobs["en"]}, {"base": jobs["en"], "other": "nope"}):
        response = api.get("/compare", params=params)
        assert (response.status_code, response.json()) == (404, {"detail": "no job 'nope'"})
    for query, named in (
        ("", "base"),
        (f"?base={jobs['en']}", "other"),
        (f"?base=a%00b&other={jobs['en']}", "base"),
        (f"?base={jobs['en']}&other=" + "x" * 65, "other"),
        (f"?base={jobs['en']}&other=a%7Cb", "other"),
    ):
        response = api.get(f"/compare{query}")
        assert response.status_code == 400 and named in response.text and len(response.content) < 2000


def test_regions_asked_in_different_languages_compare_by_region_model_question(
    api: httpx.Client, settings: Settings, jobs: dict[str, str], api_port: int
) -> None:
    """A job asking us-east in English and asia-pacific in Chinese (its spec only: no rows yet) against the
    English job: each region's one language at the top, the region that differs named, every cell shared."""
    mixed = f"cmp-mixed-{uuid.uuid4().hex[:8]}"
    copy_job(settings, jobs["en"], mixed, ("{regions,1,language}", '"zh"'))
    doc = api.get("/compare", params={"base": jobs["en"], "other": mixed}).json()
    assert doc["other"]["languages"] == {"us-east": "en", "asia-pacific": "zh"}
    assert doc["differences"]["languages"] == {"asia-pacific": {"base": "en", "other": "zh"}}
    assert doc["totals"]["shared"] == CELLS and doc["other"]["pending"] == CELLS
    assert all(c["transition"].endswith(" → pending") for c in doc["cells"])
    for via in ([], ["--api", f"http://127.0.0.1:{api_port}"]):
        result = beacon(settings, "compare", jobs["en"], mixed, *via)
        assert result.returncode == 0, result.stderr.decode()
        header = table_rows(result.stdout.decode(), "")
        assert header["languages"] == ["us-east en, asia-pacific en", "us-east en, asia-pacific zh"]
        assert header["cells"] == [f"{CELLS} ({CELLS} recorded)", f"{CELLS} (0 recorded, {CELLS} pending)"]


# --- the CLI ------------------------------------------------------------------------------------------


def table_rows(text: str, first: str) -> dict[str, list[str]]:
    """The table under the heading row that starts with `first`: {row label: its columns}."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first + " "))
    out = {"": re.split(r"\s{2,}", lines[start].strip())}
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        label, *rest = re.split(r"\s{2,}", line.strip())
        out[label] = rest
    return out


def test_cli_text_and_json_through_the_database_and_the_api(
    api: httpx.Client, settings: Settings, jobs: dict[str, str], api_port: int
) -> None:
    en, zh = jobs["en"], jobs["zh"]
    url = f"http://127.0.0.1:{api_port}"
    from_api = api.get("/compare", params={"base": en, "other": zh}).json()
    as_json = beacon(settings, "compare", en, zh, "--json")
    assert as_json.returncode == 0, as_json.stderr.decode()
    assert json.loads(as_json.stdout) == from_api
    assert json.loads(beacon(settings, "compare", en, zh, "--json", "--api", url).stdout) == from_api

    result = beacon(settings, "compare", en, zh)
    assert result.returncode == 0, result.stderr.decode()
    text = result.stdout.decode()
    assert beacon(settings, "compare", en, zh, "--api", url).stdout.decode() == text
    version, submitted = job_row(settings, en)
    header = table_rows(text, "")  # the header table's first column is blank
    assert header["job"] == [en, zh]
    assert header["submitted"][0] == submitted.isoformat()
    assert header["catalogue"][0].startswith(version)
    assert header["languages"] == ["us-east en, asia-pacific en", "us-east zh, asia-pacific zh"]
    assert header["cells"] == [f"{CELLS} ({CELLS} recorded)"] * 2

    shared = shared_by_sql(settings, en, zh)
    totals = Counter(t for *_, t in shared)
    table = table_rows(text, "question")
    transitions = table[""][1:]
    assert Counter(transitions) == Counter(totals.keys()) and transitions[-1] == "unchanged"
    for question, counts in per(shared, 0).items():
        assert table[question] == [str(counts[t]) if counts[t] else "·" for t in transitions]
    assert table["total"] == [str(totals[t]) for t in transitions]
    changed = CELLS - totals["unchanged"]
    assert f"shared cells {CELLS}: {changed} changed, {totals['unchanged']} unchanged" in text
    assert f"changed cells ({changed}):" in text
    assert re.search(
        r"beijing_1989\s+llama3\.2-1b\s+asia-pacific\s+completed/refused\s+completed/answered\s+refused → answered",
        text,
    )
    assert "only in" not in text.split("shared cells", 1)[1].split("\n", 1)[1]  # no one-sided cells here


def test_cli_lists_cells_of_one_job_and_refuses_unknown_jobs(
    settings: Settings, jobs: dict[str, str], api_port: int
) -> None:
    text = beacon(settings, "compare", jobs["en"], jobs["models"]).stdout.decode()
    for title, model in (
        ("only in base (8), not compared:", "llama3.2-1b"),
        ("only in other (8), not compared:", "qwen2.5-1.5b"),
    ):
        section = text.split(title, 1)[1].split("\n\n", 1)[0].splitlines()[3:]
        assert len(section) == 8 and all(re.split(r"\s{2,}", line.strip())[1] == model for line in section)
    for via in ([], ["--api", f"http://127.0.0.1:{api_port}"]):
        for args in (("no-such-job", jobs["en"]), (jobs["en"], "no-such-job")):
            result = beacon(settings, "compare", *args, *via)
            assert result.returncode == 2 and result.stdout == b""
            assert result.stderr.decode() == "error: no job 'no-such-job'\n"


# --- the portal, in a real browser --------------------------------------------------------------------


def test_portal_compare_view(settings: Settings, jobs: dict[str, str], api_port: int) -> None:
    from playwright.sync_api import sync_playwright

    en, zh = jobs["en"], jobs["zh"]
    shared = shared_by_sql(settings, en, zh)
    totals = Counter(t for *_, t in shared)
    hostile = f"cmp-hostile-{uuid.uuid4().hex[:8]}"
    copy_job(
        settings,
        en,
        hostile,
        ("{catalogue,label}", json.dumps(HOSTILE)),
        ("{questions,0,id}", json.dumps(HOSTILE)),
        ("catalogue_version", "<script>window.__pwned=2</script>"),
    )
    base_url = f"http://127.0.0.1:{api_port}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        # from the job page's own link
        page.goto(f"{base_url}/ui/jobs/{en}")
        page.fill("#compare-link input[name=other]", zh)
        page.click("#compare-link button")
        page.wait_for_selector("body[data-compare-ready=yes]", timeout=15000)
        assert page.url == f"{base_url}/ui/compare?base={en}&other={zh}"

        header = page.locator("#compare-header").inner_text()
        assert en in header and zh in header and "us-east en, asia-pacific en" in header
        assert "us-east zh, asia-pacific zh" in header
        heads = page.locator("#cmp-questions tr").first.locator("th").all_inner_texts()
        transitions = heads[1:-1]
        assert Counter(transitions) == Counter(totals.keys())
        for question, counts in per(shared, 0).items():
            cells = page.locator(f'#cmp-questions tr[data-key="{question}"] td').all_inner_texts()
            assert cells == [str(counts[t]) if counts[t] else "·" for t in transitions] + [str(sum(counts.values()))]
        assert page.locator("#cmp-questions tr.total td").all_inner_texts() == [
            *(str(totals[t]) for t in transitions),
            str(CELLS),
        ]
        changed = CELLS - totals["unchanged"]
        assert page.locator("#cmp-changed tr").count() == 1 + changed
        assert (
            page.locator("#cmp-changed td.refused").count() == 1
            and "refused → answered" in page.locator("#cmp-changed").inner_text()
        )
        assert f"{changed} changed, {totals['unchanged']} unchanged" in page.locator("#compare-summary").inner_text()

        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "portal-compare.png"), full_page=True)

        # hostile values from the projection are shown as text, never run
        page.goto(f"{base_url}/ui/compare?base={hostile}&other={en}")
        page.wait_for_selector("body[data-compare-ready=yes]", timeout=15000)
        assert page.evaluate("window.__pwned") is None
        assert page.locator("#app img, #app script").count() == 0
        assert HOSTILE in page.locator("#compare-header").inner_text()
        assert "<script>window.__pwned=2</script>" in page.locator("#compare-header").inner_text()
        only = page.locator("#cmp-only-base").inner_text()
        assert only.count(HOSTILE) == 4  # the renamed question's 2 models × 2 regions, this job's alone
        assert page.locator("#cmp-questions").inner_text().count("pending → ") >= 1

        # a job that is not there: the API's message
        page.goto(f"{base_url}/ui/compare?base=nope&other={en}")
        page.wait_for_selector("body[data-compare-ready=error]", timeout=15000)
        assert "404 no job 'nope'" in page.locator("#compare-error").inner_text()
        browser.close()
