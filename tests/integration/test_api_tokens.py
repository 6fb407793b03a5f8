"""Who may call the HTTP APIs, on the real servers: POST /jobs needs a live API token and stays within its
quotas, the read API asks for one when set to, `beacon tokens` makes, lists and revokes them, and no request
for an unknown host or from another site's page is served. Every refusal registers and emits nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient

from beacon.infra.settings import Settings
from beacon.reader.api import create_app as reader_app
from beacon.submitter.http import create_app
from tests.kafka_tools import message_count
from tests.support import api_token, beacon

SPEC = {"questions": ["math_basic", "taiwan_status"], "models": ["mistral-7b"], "regions": ["us-east", "eu-west"]}
CELLS = 4  # of SPEC


def state(settings: Settings) -> tuple[int, int, int]:
    """(submissions, events on jobs.submitted, cells charged to tokens): what a refusal must not change."""
    with psycopg.connect(settings.database_url) as conn:
        registered = conn.execute("SELECT count(*) FROM submissions").fetchone()[0]
        charged = conn.execute("SELECT coalesce(sum(cells), 0) FROM api_token_usage").fetchone()[0]
    return registered, message_count(settings, settings.topics.jobs_submitted), int(charged)


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), base_url="http://localhost") as client:
        yield client


def post(api: TestClient, token: str | None, job_id: str, **headers: str) -> object:
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return api.post("/jobs", json={**SPEC, "job_id": job_id}, headers=headers)


@pytest.mark.parametrize(
    ("authorization", "invalid"),
    [
        (None, False),
        ("", False),
        ("Basic dXNlcjpwYXNz", False),
        ("Bearer not-a-token", False),
        ("Bearer beacon_00000000_" + "A" * 43, True),  # well formed, but no such token
    ],
)
def test_post_jobs_without_a_live_token_is_401_and_changes_nothing(
    settings: Settings, api: TestClient, authorization: str | None, invalid: bool
) -> None:
    before = state(settings)
    headers = {} if authorization is None else {"authorization": authorization}
    response = api.post("/jobs", json={**SPEC, "job_id": "no-token"}, headers=headers)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="beacon"') and ('error="invalid_token"' in challenge) == invalid
    problem = response.json()["problems"][0]
    assert ("unknown or revoked" in problem) if invalid else ("beacon tokens create" in problem)
    assert state(settings) == before


def test_a_revoked_token_is_refused_from_the_moment_it_is_revoked(settings: Settings, api: TestClient) -> None:
    token = api_token(settings, "soon-revoked")
    assert post(api, token, "before-revoke").status_code == 202  # type: ignore[attr-defined]
    token_id = token.split("_")[1]
    revoked = beacon(settings, "tokens", "revoke", token_id)
    assert revoked.returncode == 0 and f"token {token_id} (soon-revoked) revoked at" in revoked.stdout.decode()
    before = state(settings)
    response = post(api, token, "after-revoke")
    assert response.status_code == 401 and "unknown or revoked" in response.json()["problems"][0]  # type: ignore[attr-defined]
    assert state(settings) == before


def test_a_read_only_token_may_not_submit(settings: Settings, api: TestClient) -> None:
    before = state(settings)
    response = post(api, api_token(settings, "reading", read_only=True), "read-only-submit")
    assert response.status_code == 403 and "may only read" in response.json()["problems"][0]  # type: ignore[attr-defined]
    assert state(settings) == before


def test_a_job_over_the_cells_per_job_is_429_and_changes_nothing(settings: Settings, api: TestClient) -> None:
    token = api_token(settings, "small-jobs", per_job=CELLS - 1)
    before = state(settings)
    response = post(api, token, "too-big")
    assert response.status_code == 429  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert (body["quota"], body["limit"], body["left"], body["asked"], body["resets_at"]) == (
        "cells_per_job",
        CELLS - 1,
        CELLS - 1,
        CELLS,
        None,
    )
    assert "retry-after" not in response.headers  # type: ignore[attr-defined]
    assert state(settings) == before


def test_the_daily_quota_is_charged_once_per_new_job_and_refuses_what_it_cannot_hold(
    settings: Settings, api: TestClient
) -> None:
    token = api_token(settings, "daily", per_day=2 * CELLS + 1)
    for job_id in ("daily-1", "daily-2"):
        assert post(api, token, job_id).status_code == 202  # type: ignore[attr-defined]
    # The same job again is no new work: accepted (200) and not charged again.
    again = post(api, token, "daily-1")
    assert again.status_code == 200 and again.json()["already_submitted"] is True  # type: ignore[attr-defined]
    before = state(settings)
    response = post(api, token, "daily-3")
    assert response.status_code == 429  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert (body["quota"], body["limit"], body["left"], body["asked"]) == ("cells_per_day", 2 * CELLS + 1, 1, CELLS)
    resets = datetime.fromisoformat(body["resets_at"])
    now = datetime.now(UTC)
    assert resets.time().isoformat() == "00:00:00" and now < resets <= now + timedelta(days=1)
    assert 0 < int(response.headers["retry-after"]) <= 86_400  # type: ignore[attr-defined]
    assert "1 of its 9 cells per day left" in body["problems"][0]
    assert state(settings) == before  # the refused job is not registered: its id stays free
    listed = json.loads(beacon(settings, "tokens", "list", "--json").stdout)
    assert next(t for t in listed if t["token_id"] == token.split("_")[1])["cells_today"] == 2 * CELLS


@pytest.mark.parametrize(
    ("headers", "status", "problem"),
    [
        ({"host": "evil.example"}, 400, "Host 'evil.example' is not a name this service answers to"),
        ({"host": "localhost.evil.example:8081"}, 400, "is not a name this service answers to"),
        ({"origin": "http://evil.example"}, 403, "Origin 'http://evil.example' is not this service's own"),
        ({"origin": "http://localhost:9999"}, 403, "is not this service's own"),  # another port: another origin
        ({"origin": "null"}, 403, "Origin 'null' is not this service's own"),
        ({"sec-fetch-site": "cross-site"}, 403, "a page of another site may not call this service"),
    ],
)
def test_unknown_hosts_and_other_sites_are_refused_before_anything_else(
    settings: Settings, api: TestClient, headers: dict[str, str], status: int, problem: str
) -> None:
    before = state(settings)
    response = post(api, api_token(settings), "elsewhere", **headers)
    assert response.status_code == status and problem in response.json()["problems"][0]  # type: ignore[attr-defined]
    assert response.headers["content-security-policy"]  # type: ignore[attr-defined]
    assert state(settings) == before


def test_a_page_of_the_service_itself_may_call_it(settings: Settings, api: TestClient) -> None:
    same = {"origin": "http://localhost", "sec-fetch-site": "same-origin"}
    assert post(api, api_token(settings), "same-origin", **same).status_code == 202  # type: ignore[attr-defined]


def test_the_read_api_asks_for_a_token_when_set_to(settings: Settings) -> None:
    guarded = dataclasses.replace(settings, read_auth="token")
    with TestClient(reader_app(guarded), base_url="http://localhost") as reader:
        bare = reader.get("/jobs")
        assert bare.status_code == 401 and bare.headers["www-authenticate"] == 'Bearer realm="beacon"'
        wrong = reader.get("/jobs", headers={"authorization": "Bearer beacon_00000000_" + "A" * 43})
        assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"]
        token = api_token(settings, "reader", read_only=True)
        assert reader.get("/jobs", headers={"authorization": f"Bearer {token}"}).status_code == 200
        assert reader.get("/").status_code == 200  # the page itself; it asks its visitor for a token
        assert reader.get("/health/ready").status_code == 200
        assert reader.get("/health/live", headers={"host": "10.1.2.3:8080"}).status_code == 200  # a probe by pod IP
        assert reader.get("/jobs", headers={"host": "10.1.2.3:8080"}).status_code == 400
    # "auto": open on a loopback address (the demo), a token anywhere else.
    assert not dataclasses.replace(settings, read_auth="auto", http_host="127.0.0.1").read_needs_token
    assert dataclasses.replace(settings, read_auth="auto", http_host="0.0.0.0").read_needs_token


def test_tokens_cli_refuses_bad_input_and_changes_nothing(settings: Settings) -> None:
    before = beacon(settings, "tokens", "list", "--json").stdout
    for args, message in [
        (["create"], "tokens create NAME: '' is not a name"),
        (["create", ".bad"], "is not a name"),
        (["create", "x" * 65], "is not a name"),
        (["create", "ok", "--cells-per-day", "0"], "argument --cells-per-day: 0 must be at least 1"),
        (["create", "ok", "--cells-per-job", "many"], "argument --cells-per-job: 'many' is not a whole number"),
        (["create", "ok", "--cells-per-day", "5", "--cells-per-job", "6"], "--cells-per-job 6 is over"),
        (["revoke"], "tokens revoke: no token ''"),
        (["revoke", "0000000g"], "tokens revoke: no token '0000000g'"),
        (["revoke", "00000000"], "tokens revoke: no token '00000000'"),
        (["list", "extra"], "tokens list takes no argument"),
        (["rotate"], "invalid choice: 'rotate'"),
    ]:
        result = beacon(settings, "tokens", *args)
        assert result.returncode == 2 and message in result.stderr.decode(), (args, result.stderr.decode())
    assert beacon(settings, "tokens", "list", "--json").stdout == before


def test_tokens_cli_shows_a_token_once_and_stores_only_its_digest(settings: Settings) -> None:
    made = beacon(settings, "tokens", "create", "laptop", "--cells-per-job", "50")
    assert made.returncode == 0, made.stderr.decode()
    said = made.stdout.decode().splitlines()
    assert "may submit 50 cells per job, 10000 per day (UTC)" in said[0] and "shown this once" in said[0]
    secret = said[1]
    with psycopg.connect(settings.database_url) as conn:
        dump = conn.execute("SELECT string_agg(t::text, '') FROM api_tokens t").fetchone()[0]
    assert secret not in dump and secret.split("_")[2] not in dump
    listing = beacon(settings, "tokens", "list").stdout.decode()
    assert secret.split("_")[1] in listing and secret not in listing


def test_concurrent_jobs_of_one_token_never_pass_its_daily_quota_together(settings: Settings) -> None:
    """Eight jobs at once through one publisher (its pool holds four connections) against room for three:
    exactly three are registered and emitted, the day's count is exactly theirs."""
    from beacon.schemas.commands import JobSpec
    from beacon.submitter import bootstrap
    from beacon.submitter.quota import OverQuota

    token_text = api_token(settings, "racing", per_day=3 * CELLS)
    before = state(settings)

    async def race() -> list[object]:
        publisher = bootstrap.publisher(settings)
        await publisher.start()
        try:
            token = await publisher.token(token_text)
            specs = [JobSpec.model_validate({**SPEC, "job_id": f"race-{i}"}) for i in range(8)]
            return await asyncio.gather(*(publisher.submit(s, token) for s in specs), return_exceptions=True)
        finally:
            await publisher.stop()

    outcomes = asyncio.run(race())
    assert sum(isinstance(o, OverQuota) for o in outcomes) == 5, outcomes
    registered, emitted, charged = state(settings)
    assert (registered, emitted, charged) == (before[0] + 3, before[1] + 3, before[2] + 3 * CELLS)
