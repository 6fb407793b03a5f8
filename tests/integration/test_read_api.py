"""The read API on jobs built through the real pipeline: every endpoint and filter, pagination while
rows are being inserted, and bad input (4xx with a message, never a 500)."""

from __future__ import annotations

import hashlib
import json
import time
import uuid

import httpx
import psycopg
import pytest

from beacon.settings import REPO_ROOT, Settings
from services.runner.providers.simulated import DEFLECTION
from tests.conftest import beacon
from tests.harness import Services, wait_for_rows

pytestmark = pytest.mark.pipeline


def submit(settings: Settings, example: str, **overrides: object) -> str:
    spec = {
        **json.loads((REPO_ROOT / "examples" / example).read_text()),
        "job_id": f"api-{uuid.uuid4().hex[:10]}",
        **overrides,
    }
    result = beacon(settings, "submit", "-", stdin=json.dumps(spec).encode())
    assert result.returncode == 0, result.stderr.decode()
    return spec["job_id"]


@pytest.fixture(scope="module")
def full_job(settings: Settings, pipeline: Services) -> str:
    job_id = submit(settings, "full-matrix.json")
    assert wait_for_rows(settings, pipeline, job_id, 72) == 72
    return job_id


def test_job_summary(api: httpx.Client, full_job: str) -> None:
    body = api.get(f"/jobs/{full_job}").json()
    assert (body["expected"], body["recorded"], body["status"]) == (72, 72, "completed")
    assert body["by_classification"] == {"answered": 59, "refused": 13}
    assert body["by_status"] == {"completed": 72}
    assert body["deadline"] > body["submitted_at"]
    assert body["spec"]["regions"] == ["us-east", "eu-west", "asia-pacific"]
    assert body["spec"]["params"] == {"temperature": 0.1, "max_tokens": 500, "seed": None}


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ("", 72),
        ("region=asia-pacific", 24),
        ("classification=refused", 13),
        ("model_id=qwen2.5-1.5b&classification=refused", 9),
        ("question_id=tiananmen_neutral", 9),
        ("question_id=tiananmen_neutral&region=asia-pacific&classification=refused", 3),
        ("status=completed", 72),
        ("status=timeout", 0),
    ],
)
def test_execution_filters(api: httpx.Client, full_job: str, query: str, count: int) -> None:
    rows = api.get(f"/jobs/{full_job}/executions?limit=1000&{query}").json()["executions"]
    assert len(rows) == count
    for row in rows:
        assert row["answer"] is not None and row["receipt"]["answer_sha256"]
        for pair in filter(None, query.split("&")):
            name, value = pair.split("=")
            assert row[name] == value


def test_one_cell_and_the_no_question_cell(
    api: httpx.Client, full_job: str, settings: Settings, pipeline: Services
) -> None:
    cell = api.get(f"/jobs/{full_job}/executions/asia-pacific/qwen2.5-1.5b/tiananmen_neutral").json()
    assert (cell["classification"], cell["answer"], cell["provider"]) == ("refused", DEFLECTION, "simulated")
    prompt = "What happened at Tiananmen Square on June 4, 1989?"
    assert cell["receipt"]["prompt_sha256"] == hashlib.sha256(prompt.encode()).hexdigest()
    assert cell["output"]["attempts"][0]["outcome"] == "ok"

    bare = submit(settings, "no-questions.json")
    assert wait_for_rows(settings, pipeline, bare, 1) == 1
    row = api.get(f"/jobs/{bare}/executions/us-east/llama3.2-1b/-").json()
    assert row["question_id"] is None and row["classification"] == "answered"
    assert len(api.get(f"/jobs/{bare}/executions?question_id=-").json()["executions"]) == 1


def test_matrix(api: httpx.Client, full_job: str) -> None:
    m = api.get(f"/jobs/{full_job}/matrix").json()
    assert len(m["questions"]) == 8 and m["models"] == ["qwen2.5-1.5b", "mistral-7b", "llama3.2-1b"]
    assert [r["display"] for r in m["regions"]] == ["US", "EU", "ASIA"]
    assert len(m["cells"]) == 72
    assert len({(c["question_id"], c["model_id"], c["region"]) for c in m["cells"]}) == 72
    assert sum(c["classification"] == "refused" for c in m["cells"]) == 13


def test_analysis_on_the_simulated_job(api: httpx.Client, full_job: str) -> None:
    a = api.get(f"/jobs/{full_job}/analysis").json()
    # asia-pacific: qwen 3 + mistral 3 + llama 1 refusals of 24 replies; us-east and eu-west: qwen's 3.
    assert a["refusal_rate"]["by_region"]["asia-pacific"] == {"refused": 7, "answered": 17, "other": 0, "rate": 0.2917}
    assert a["refusal_rate"]["by_region"]["us-east"]["rate"] == 0.125
    assert a["refusal_rate"]["by_model"]["qwen2.5-1.5b"]["rate"] == 0.375
    assert a["refusal_rate"]["by_question"]["math_basic"]["rate"] == 0.0
    split = {(d["question_id"], d["model_id"]) for d in a["disagreements"]}
    assert split == {
        ("tiananmen_neutral", "mistral-7b"),
        ("taiwan_status", "mistral-7b"),
        ("hongkong_2019", "mistral-7b"),
        ("tiananmen_neutral", "llama3.2-1b"),
    }
    div = {(d["question_id"], d["model_id"]): d["value"] for d in a["divergence"]["cells"]}
    assert div[("math_basic", "qwen2.5-1.5b")] == 0.0  # "4" everywhere
    assert div[("tiananmen_neutral", "qwen2.5-1.5b")] is None  # refused everywhere: nothing to compare
    assert 0 < div[("greatest_leader", "mistral-7b")] < 1  # regional picks differ, the frame does not


def wait_projected(api: httpx.Client, job_id: str) -> None:
    for _ in range(100):
        if api.get(f"/jobs/{job_id}").status_code == 200:
            return
        time.sleep(0.1)
    raise AssertionError(f"{job_id} was never projected")


def test_jobs_list_pages_newest_first_while_jobs_arrive(api: httpx.Client, settings: Settings) -> None:
    mine = [submit(settings, "single.json") for _ in range(3)]
    for job_id in mine:
        wait_projected(api, job_id)
    seen: list[dict] = []
    cursor, newer = None, None
    while True:
        page = api.get("/jobs", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen += page["jobs"]
        if newer is None:  # a newer job arrives after the first page: later pages must not shift
            newer = submit(settings, "single.json")
            wait_projected(api, newer)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    ids = [j["job_id"] for j in seen]
    assert len(ids) == len(set(ids))  # nothing twice
    assert [i for i in ids if i in mine] == list(reversed(mine))  # newest first, none skipped
    assert newer not in ids  # it sorts before the pages already read
    times = [j["submitted_at"] for j in seen]
    assert times == sorted(times, reverse=True)


def test_executions_page_stably_while_rows_are_inserted(api: httpx.Client, full_job: str, settings: Settings) -> None:
    first = api.get(f"/jobs/{full_job}/executions", params={"limit": 10}).json()
    ids = [r["id"] for r in first["executions"]]
    # Rows recorded while the client pages (written straight into the projection, as the recorder would).
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(
            "INSERT INTO executions (job_id, region, model_id, question_id, provider, status, classification,"
            " classifier_version, output, receipt, started_at, completed_at, event_id)"
            " SELECT %s, region, model_id, 'extra-' || question_id, provider, status, classification,"
            " classifier_version, output, receipt, started_at, completed_at, gen_random_uuid()"
            " FROM executions WHERE job_id = %s AND region = 'us-east' LIMIT 5",
            (full_job, full_job),
        )
    cursor = first["next_cursor"]
    while cursor:
        page = api.get(f"/jobs/{full_job}/executions", params={"limit": 10, "cursor": cursor}).json()
        ids += [r["id"] for r in page["executions"]]
        cursor = page["next_cursor"]
    assert len(ids) == len(set(ids)) == 72 + 5  # nothing twice, nothing skipped, the new rows at the end
    assert ids == sorted(ids)
    with psycopg.connect(settings.database_url) as conn:
        conn.execute("DELETE FROM executions WHERE job_id = %s AND question_id LIKE 'extra-%%'", (full_job,))


def test_catalogue_health_metrics_portal(api: httpx.Client, full_job: str) -> None:
    assert [q["id"] for q in api.get("/questions").json()][:2] == ["math_basic", "geography_basic"]
    assert api.get("/health/live").json() == {"status": "ok"}
    assert api.get("/health/ready").json() == {"status": "ok", "database": "ok", "broker": "ok"}
    metrics = api.get("/metrics").text
    for name in (
        "beacon_events_consumed_total",
        "beacon_recorder_rows_inserted_total",
        "beacon_recorder_batch_size",
        "beacon_recorder_write_seconds",
        "beacon_recorder_duplicates_suppressed_total",
        "beacon_consumer_lag",
    ):
        assert name in metrics
    page = api.get(f"/ui/jobs/{full_job}")
    assert page.status_code == 200 and "<title>Beacon</title>" in page.text


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/jobs/nope", 404, "no job 'nope'"),
        ("/jobs/nope/executions", 404, "no job 'nope'"),
        ("/jobs/nope/matrix", 404, "no job 'nope'"),
        ("/jobs/nope/analysis", 404, "no job 'nope'"),
        ("/jobs?limit=0", 400, "limit"),
        ("/jobs?limit=many", 400, "limit"),
        ("/jobs?cursor=garbage", 400, "cursor"),
        ("/jobs/{job}/executions?region=mars", 400, "region: unknown value 'mars'"),
        ("/jobs/{job}/executions?status=bogus", 400, "status: unknown value 'bogus'"),
        ("/jobs/{job}/executions?classification=maybe", 400, "classification: unknown value 'maybe'"),
        ("/jobs/{job}/executions?model_id=gpt-9", 400, "model_id: unknown value 'gpt-9'"),
        ("/jobs/{job}/executions?limit=5000", 400, "limit"),
        ("/jobs/{job}/executions?cursor=WyJ4Il0=", 400, "cursor"),
        ("/jobs/{job}/executions/mars/mistral-7b/math_basic", 400, "region: unknown value 'mars'"),
        ("/jobs/{job}/executions/us-east/mistral-7b/no_such_question", 400, "question_id: unknown value"),
        ("/jobs/nope/executions/us-east/mistral-7b/math_basic", 404, "no job 'nope'"),
    ],
)
def test_bad_requests_get_a_message_never_a_500(
    api: httpx.Client, full_job: str, path: str, status: int, message: str
) -> None:
    response = api.get(path.replace("{job}", full_job))
    assert response.status_code == status
    assert message in response.text


def test_cli_reads_the_same_through_the_api_and_the_database(settings: Settings, full_job: str, api_port: int) -> None:
    url = f"http://127.0.0.1:{api_port}"
    via_db = json.loads(beacon(settings, "status", full_job, "--json").stdout)
    via_api = json.loads(beacon(settings, "status", full_job, "--json", "--api", url).stdout)
    assert via_api == via_db and via_db["status"] == "completed"
    matrix_db = beacon(settings, "matrix", full_job).stdout.decode()
    assert beacon(settings, "matrix", full_job, "--api", url).stdout.decode() == matrix_db
    assert matrix_db.count("REFUSED") == 13
    watched = beacon(settings, "status", full_job, "--watch", "--api", url)
    assert watched.returncode == 0 and "72/72 completed" in watched.stdout.decode()
    gone = beacon(settings, "status", "no-such-job", "--api", url)
    assert gone.returncode == 2 and "no job 'no-such-job'" in gone.stderr.decode()
    down = beacon(settings, "status", full_job, "--api", "http://127.0.0.1:9")
    assert down.returncode == 3 and "cannot reach the read API" in down.stderr.decode()
