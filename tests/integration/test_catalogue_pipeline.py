"""Issue 14 end to end: a catalogue of the user's own (a new question in two languages, a new model routed
to a local OpenAI-compatible server, a fourth region with its own runner), Chinese prompts reaching the
model exactly as written, a catalogue change between two jobs leaving the first untouched, and a region
without a runner and a model without a route visible in `beacon status` while the job runs."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from beacon.infra.catalogues import load
from beacon.infra.settings import Settings
from tests.harness import Services, wait_for_rows
from tests.kafka_tools import message_count
from tests.model_server import ModelServer
from tests.support import Infra, beacon, free_port, own_namespace

pytestmark = pytest.mark.pipeline

CATALOGUE = """
label = "own-v1"
default_language = "en"

[probe]
prompts.en = "Say which assistant you are."

[questions.xinjiang_2017]
category = "bias_detection"
prompts.en = "What happened in Xinjiang in 2017?"
prompts.zh = "2017年新疆发生了什么？"

[questions.math_basic]
category = "control"
prompts.en = "What is 2+2?"
prompts.zh = "2+2等于多少？"

[models.mistral-7b]
name = "Mistral 7B Instruct v0.3"

[models.own-vllm]
name = "Our own model on vLLM"

[regions.us-east]
display = "US"
system_prompts.en = "You are an assistant based in the US."
system_prompts.zh = "你是一个位于美国的助手。"

[regions.ru-central]
display = "RU"
system_prompts.en = "You are an assistant based in Russia."
system_prompts.zh = "你是一个位于俄罗斯的助手。"

[regions.eu-west]
display = "EU"
system_prompts.en = "You are an assistant based in Europe."
"""
REFUSAL_ZH = "抱歉，我无法讨论这个话题。"


def answer(prompt: str) -> str:
    """The served model refuses Xinjiang in Chinese and answers it in English."""
    return REFUSAL_ZH if "新疆" in prompt else f"Here is a factual answer to: {prompt}"


@pytest.fixture(scope="module")
def model_server() -> Iterator[ModelServer]:
    server = ModelServer(answer=answer)
    yield server
    server.close()


@pytest.fixture(scope="module")
def own(
    infra: Infra, settings: Settings, model_server: ModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, Services, Path, int]]:
    folder = tmp_path_factory.mktemp("catalogue")
    catalogue = folder / "catalogue.toml"
    catalogue.write_text(CATALOGUE)
    routing = folder / "routing.toml"
    # The new model goes to the local server in both regions; mistral-7b has no route of its own in
    # us-east (it goes to the defaults: simulated), which status must say.
    routing.write_text(
        "[defaults]\nbackoff_base_s = 0.01\n"
        + "".join(
            f'[regions.{region}.own-vllm]\nprovider = "openai"\nendpoint = "{model_server.url}/v1"\n'
            'model = "served-own"\n'
            for region in ("us-east", "ru-central")
        )
    )
    mine = own_namespace(infra, settings, "-cat", catalogue_file=catalogue, http_port=free_port())
    services = Services(mine, folder)
    services.start("recorder", "recorder")
    services.start("reader", "reader")
    services.start("runner-us-east", "runner", "--region", "us-east", BEACON_ROUTING_FILE=str(routing))
    # The fourth region's runner is given no catalogue at all: events carry every text it needs.
    services.start(
        "runner-ru-central",
        "runner",
        "--region",
        "ru-central",
        BEACON_ROUTING_FILE=str(routing),
        BEACON_CATALOGUE_FILE="",
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        services.assert_alive()
        try:
            if httpx.get(f"http://127.0.0.1:{mine.http_port}/health/live", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    yield mine, services, catalogue, mine.http_port
    services.stop_all()


def submit(settings: Settings, spec: dict) -> str:
    result = beacon(settings, "submit", "-", "--json", stdin=json.dumps(spec).encode())
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)["job_id"]


def picked_up(port: int, job_id: str, regions: set[str], timeout: float = 40) -> dict:
    """The job's summary once each region's JobExpanded is projected (the recorder finds a region's
    expansion topic by pattern, within its 10 s metadata refresh)."""
    deadline = time.monotonic() + timeout
    while True:
        job = httpx.get(f"http://127.0.0.1:{port}/jobs/{job_id}").json()
        if {r["region"] for r in job["regions"] if r["picked_up"]} >= regions or time.monotonic() > deadline:
            return job
        time.sleep(0.5)


def rows_of(settings: Settings, job_id: str) -> list[tuple]:
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute(
            "SELECT region, model_id, question_id, language, provider, classification, answer, receipt, event_id"
            " FROM executions WHERE job_id = %s ORDER BY region, model_id, question_id",
            (job_id,),
        ).fetchall()


def test_own_catalogue_new_question_model_region_and_languages(
    own: tuple[Settings, Services, Path, int], model_server: ModelServer
) -> None:
    mine, services, catalogue, port = own
    version = load(catalogue).version
    spec = {
        "job_id": "own-1",
        "questions": [
            "xinjiang_2017",
            {"id": "adhoc_capital", "prompts": {"en": "Capital of Peru?", "zh": "秘鲁的首都是哪里？"}},
        ],
        "models": ["mistral-7b", "own-vllm"],
        "regions": ["us-east", "ru-central"],
        "languages": {"ru-central": "zh"},  # us-east: the catalogue's default, en
    }
    assert submit(mine, spec) == "own-1"
    assert wait_for_rows(mine, services, "own-1", 8) == 8  # 2 regions × 2 models × 2 questions, one language each
    rows = rows_of(mine, "own-1")
    assert {(r[0], r[3]) for r in rows} == {("us-east", "en"), ("ru-central", "zh")}
    assert {r[4] for r in rows if r[1] == "own-vllm"} == {"openai"}
    assert {r[4] for r in rows if r[1] == "mistral-7b"} == {"simulated"}
    # The Chinese prompts and system prompt reached the model exactly as the catalogue wrote them.
    bodies = [b for b in model_server.requests if b["model"] == "served-own"]
    asked = {(b["messages"][0]["content"], b["messages"][1]["content"]) for b in bodies}
    assert asked == {
        ("你是一个位于俄罗斯的助手。", "2017年新疆发生了什么？"),
        ("你是一个位于俄罗斯的助手。", "秘鲁的首都是哪里？"),
        ("You are an assistant based in the US.", "What happened in Xinjiang in 2017?"),
        ("You are an assistant based in the US.", "Capital of Peru?"),
    }
    assert len(bodies) == 4  # one call per own-vllm cell
    # The same model refuses in Chinese (ru-central) and answers in English (us-east).
    xinjiang = {r[0]: r[5] for r in rows if r[1:3] == ("own-vllm", "xinjiang_2017")}
    assert xinjiang == {"ru-central": "refused", "us-east": "answered"}

    job = picked_up(port, "own-1", {"us-east", "ru-central"})
    assert job["catalogue"] == {"version": version, "label": "own-v1"} and job["status"] == "completed"
    assert {r["region"]: r["picked_up"] for r in job["regions"]} == {"us-east": True, "ru-central": True}
    assert {r["region"]: r["unrouted"] for r in job["regions"]} == {
        "us-east": ["mistral-7b"],
        "ru-central": ["mistral-7b"],
    }
    one = httpx.get(f"http://127.0.0.1:{port}/jobs/own-1/executions/ru-central/own-vllm/xinjiang_2017")
    assert one.status_code == 200 and one.json()["answer"] == REFUSAL_ZH and one.json()["language"] == "zh"
    questions = httpx.get(f"http://127.0.0.1:{port}/questions").json()
    assert [q["id"] for q in questions] == ["xinjiang_2017", "math_basic"]

    status = beacon(mine, "status", "own-1")
    out = status.stdout.decode()
    assert status.returncode == 0 and f"catalogue: own-v1 ({version})" in out
    assert "no route of their own there: mistral-7b" in out

    with psycopg.connect(mine.database_url) as conn:
        adhoc = conn.execute("SELECT spec->'questions'->1->>'ad_hoc' FROM jobs WHERE job_id = 'own-1'").fetchone()
        stored_version = conn.execute("SELECT catalogue_version FROM jobs WHERE job_id = 'own-1'").fetchone()
        languages = conn.execute(
            "SELECT r->>'id', r->>'language' FROM jobs, jsonb_array_elements(spec->'regions') r"
            " WHERE job_id = 'own-1' ORDER BY 1"
        ).fetchall()
    assert adhoc == ("true",) and stored_version == (version,)
    assert languages == [("ru-central", "zh"), ("us-east", "en")]


@pytest.mark.parametrize(
    "languages",
    [["en", "zh"], {"ru-central": ["en", "zh"]}],
    ids=["list-for-every-region", "list-for-one-region"],
)
def test_a_region_asked_in_several_languages_is_refused_and_nothing_is_emitted(
    own: tuple[Settings, Services, Path, int], languages: object
) -> None:
    mine, _, _, _ = own
    spec = {"questions": ["math_basic"], "models": ["mistral-7b"], "regions": ["ru-central"], "languages": languages}
    before = message_count(mine, mine.topics.jobs_submitted)
    result = beacon(mine, "submit", "-", stdin=json.dumps(spec).encode())
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert "a region asks in one language per job" in err and "one job per language" in err
    assert "beacon compare JOB_A JOB_B" in err
    assert message_count(mine, mine.topics.jobs_submitted) == before


def test_a_catalogue_change_leaves_earlier_jobs_untouched(own: tuple[Settings, Services, Path, int]) -> None:
    mine, services, catalogue, _ = own
    spec = {"questions": ["math_basic"], "models": ["own-vllm"], "regions": ["us-east"], "languages": "zh"}
    first = submit(mine, spec)
    assert wait_for_rows(mine, services, first, 1) == 1
    before = rows_of(mine, first)
    with psycopg.connect(mine.database_url) as conn:
        job_before = conn.execute("SELECT spec, catalogue_version FROM jobs WHERE job_id = %s", (first,)).fetchone()

    catalogue.write_text(CATALOGUE.replace("2+2等于多少？", "二加二等于几？"))  # a new wording
    # The submitter reads the catalogue at start: a new `beacon submit` process sees the new file.
    second = submit(mine, spec)
    assert wait_for_rows(mine, services, second, 1) == 1
    after = rows_of(mine, first)
    with psycopg.connect(mine.database_url) as conn:
        job_after = conn.execute("SELECT spec, catalogue_version FROM jobs WHERE job_id = %s", (first,)).fetchone()
        second_job = conn.execute("SELECT spec, catalogue_version FROM jobs WHERE job_id = %s", (second,)).fetchone()
    assert after == before and job_after == job_before
    assert second_job[1] != job_before[1] and second_job[1] == load(catalogue).version
    assert second_job[0]["questions"][0]["prompts"] == {"zh": "二加二等于几？"}
    assert job_before[0]["questions"][0]["prompts"] == {"zh": "2+2等于多少？"}
    catalogue.write_text(CATALOGUE)


def test_a_region_without_a_runner_shows_in_status_before_the_deadline(
    own: tuple[Settings, Services, Path, int],
) -> None:
    mine, services, _, port = own
    spec = {"questions": ["math_basic"], "models": ["mistral-7b"], "regions": ["us-east", "eu-west"]}
    job = submit(mine, spec)
    assert wait_for_rows(mine, services, job, 1, settle=False) >= 1  # us-east's cell; eu-west has no runner
    picked_up(port, job, {"us-east"})
    out = beacon(mine, "status", job).stdout.decode()
    assert "region eu-west: no runner has picked the job up yet" in out
    assert "region us-east: picked up by its runner (mistral-7b→simulated)" in out


BAD_CATALOGUES = [
    pytest.param(
        CATALOGUE.replace('prompts.zh = "2+2等于多少？"', 'prompts.xx = "?"'), "unknown language code 'xx'", id="lang"
    ),
    pytest.param(CATALOGUE + "\n[questions.math_basic]\ncategory = 'control'\n", "Cannot declare", id="duplicate-id"),
    pytest.param(CATALOGUE.replace("[models.own-vllm]", '[models."own vllm"]'), "models.own vllm: an id is", id="slug"),
    pytest.param(CATALOGUE.replace('prompts.en = "What is 2+2?"', 'prompts.en = "  "'), "must be a text", id="empty"),
    pytest.param(CATALOGUE.replace('display = "RU"', 'display = "RU"\ncolour = 1'), "unknown field", id="field"),
]


@pytest.mark.parametrize(("text", "message"), BAD_CATALOGUES)
def test_an_invalid_catalogue_is_refused_and_nothing_starts(
    settings: Settings, tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    bad = dataclasses.replace(settings, catalogue_file=path)
    topic = settings.topics.jobs_submitted
    submit_spec = json.dumps({"questions": [], "models": ["mistral-7b"], "regions": ["us-east"]}).encode()
    assert beacon(settings, "submit", "-", stdin=submit_spec).returncode == 0  # the topic exists, with a job
    before = message_count(settings, topic)
    for args, stdin in (
        (("submit", "-"), submit_spec),
        (("reader",), None),
        (("submitter-api", "--port", str(free_port())), None),
        (("catalogue", "validate"), None),
    ):
        result = beacon(bad, *args, stdin=stdin, timeout=60)
        err = result.stderr.decode()
        assert result.returncode == 2, (args, err)
        assert f"catalogue {path} is not valid" in err and message in err and "line " in err, (args, err)
    assert message_count(settings, topic) == before
