"""Issue 25, reads that scale: the running reader builds the matrix, the analysis, the comparison and the pages
of executions once per version of their jobs, sends them with a strong ETag and answers `If-None-Match` with
304; every change the recorder can make (a new row, a late result replacing a timeout, a region's expansion)
is a new version. Jobs are written into the projection as the recorder would write them."""

from __future__ import annotations

import gzip
import re
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from beacon.domain.cells import cells_of
from beacon.infra.settings import Settings
from beacon.schemas.events import JobSubmitted
from tests.harness import Services
from tests.integration.test_read_api import FULL_SPEC, TWO_CELLS, record_cells, seed_job

pytestmark = pytest.mark.pipeline

STRONG = re.compile(r'"[0-9a-f]{32}"')
IDENTITY = {"Accept-Encoding": "identity"}


def new_id(kind: str) -> str:
    return f"cache-{kind}-{uuid.uuid4().hex[:8]}"


def paths(job_id: str, other: str) -> list[str]:
    return [
        f"/jobs/{job_id}/matrix",
        f"/jobs/{job_id}/analysis",
        f"/jobs/{job_id}/executions?limit=1000",
        f"/jobs/{job_id}/executions?classification=answered&limit=10",
        f"/compare?base={job_id}&other={other}",
    ]


def every_cell(event: JobSubmitted) -> list[tuple[str, str, str | None, str]]:
    return [(*cell, f"answer {i}") for i, cell in enumerate(cells_of(event))]


def every_cell_of_two() -> list[tuple[str, str, str | None, str]]:
    return [("us-east", "mistral-7b", "math_basic", "4"), ("eu-west", "mistral-7b", "math_basic", "4")]


@pytest.fixture(scope="module")
def finished(settings: Settings, pipeline: Services) -> Iterator[tuple[str, str]]:
    """Two jobs of 72 cells, every cell recorded (no timeouts): settled, nothing can change them."""
    a, b = new_id("a"), new_id("b")
    for job_id in (a, b):
        event = seed_job(settings, job_id, FULL_SPEC, [])
        record_cells(settings, event, every_cell(event))
    yield a, b


def revalidate(api: httpx.Client, path: str, etag: str, **headers: str) -> httpx.Response:
    return api.get(path, headers={"If-None-Match": etag, **headers})


@pytest.mark.parametrize("which", range(5))
def test_a_finished_jobs_answer_is_sent_once_then_revalidated(
    api: httpx.Client, finished: tuple[str, str], which: int
) -> None:
    path = paths(*finished)[which]
    first = api.get(path)
    assert first.status_code == 200, first.text
    etag = first.headers["etag"]
    assert STRONG.fullmatch(etag) and first.headers["cache-control"] == "private, no-cache"
    assert first.headers["vary"] == "Accept-Encoding" and first.headers["content-type"] == "application/json"

    held = revalidate(api, path, etag)
    assert (held.status_code, held.content, held.headers["etag"]) == (304, b"", etag)
    assert held.headers["cache-control"] == "private, no-cache"
    assert revalidate(api, path, "*").status_code == 304
    two_lines = api.get(path, headers=[("If-None-Match", '"someone-else"'), ("If-None-Match", etag)])
    assert two_lines.status_code == 304

    again = api.get(path)  # from memory: the same bytes under the same tag
    assert (again.status_code, again.content, again.headers["etag"]) == (200, first.content, etag)


def test_the_coding_is_negotiated_and_each_has_its_own_tag(api: httpx.Client, finished: tuple[str, str]) -> None:
    path = f"/jobs/{finished[0]}/matrix"
    with api.stream("GET", path) as packed:  # httpx asks for gzip, deflate
        wire = b"".join(packed.iter_raw())
    plain = api.get(path, headers=IDENTITY)
    assert packed.headers["content-encoding"] == "gzip" and "content-encoding" not in plain.headers
    assert gzip.decompress(wire) == plain.content and len(wire) * 5 < len(plain.content)
    assert packed.headers["etag"] != plain.headers["etag"]
    assert revalidate(api, path, plain.headers["etag"], **IDENTITY).status_code == 304
    # The identity's tag while asking for gzip: the client does not hold that representation.
    assert revalidate(api, path, plain.headers["etag"]).status_code == 200
    assert len(plain.json()["cells"]) == 72


def test_a_new_row_is_a_new_version(api: httpx.Client, settings: Settings) -> None:
    a, b = new_id("growing"), new_id("other")
    event = seed_job(settings, a, FULL_SPEC, [])
    cells = every_cell(event)
    record_cells(settings, event, cells[:60])
    seed_job(settings, b, TWO_CELLS, [("us-east", "mistral-7b", "math_basic", "4")])
    before = {p: api.get(p) for p in paths(a, b)}
    assert all(r.status_code == 200 for r in before.values())

    record_cells(settings, event, cells[60:61])  # as the recorder would: one more cell
    first_ten = paths(a, b)[3]
    for path, old in before.items():
        now = revalidate(api, path, old.headers["etag"])
        if path == first_ten:  # built again, and the same bytes: the tag is the body's, so still held
            assert (now.status_code, now.headers["etag"]) == (304, old.headers["etag"])
            continue
        assert now.status_code == 200, path
        assert now.headers["etag"] != old.headers["etag"] and now.content != old.content, path
        assert revalidate(api, path, now.headers["etag"]).status_code == 304
    matrix = api.get(f"/jobs/{a}/matrix").json()
    assert (len(matrix["cells"]), matrix["job"]["recorded"], matrix["job"]["status"]) == (61, 61, "running")
    assert len(api.get(f"/jobs/{a}/executions?limit=1000").json()["executions"]) == 61


def test_a_late_result_in_the_place_of_a_timeout_is_a_new_version(api: httpx.Client, settings: Settings) -> None:
    """The same count of rows, other content: the version counts timeouts too (the analysis was cached by the
    count of rows alone before, and went on showing the timeout)."""
    job_id = new_id("late")
    event = seed_job(settings, job_id, TWO_CELLS, [("us-east", "mistral-7b", "math_basic", "4")])
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(
            "INSERT INTO executions (job_id, region, model_id, question_id, language, provider, status,"
            " classification, classifier_version, answer, output, receipt, started_at, completed_at, event_id)"
            " VALUES (%s, 'eu-west', 'mistral-7b', 'math_basic', 'en', 'simulated', 'timeout', 'error', 't',"
            " NULL, '{}', '{}', now(), now(), gen_random_uuid())",
            (event.job_id,),
        )
    matrix, analysis = f"/jobs/{job_id}/matrix", f"/jobs/{job_id}/analysis"
    before = {p: api.get(p) for p in (matrix, analysis)}
    assert {c["region"]: c["status"] for c in before[matrix].json()["cells"]} == {
        "us-east": "completed",
        "eu-west": "timeout",
    }
    assert before[analysis].json()["refusal_rate"]["by_region"]["eu-west"]["other"] == 1

    with psycopg.connect(settings.database_url) as conn:  # what the recorder's supersede does (store.py)
        replaced = conn.execute(
            "UPDATE executions SET status = 'completed', classification = 'answered', answer = '4',"
            " event_id = gen_random_uuid(), recorded_at = now() WHERE job_id = %s AND status = 'timeout'",
            (job_id,),
        ).rowcount
        (rows,) = conn.execute("SELECT count(*) FROM executions WHERE job_id = %s", (job_id,)).fetchone() or (0,)
    assert (replaced, rows) == (1, 2)

    now = {p: revalidate(api, p, r.headers["etag"]) for p, r in before.items()}
    assert all(r.status_code == 200 and r.headers["etag"] != before[p].headers["etag"] for p, r in now.items())
    assert {c["status"] for c in now[matrix].json()["cells"]} == {"completed"}
    assert now[matrix].json()["job"]["status"] == "completed"
    assert now[analysis].json()["refusal_rate"]["by_region"]["eu-west"] == {
        "refused": 0,
        "answered": 1,
        "other": 0,
        "rate": 0.0,
    }


def test_a_regions_expansion_recorded_after_its_last_cell_is_a_new_version(
    api: httpx.Client, settings: Settings
) -> None:
    """Every cell recorded, no timeout: the job's rows are settled, yet a JobExpanded projected late (another
    topic, no order between them) still shows in the matrix."""
    job_id = new_id("expanded")
    event = seed_job(settings, job_id, TWO_CELLS, every_cell_of_two())
    path = f"/jobs/{job_id}/matrix"
    first = api.get(path)
    assert [r["picked_up"] for r in first.json()["job"]["regions"]] == [False, False]
    assert revalidate(api, path, first.headers["etag"]).status_code == 304
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(
            "INSERT INTO job_regions (job_id, region, spec_sha256, cells, providers, unrouted, expanded_at, event_id)"
            " VALUES (%s, 'us-east', %s, 1, '{\"mistral-7b\": \"simulated\"}', '[]', now(), gen_random_uuid())",
            (job_id, event.spec_sha256),
        )
    now = revalidate(api, path, first.headers["etag"])
    assert now.status_code == 200 and now.headers["etag"] != first.headers["etag"]
    assert [r["picked_up"] for r in now.json()["job"]["regions"]] == [True, False]


def test_an_if_none_match_that_names_nothing_held_gets_the_full_answer(
    api: httpx.Client, finished: tuple[str, str]
) -> None:
    path = f"/jobs/{finished[0]}/matrix"
    full = api.get(path, headers=IDENTITY)
    etag = full.headers["etag"]
    wrong: list[str | bytes] = [
        '"garbage"',
        'W/"garbage"',
        "garbage",
        "*garbage",
        "**",
        etag[:-1],  # unterminated
        etag[1:-1],  # not quoted
        etag + "x",
        "w/" + etag,  # W/ is upper case
        f"{etag} {etag}",  # no comma
        f"*, {etag}",  # `*` stands alone
        f"garbage, {etag}",  # one element that is no entity-tag: the field is ignored
        '"' + "x" * 8000 + '"',
        ",",
        ", ,",
        b'"\xff\xfe"',
        b"\xc3\xa9" + etag.encode(),
    ]
    for value in wrong:
        answer = api.get(path, headers={"If-None-Match": value, **IDENTITY})  # type: ignore[dict-item]
        assert (answer.status_code, answer.headers["etag"]) == (200, etag), value
        assert answer.content == full.content, value
    # Nothing changed: the right tag is still answered with 304, the body is still the same bytes.
    assert revalidate(api, path, etag, **IDENTITY).status_code == 304
    assert api.get(path, headers=IDENTITY).content == full.content


@pytest.mark.parametrize(
    ("accept_encoding", "gzipped"),
    [
        ("gzip;q=abc", False),
        ("gzip;q=0", False),
        ("gzip;q=0, *", False),
        ("*;q=0", False),
        (";;;,,,", False),
        ("gzip;q=1e400", False),
        ("a" * 8000, False),
        (b"\xff\xfe", False),
        ("identity;q=0", False),  # nothing acceptable but gzip refused too: the body as it is
        ("GZIP;Q=0.5", True),
        ("br;q=1, x-gzip", True),
    ],
)
def test_a_malformed_accept_encoding_gets_a_full_answer(
    api: httpx.Client, finished: tuple[str, str], accept_encoding: str | bytes, gzipped: bool
) -> None:
    path = f"/jobs/{finished[0]}/matrix"
    plain = api.get(path, headers=IDENTITY)
    answer = api.get(path, headers={"Accept-Encoding": accept_encoding})  # type: ignore[dict-item]
    assert answer.status_code == 200
    assert (answer.headers.get("content-encoding") == "gzip") is gzipped
    assert answer.content == plain.content  # httpx takes the gzip off


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/jobs/nope/matrix", 404, "no job 'nope'"),
        ("/jobs/nope/analysis", 404, "no job 'nope'"),
        ("/jobs/nope/executions", 404, "no job 'nope'"),
        ("/compare?base={job}&other=nope", 404, "no job 'nope'"),
        ("/compare?base=nope&other={job}", 404, "no job 'nope'"),
        ("/jobs/{job}/executions?region=mars", 400, "region: unknown value 'mars'"),
        ("/jobs/{job}/executions?model_id=gpt-9", 400, "model_id: unknown value 'gpt-9'"),
        ("/jobs/{job}/executions?status=bogus", 400, "status: unknown value 'bogus'"),
        ("/jobs/{job}/executions?cursor=garbage", 400, "cursor: not a cursor this API gave out"),
        ("/jobs/a%00b/matrix", 400, "job_id"),
    ],
)
def test_bad_input_is_refused_whatever_if_none_match_says(
    api: httpx.Client, finished: tuple[str, str], path: str, status: int, message: str
) -> None:
    """A 304 only ever stands for a resource that exists, asked for correctly."""
    job = finished[0]
    good = f"/jobs/{job}/executions?limit=5"
    held = api.get(good)
    for condition in ("*", held.headers["etag"]):
        refused = api.get(path.replace("{job}", job), headers={"If-None-Match": condition})
        assert refused.status_code == status and message in refused.text
        assert "etag" not in refused.headers
    # Nothing changed: the good page is still held, and still the same.
    assert revalidate(api, good, held.headers["etag"]).status_code == 304
    assert api.get(good).content == held.content
