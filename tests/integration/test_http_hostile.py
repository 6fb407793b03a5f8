"""Hostile HTTP clients: the servers' limits (beacon/http.py), and every endpoint of both committed OpenAPI
documents driven by schemathesis against the real apps on the real PostgreSQL and Kafka — no 5xx, ever.

The limits are tested on real sockets against a real uvicorn server: an idle connection, a half-sent
request head and a head trickled in byte by byte are closed by the head deadline; a head over the size
limit gets 431; past the concurrency limit a request gets 503 at once; normal and kept-alive requests
still work. The recorder's read API and `beacon submitter-api` are checked to be served that way.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from psycopg.types.json import Jsonb
from schemathesis import GenerationMode

from beacon.infra import http
from beacon.infra.catalogues import DEFAULT
from beacon.infra.settings import Settings
from beacon.reader.api import create_app as read_api
from beacon.schemas.commands import JobSpec
from beacon.schemas.events import ProducerInfo
from beacon.submitter.decide import job_submitted
from beacon.submitter.http import create_app as submitter_api
from tests.harness import Services
from tests.support import Infra, api_token, free_port, isolated
from tools.contracts import OPENAPI_DIR

pytestmark = pytest.mark.pipeline

HEAD_TIMEOUT = 1.0  # the tiny server's; the services' own is http.HEAD_TIMEOUT_SECONDS


@contextmanager
def serving(app: Any, **limits: Any) -> Iterator[int]:
    """`app` behind a real uvicorn server built by beacon.infra.http.server, in a thread; yields its port."""
    port = free_port()
    server = http.server(app, "127.0.0.1", port, **limits)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive(), "the server stopped while starting (see the log above)"
        assert time.monotonic() < deadline, "the server did not start within 60 s"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def until_closed(sock: socket.socket, limit: float, trickle: bytes = b"") -> tuple[float, bytes]:
    """Seconds until the server closes `sock` (sending `trickle` a byte at a time, 5 a second), and what
    it sent before closing. Fails if it is still open after `limit` seconds."""
    began, received = time.monotonic(), b""
    sock.settimeout(0.2)
    while time.monotonic() - began < limit:
        if trickle:
            try:
                sock.sendall(trickle[:1])
            except OSError:
                return time.monotonic() - began, received
            trickle = trickle[1:] or b"X"
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - began, received
        if not chunk:
            return time.monotonic() - began, received
        received += chunk
    raise AssertionError(f"still open after {limit} s; received {received[:200]!r}")


def request(port: int, raw: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    if raw:
        sock.sendall(raw)
    return sock


GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.fixture(scope="module")
def tiny() -> Iterator[int]:
    app = FastAPI()

    @app.get("/")
    async def root() -> dict[str, bool]:
        return {"ok": True}

    with serving(app, head_timeout=HEAD_TIMEOUT, keep_alive=1, max_concurrency=20) as port:
        yield port


@pytest.mark.parametrize(
    ("sent", "trickle"),
    [
        pytest.param(b"", b"", id="idle"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: t\r\n", b"", id="half-sent-head"),
        pytest.param(b"GET / HTT", b"P/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 50, id="trickled-head"),
        pytest.param(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n", b"", id="half-sent-post-head"),
    ],
)
def test_a_head_that_does_not_arrive_in_time_is_closed(tiny: int, sent: bytes, trickle: bytes) -> None:
    with request(tiny, sent) as sock:
        seconds, answer = until_closed(sock, HEAD_TIMEOUT + 3, trickle)
    assert answer == b""  # nothing was answered: there was no request
    assert HEAD_TIMEOUT - 0.1 < seconds < HEAD_TIMEOUT + 1.5  # the deadline is for the whole head, not per byte


def test_normal_and_kept_alive_requests_still_work(tiny: int) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{tiny}") as client:
        for _ in range(3):  # one connection, kept alive between them
            assert client.get("/").json() == {"ok": True}
    # A slow client that still sends its whole head within the deadline is served.
    with request(tiny, b"GET / HTTP/1.1\r\n") as sock:
        time.sleep(HEAD_TIMEOUT / 2)
        sock.sendall(b"Host: t\r\n\r\n")
        seconds, answer = until_closed(sock, 5)
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b'{"ok":true}')
    assert seconds > 0.5  # closed by the keep-alive timeout (1 s here) after the answer, not before it


def test_after_a_response_the_next_head_has_its_own_deadline(tiny: int) -> None:
    with request(tiny, GET + b"GET / HTTP/1.1\r\n") as sock:  # a second request, half-sent, right behind
        seconds, answer = until_closed(sock, HEAD_TIMEOUT + 3, trickle=b"Host: t\r\nX-Slow: " + b"a" * 50)
    assert answer.count(b"HTTP/1.1 200 OK") == 1
    assert seconds < HEAD_TIMEOUT + 1.5


def test_a_head_over_the_size_limit_gets_431_and_a_close(tiny: int) -> None:
    for sent in (
        b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * http.MAX_HEAD_BYTES + b"\r\n\r\n",  # whole, in one write
        b"GET /" + b"a" * (http.MAX_HEAD_BYTES + 10),  # a request line without end
    ):
        with request(tiny, sent) as sock:
            seconds, answer = until_closed(sock, 3)
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
        assert seconds < 1
    just_under = b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * (http.MAX_HEAD_BYTES - 100) + b"\r\n\r\n"
    with request(tiny, just_under) as sock:
        _, answer = until_closed(sock, 5)
    assert answer.startswith(b"HTTP/1.1 200 OK")


def test_past_the_concurrency_limit_a_request_gets_503_at_once() -> None:
    app = FastAPI()

    @app.get("/")
    async def root() -> dict[str, bool]:
        return {"ok": True}

    with serving(app, head_timeout=5, max_concurrency=3) as port:
        held = [request(port, b"") for _ in range(3)]
        try:
            time.sleep(0.2)
            with request(port, GET) as sock:
                _, answer = until_closed(sock, 3)
            assert answer.startswith(b"HTTP/1.1 503 ")
        finally:
            for sock in held:
                sock.close()
        time.sleep(0.2)
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200  # and serves again once they left


def test_the_read_api_and_the_submitter_api_are_served_with_the_limits(
    settings: Settings, api: httpx.Client, api_port: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The recorder's read API (the `pipeline` fixture's) and `beacon submitter-api` as processes."""
    services = Services(settings, tmp_path_factory.mktemp("submitter-api-logs"))
    port = free_port()
    services.start("submitter-api", "submitter-api", "--port", str(port))
    try:
        deadline = time.monotonic() + 60
        while True:
            services.assert_alive()
            try:
                httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, services.log("submitter-api")
                time.sleep(0.2)
        idle = [request(p, b"") for p in (api_port, port)]
        half = [request(p, b"GET /jobs HTTP/1.1\r\nHost: t\r\n") for p in (api_port, port)]
        for sock in idle + half:
            seconds, answer = until_closed(sock, http.HEAD_TIMEOUT_SECONDS + 5)
            assert answer == b"" and seconds < http.HEAD_TIMEOUT_SECONDS + 2
            sock.close()
        big = b"GET /jobs HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * http.MAX_HEAD_BYTES + b"\r\n\r\n"
        for p in (api_port, port):
            with request(p, big) as sock:
                assert until_closed(sock, 3)[1].startswith(b"HTTP/1.1 431 ")
        assert api.get("/health/live").json() == {"status": "ok"}  # and the read API still serves
    finally:
        services.stop_all()


# --- every endpoint of the committed OpenAPI documents, with schemathesis -------------------------------

MAX_EXAMPLES = 25  # per operation: the whole module's schemathesis part stays well under a minute
SEEDED_JOB = "hostile-seeded"


@pytest.fixture(scope="module")
def fuzz_settings(infra: Infra) -> Iterator[Settings]:
    """A database and topic namespace of their own, so fuzzed submissions touch nothing else."""
    with isolated(infra) as s:
        yield s


def seed(settings: Settings) -> None:
    """A job with recorded cells and hostile answers, for the fuzzer to read."""
    spec = JobSpec(
        job_id=SEEDED_JOB, questions=["math_basic", "taiwan_status"], models=["mistral-7b"], regions=["us-east"]
    )
    at = datetime.now(UTC)
    event = job_submitted(
        spec, DEFAULT, now=at, default_deadline_seconds=3600, producer=ProducerInfo(service="t", instance="t")
    )
    answers = {
        ("us-east", "math_basic"): "4 \x1b]52;c;ZXZpbA==\x07 \u202e",
        ("us-east", "taiwan_status"): "\x00\x9b" * 100,
    }
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(
            "INSERT INTO jobs (job_id, spec_sha256, expected_executions, submitted_at, deadline, spec, event_id,"
            " catalogue_version) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (SEEDED_JOB, event.spec_sha256, 2, at, at + timedelta(hours=1), Jsonb(event.model_dump(mode="json")),
             event.event_id, event.catalogue.version),
        )  # fmt: skip
        for (region, question), answer in answers.items():
            conn.execute(
                "INSERT INTO executions (job_id, region, model_id, question_id, language, provider, status,"
                " classification, classifier_version, answer, output, receipt, started_at, completed_at, event_id)"
                " VALUES (%s, %s, 'mistral-7b', %s, 'en', 'simulated', 'completed', 'answered', 't', %s, '{}', '{}',"
                " now(), now(), gen_random_uuid())",
                (SEEDED_JOB, region, question, answer.replace("\x00", "")),
            )


@pytest.fixture(scope="module")
def read_api_port(fuzz_settings: Settings) -> Iterator[int]:
    seed(fuzz_settings)
    with serving(read_api(fuzz_settings)) as port:
        yield port


@pytest.fixture(scope="module")
def fuzz_token(fuzz_settings: Settings) -> str:
    return api_token(fuzz_settings, "fuzzer")


@pytest.fixture(scope="module")
def submitter_port(fuzz_settings: Settings) -> Iterator[int]:
    with serving(submitter_api(fuzz_settings)) as port:
        yield port


def submissions(settings: Settings) -> int:
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute("SELECT count(*) FROM submissions").fetchone()[0]


def _schema(name: str) -> Any:
    schema = schemathesis.openapi.from_path(OPENAPI_DIR / name)
    schema.config.generation.update(modes=list(GenerationMode), max_examples=MAX_EXAMPLES, database="none")
    return schema


READ_API = _schema("read-api.openapi.json")
SUBMITTER = _schema("submitter.openapi.json")
FUZZ = settings(
    max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True
)


def no_server_error(response: Any, case: Any) -> None:
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} {case.query or ''} -> {response.status_code}: {response.text[:500]}"
    )


@READ_API.parametrize()
@FUZZ
def test_read_api_never_answers_5xx(case: Any, read_api_port: int) -> None:
    no_server_error(case.call(base_url=f"http://127.0.0.1:{read_api_port}", timeout=30), case)
    if "job_id" in (case.path_parameters or {}):  # and once more on a job that exists, to go past the 404
        case.path_parameters["job_id"] = SEEDED_JOB
        no_server_error(case.call(base_url=f"http://127.0.0.1:{read_api_port}", timeout=30), case)


@SUBMITTER.parametrize()
@FUZZ
def test_submitter_never_answers_5xx_and_registers_only_what_it_accepts(
    case: Any, submitter_port: int, fuzz_settings: Settings, fuzz_token: str
) -> None:
    before = submissions(fuzz_settings)
    # With a live token: the fuzzer reaches the body's validation, not only the 401 in front of it.
    headers = {"authorization": f"Bearer {fuzz_token}"}
    response = case.call(base_url=f"http://127.0.0.1:{submitter_port}", headers=headers, timeout=30)
    no_server_error(response, case)
    assert submissions(fuzz_settings) - before == (1 if response.status_code == 202 else 0), response.text[:300]


# --- the submitter's body limits on a real socket -------------------------------------------------------


@pytest.fixture(scope="module")
def post_head(fuzz_settings: Settings) -> bytes:
    """The head of a POST /jobs from a client with a live token: what is refused after it is the body."""
    token = api_token(fuzz_settings, "body-limits")
    return (
        b"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {token}\r\n".encode()
    )


def test_a_declared_huge_body_gets_413_before_it_is_sent(
    submitter_port: int, fuzz_settings: Settings, post_head: bytes
) -> None:
    before = submissions(fuzz_settings)
    with request(submitter_port, post_head + b"Content-Length: 1000000000\r\n\r\n{") as sock:
        seconds, answer = until_closed(sock, 5)  # 1 GB announced, 1 byte sent: answered and closed at once
    assert answer.startswith(b"HTTP/1.1 413 ") and b"body too large" in answer
    assert seconds < 2
    assert submissions(fuzz_settings) == before


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(
    submitter_port: int, fuzz_settings: Settings, post_head: bytes
) -> None:
    before = submissions(fuzz_settings)
    chunk = b" " * 8192
    with request(submitter_port, post_head + b"Transfer-Encoding: chunked\r\n\r\n") as sock:
        sent, answer = 0, b""
        while not answer and sent < 80_000_000:  # 80 MB if the server read it all
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
            if sent % 65536 == 0:  # every 64 KB, a moment for the server to answer
                sock.settimeout(0.2)
                try:
                    answer = sock.recv(65536)
                except TimeoutError:
                    pass
        answer += until_closed(sock, 5)[1]
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert sent <= 512 * 1024  # refused right after 64 KB, not after the whole body
    assert submissions(fuzz_settings) == before


def test_a_trickled_body_gets_408(
    submitter_port: int, fuzz_settings: Settings, monkeypatch: pytest.MonkeyPatch, post_head: bytes
) -> None:
    from beacon.submitter import http as submitter_http

    monkeypatch.setattr(submitter_http, "BODY_TIMEOUT_SECONDS", 1.0)
    before = submissions(fuzz_settings)
    with request(submitter_port, post_head + b"Content-Length: 100\r\n\r\n{") as sock:
        seconds, answer = until_closed(sock, 5, trickle=b" " * 20)
    assert answer.startswith(b"HTTP/1.1 408 ") and b"not received within 1 s" in answer
    assert 0.9 < seconds < 3
    assert submissions(fuzz_settings) == before
