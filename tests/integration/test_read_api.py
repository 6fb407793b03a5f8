"""The read API on jobs built through the real pipeline: every endpoint and filter, pagination while
rows are being inserted, and bad input (4xx with a message, never a 500)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import uuid
from datetime import UTC, datetime

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from beacon.domain.cells import cells_of
from beacon.infra.catalogues import DEFAULT
from beacon.infra.settings import Settings
from beacon.providers.simulated import DEFLECTION
from beacon.schemas.commands import JobSpec
from beacon.schemas.events import JobSubmitted, ProducerInfo
from beacon.submitter.decide import job_submitted
from tests.harness import Services, wait_for_rows
from tests.paths import EXAMPLES
from tests.support import beacon

pytestmark = pytest.mark.pipeline


def submit(settings: Settings, example: str, **overrides: object) -> str:
    spec = {
        **json.loads((EXAMPLES / example).read_text()),
        "job_id": f"api-{uuid.uuid4().hex[:10]}",
        **overrides,
    }
    result = beacon(settings, "submit", "-", stdin=json.dumps(spec).encode())
    assert result.returncode == 0, result.stderr.decode()
    return spec["job_id"]


def cursor(value: object) -> str:
    return cursor_bytes(json.dumps(value).encode())


def cursor_bytes(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


AT = "2026-11-27T10:00:00+00:00"
COMMON_WRONG_CURSORS = [[1, 2], [], ["x"], [True], [None], [[1]], {"id": 1}, "x", 1, None, [10**30], [1.5]]
WRONG_JOBS_CURSORS = [
    *COMMON_WRONG_CURSORS,
    [5],  # an executions cursor
    [AT],
    [AT, "job", "extra"],
    ["2026-11-27T10:00:00", "job"],  # no time zone
    ["not a time", "job"],
    ["2026-13-45T99:00:00+00:00", "job"],
    [AT, 7],
    [AT, "has|pipe"],
    [AT, "nul\u0000"],
    [AT, "x" * 100],
    ["9" * 1000, "job"],
    [[AT], "job"],
]
WRONG_EXECUTIONS_CURSORS = [
    *COMMON_WRONG_CURSORS,
    [AT, "job"],  # a /jobs cursor
    [-1],
    [2**63],  # past bigint
    ["5"],
    [5, 6],
    [False],
    [[5]],
]
ODD_JOB_PATHS = [
    f"/jobs/{job}{tail}"
    for job in ("%00", "a%00b", "a%20b", "%E2%80%AE", "%FF", "a%7Cb", "-a", "x" * 65, "x" * 10_000, "%0A")
    for tail in ("", "/executions", "/matrix", "/analysis", "/executions/us-east/mistral-7b/math_basic")
]


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
    # no languages given: every region asks in the catalogue's default language, one each
    assert [(r["region"], r["language"]) for r in body["regions"]] == [
        ("us-east", "en"),
        ("eu-west", "en"),
        ("asia-pacific", "en"),
    ]


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
    assert [r["language"] for r in m["regions"]] == ["en", "en", "en"]
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


def test_executions_page_stably_while_rows_are_inserted(api: httpx.Client, settings: Settings) -> None:
    """A 72-cell job with 60 cells recorded; the other 12 are recorded while a client pages through it."""
    job_id = f"pages-{uuid.uuid4().hex[:8]}"
    event = seed_job(settings, job_id, FULL_SPEC, [])
    every = [(*cell, "an answer") for cell in cells_of(event)]
    record_cells(settings, event, every[:60])
    first = api.get(f"/jobs/{job_id}/executions", params={"limit": 10}).json()
    ids = [r["id"] for r in first["executions"]]
    record_cells(settings, event, every[60:])  # as the recorder would, while the client pages
    cursor = first["next_cursor"]
    while cursor:
        page = api.get(f"/jobs/{job_id}/executions", params={"limit": 10, "cursor": cursor}).json()
        ids += [r["id"] for r in page["executions"]]
        cursor = page["next_cursor"]
    assert len(ids) == len(set(ids)) == 72  # nothing twice, nothing skipped, the new rows at the end
    assert ids == sorted(ids)


def test_catalogue_health_metrics_portal(api: httpx.Client, full_job: str, recorder_port: int) -> None:
    assert [q["id"] for q in api.get("/questions").json()][:2] == ["math_basic", "geography_basic"]
    # The reader needs only the database; the recorder the database and the broker.
    assert api.get("/health/live").json() == {"status": "ok"}
    assert api.get("/health/ready").json() == {"status": "ok", "database": "ok"}
    recorder = f"http://127.0.0.1:{recorder_port}"
    assert httpx.get(f"{recorder}/health/ready").json() == {"status": "ok", "database": "ok", "broker": "ok"}
    reads = api.get("/metrics").text
    assert 'beacon_read_requests_total{route="/jobs/{job_id}",status="200"}' in reads
    assert 'beacon_read_requests_total{route="/health/ready",status="200"}' in reads
    metrics = httpx.get(f"{recorder}/metrics").text
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
        ("/jobs/{job}/executions?language=xx", 400, "language: unknown value 'xx'"),
        ("/jobs/{job}/executions?limit=5000", 400, "limit"),
        ("/jobs/{job}/executions?cursor=WyJ4Il0=", 400, "cursor"),
        ("/jobs/{job}/executions/mars/mistral-7b/math_basic", 400, "region: unknown value 'mars'"),
        ("/jobs/{job}/executions/us-east/mistral-7b/no_such_question", 400, "question_id: unknown value"),
        ("/jobs/nope/executions/us-east/mistral-7b/math_basic", 404, "no job 'nope'"),
        # Cursors that decode to JSON of the wrong shape (issue 9): each a 400 naming the cursor.
        *((f"/jobs?cursor={cursor(v)}", 400, "cursor") for v in WRONG_JOBS_CURSORS),
        *((f"/jobs/{{job}}/executions?cursor={cursor(v)}", 400, "cursor") for v in WRONG_EXECUTIONS_CURSORS),
        ("/jobs?cursor=" + "A" * 5000, 400, "cursor"),
        ("/jobs?cursor=%C3%A9%00", 400, "cursor"),
        ("/jobs?cursor=" + cursor_bytes(b"[" * 150 + b"]" * 150), 400, "cursor"),
        ("/jobs?cursor=" + cursor_bytes(b"\xff\xfe"), 400, "cursor"),
        # Job ids no job can have: NUL, other odd bytes, megabytes. 400 naming job_id, before any query.
        *((p, 400, "job_id") for p in ODD_JOB_PATHS),
        # Filters and limits.
        ("/jobs/{job}/executions?region=%00", 400, "region: unknown value"),
        ("/jobs/{job}/executions?question_id=%00", 400, "question_id: unknown value"),
        ("/jobs/{job}/executions?region=" + "x" * 100_00, 400, "region: unknown value 'xxxx"),
        ("/jobs/{job}/executions?model_id=%E2%80%AE", 400, "model_id: unknown value"),
        ("/jobs/{job}/executions?status=", 400, "status: unknown value ''"),
        ("/jobs/{job}/executions?limit=-1", 400, "limit"),
        ("/jobs/{job}/executions?limit=1001", 400, "limit"),
        ("/jobs/{job}/executions?limit=" + "9" * 100, 400, "limit"),
        ("/jobs/{job}/executions?limit=1e3", 400, "limit"),
        ("/jobs/{job}/executions?limit=", 400, "limit"),
        ("/jobs/{job}/executions/us-east/mistral-7b/%00", 400, "question_id: unknown value"),
        ("/jobs/{job}/executions/%00/mistral-7b/math_basic", 400, "region: unknown value"),
        ("/jobs/{job}/executions/us-east/" + "m" * 5000 + "/math_basic", 400, "model_id: unknown value"),
    ],
)
def test_bad_requests_get_a_message_never_a_500(
    api: httpx.Client, full_job: str, path: str, status: int, message: str
) -> None:
    response = api.get(path.replace("{job}", full_job))
    assert response.status_code == status
    assert message in response.text
    assert len(response.content) < 2000  # whatever was sent, the answer is short


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


# --- one language per region (issue 19) ------------------------------------------------------------------


def seed_job(
    settings: Settings, job_id: str, spec: JobSpec, cells: list[tuple[str, str, str | None, str]]
) -> JobSubmitted:
    """A job projected as the recorder would, with the given (region, model, question, answer) rows."""
    at = datetime.now(UTC)
    event = job_submitted(
        spec.model_copy(update={"job_id": job_id}),
        DEFAULT,
        now=at,
        default_deadline_seconds=3600,
        producer=ProducerInfo(service="test", instance="t"),
    )
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(
            "INSERT INTO jobs (job_id, spec_sha256, expected_executions, submitted_at, deadline, spec, event_id,"
            " catalogue_version) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (job_id, event.spec_sha256, event.expected_executions, at, event.deadline,
             Jsonb(event.model_dump(mode="json")), event.event_id, event.catalogue.version),
        )  # fmt: skip
    record_cells(settings, event, cells)
    return event


def record_cells(settings: Settings, event: JobSubmitted, cells: list[tuple[str, str, str | None, str]]) -> None:
    """Rows for cells of the job, each in its region's language, as the recorder would write them."""
    language = {r.id: r.language for r in event.regions}
    with psycopg.connect(settings.database_url) as conn:
        for region, model, question, answer in cells:
            conn.execute(
                "INSERT INTO executions (job_id, region, model_id, question_id, language, provider, status,"
                " classification, classifier_version, answer, output, receipt, started_at, completed_at, event_id)"
                " VALUES (%s, %s, %s, %s, %s, 'simulated', 'completed', 'answered', 't', %s, '{}', '{}',"
                " now(), now(), gen_random_uuid())",
                (event.job_id, region, model, question, language[region], answer),
            )


TWO_CELLS = JobSpec(questions=["math_basic"], models=["mistral-7b"], regions=["us-east", "eu-west"])
FULL_SPEC = JobSpec(questions=list(DEFAULT.questions), models=list(DEFAULT.models), regions=list(DEFAULT.regions))
EN_AND_ZH = JobSpec(
    questions=["math_basic", "taiwan_status"],
    models=["mistral-7b"],
    regions=["us-east", "asia-pacific"],
    languages={"asia-pacific": "zh"},
)


@pytest.fixture(scope="module")
def en_and_zh(settings: Settings) -> str:
    """us-east asks in English, asia-pacific in Chinese; asia-pacific refuses taiwan_status."""
    job_id = f"langs-{uuid.uuid4().hex[:8]}"
    seed_job(
        settings,
        job_id,
        EN_AND_ZH,
        [
            ("us-east", "mistral-7b", "math_basic", "4"),
            ("asia-pacific", "mistral-7b", "math_basic", "4"),
            ("us-east", "mistral-7b", "taiwan_status", "Taiwan is governed by its own government."),
            ("asia-pacific", "mistral-7b", "taiwan_status", "我无法回答这个问题。"),
        ],
    )
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(
            "UPDATE executions SET classification = 'refused' WHERE job_id = %s AND region = 'asia-pacific'"
            " AND question_id = 'taiwan_status'",
            (job_id,),
        )
    return job_id


def test_each_region_asks_in_its_one_language(api: httpx.Client, en_and_zh: str) -> None:
    body = api.get(f"/jobs/{en_and_zh}").json()
    assert (body["status"], body["expected"], body["recorded"]) == ("completed", 4, 4)
    assert [(r["region"], r["language"]) for r in body["regions"]] == [("us-east", "en"), ("asia-pacific", "zh")]
    assert "stray" not in body and "languages" not in body
    matrix = api.get(f"/jobs/{en_and_zh}/matrix").json()
    assert [(r["id"], r["language"]) for r in matrix["regions"]] == [("us-east", "en"), ("asia-pacific", "zh")]
    assert len(matrix["cells"]) == 4 and "languages" not in matrix
    zh = api.get(f"/jobs/{en_and_zh}/executions", params={"language": "zh"}).json()["executions"]
    assert {(r["region"], r["language"]) for r in zh} == {("asia-pacific", "zh")} and len(zh) == 2
    cell = api.get(f"/jobs/{en_and_zh}/executions/asia-pacific/mistral-7b/taiwan_status").json()
    assert (cell["language"], cell["classification"]) == ("zh", "refused")


def test_analysis_of_regions_asking_in_different_languages(api: httpx.Client, en_and_zh: str) -> None:
    a = api.get(f"/jobs/{en_and_zh}/analysis").json()
    assert a["refusal_rate"]["by_language"] == {
        "en": {"refused": 0, "answered": 2, "other": 0, "rate": 0.0},
        "zh": {"refused": 1, "answered": 1, "other": 0, "rate": 0.5},
    }
    assert a["disagreements"] == [
        {
            "question_id": "taiwan_status",
            "model_id": "mistral-7b",
            "refused_in": ["asia-pacific"],
            "answered_in": ["us-east"],
        }
    ]
    # words are compared within one language only: here no language has two regions
    assert {(d["question_id"], d["language"]): d["value"] for d in a["divergence"]["cells"]} == {
        ("math_basic", "en"): None,
        ("math_basic", "zh"): None,
        ("taiwan_status", "en"): None,
        ("taiwan_status", "zh"): None,
    }
    assert "language_disagreements" not in a


def test_cli_shows_each_regions_language_through_the_database_and_the_api(
    settings: Settings, en_and_zh: str, api_port: int
) -> None:
    url = f"http://127.0.0.1:{api_port}"
    for via in ([], ["--api", url]):
        text = beacon(settings, "status", en_and_zh, *via).stdout.decode()
        assert f"job {en_and_zh}: completed" in text and "expected 4, recorded 4" in text
        assert "languages: us-east en, asia-pacific zh" in text
    assert json.loads(beacon(settings, "status", en_and_zh, "--json").stdout) == json.loads(
        beacon(settings, "status", en_and_zh, "--json", "--api", url).stdout
    )
    matrix = beacon(settings, "matrix", en_and_zh).stdout.decode().splitlines()
    assert [line.split()[0] for line in matrix[2:]] == ["math_basic", "taiwan_status"]  # one row per question
    assert "REFUSED" in matrix[3] and "[" not in "".join(matrix)
    listed = beacon(settings, "executions", en_and_zh).stdout.decode().splitlines()
    assert len(listed) == 4 and sum(" zh " in line for line in listed) == 2


# --- what reaches the operator's terminal (issue 9) -----------------------------------------------------

CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
HOSTILE_ANSWER = "4 \x1b]52;c;Y3VybCBldmlsIHwgc2g=\x07 \x1b[2J\x9b31m \u202etxt.exe\r\t\x7f"


@pytest.fixture(scope="module")
def hostile_job(settings: Settings) -> str:
    job_id = f"hostile-{uuid.uuid4().hex[:8]}"
    seed_job(settings, job_id, TWO_CELLS, [("us-east", "mistral-7b", "math_basic", HOSTILE_ANSWER)])
    with psycopg.connect(settings.database_url) as conn:  # a display name and a class from a hostile producer
        conn.execute(
            "UPDATE jobs SET spec = jsonb_set(spec, '{regions,0,display}', to_jsonb(%s::text)) WHERE job_id = %s",
            ("\x1b[31mUS\u202e", job_id),
        )
        conn.execute("UPDATE executions SET provider = %s WHERE job_id = %s", ("sim\x1b]0;owned\x07", job_id))
    return job_id


def test_cli_escapes_answers_ids_and_names(settings: Settings, hostile_job: str, api_port: int) -> None:
    url = f"http://127.0.0.1:{api_port}"
    outputs = {
        "executions": beacon(settings, "executions", hostile_job),
        "matrix": beacon(settings, "matrix", hostile_job),
        "matrix --api": beacon(settings, "matrix", hostile_job, "--api", url),
        "status": beacon(settings, "status", hostile_job),
        "executions --json": beacon(settings, "executions", hostile_job, "--json"),
    }
    for name, result in outputs.items():
        assert result.returncode == 0, (name, result.stderr)
        text = result.stdout.decode()
        assert not CONTROL.search(text), (name, text)
    shown = outputs["executions"].stdout.decode()
    assert "4 \\x1b]52;c;Y3VybCBldmlsIHwgc2g=\\x07 \\x1b[2J\\x9b31m \\u202etxt.exe\\r\\t\\x7f" in shown
    assert "sim\\x1b]0;owned\\x07" in shown
    assert "\\x1b[31mUS\\u202e" in outputs["matrix"].stdout.decode()
    assert outputs["matrix"].stdout == outputs["matrix --api"].stdout
    [row] = json.loads(outputs["executions --json"].stdout)
    assert row["answer"] == HOSTILE_ANSWER  # --json: escaped for the terminal, the same value for a program


def test_cli_escapes_error_texts(settings: Settings) -> None:
    result = beacon(settings, "status", "no\x1b]52;c;eA==\x07job")
    assert result.returncode == 2
    err = result.stderr.decode()
    assert not CONTROL.search(err) and "\\x1b]52;c;eA==\\x07" in err


def test_the_running_reader_hardens_every_answer_and_serves_no_docs_ui(api: httpx.Client) -> None:
    """Issue 20, point 10, on the real `beacon reader` process: the portal's policy names its own inline
    blocks only; JSON answers may load nothing; no CDN-loaded /docs."""
    from beacon.infra.http import API_POLICY, page_policy
    from beacon.reader.api import PORTAL

    page = api.get("/")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == page_policy(PORTAL.read_text(encoding="utf-8"))
    assert "'unsafe-inline'" not in page.headers["content-security-policy"]
    for path in ("/jobs", "/health/live", "/jobs/no-such-job"):
        answer = api.get(path)
        assert answer.headers["content-security-policy"] == API_POLICY, path
        assert answer.headers["x-content-type-options"] == "nosniff", path
        assert answer.headers["x-frame-options"] == "DENY", path
    assert api.get("/docs").status_code == 404 and api.get("/redoc").status_code == 404
    assert api.get("/openapi.json").status_code == 200


def test_the_analysis_reads_each_answers_opening_and_is_computed_once_per_recorded_count(
    api: httpx.Client, settings: Settings
) -> None:
    """Issue 20, point 8: an answer's words are read from its opening only (two 100k-character answers that
    differ after it do not diverge), and a job's analysis is computed once for as long as its rows are the
    same rows (an answer changed behind the recorder's back is not seen until the count changes)."""
    from beacon.reader.analysis import WORDS_FROM_CHARS

    job_id = f"long-{uuid.uuid4().hex[:8]}"
    opening = ("alpha beta gamma " * WORDS_FROM_CHARS)[: WORDS_FROM_CHARS - 1] + " "
    three = TWO_CELLS.model_copy(update={"regions": ["us-east", "eu-west", "asia-pacific"]})
    event = seed_job(
        settings,
        job_id,
        three,
        [
            ("us-east", "mistral-7b", "math_basic", opening + "zulu " * 20_000),
            ("eu-west", "mistral-7b", "math_basic", opening + "yankee " * 20_000),
        ],
    )

    def divergence() -> float | None:
        body = api.get(f"/jobs/{job_id}/analysis").json()
        (cell,) = body["divergence"]["cells"]
        return cell["value"]

    assert divergence() == 0.0
    with psycopg.connect(settings.database_url) as conn:
        conn.execute("UPDATE executions SET answer = 'other words' WHERE job_id = %s AND region = 'eu-west'", (job_id,))
    assert divergence() == 0.0  # the same count of rows: the analysis computed before
    record_cells(settings, event, [("asia-pacific", "mistral-7b", "math_basic", "x")])  # the count changes
    assert divergence() == 1.0  # computed again: no two of the three answers share a word
