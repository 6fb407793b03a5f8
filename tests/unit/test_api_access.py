"""The pure parts of who may call the HTTP APIs: the token's shape and the bearer header, the quotas'
answers, and which hosts and origins a request may name."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from beacon.infra import tokens
from beacon.infra.http import host_of, refusal
from beacon.infra.settings import Settings, SettingsError
from beacon.submitter import quota

NOW = datetime(2026, 12, 3, 22, 30, tzinfo=UTC)
TOKEN = tokens.Token("0a1b2c3d", "t", True, cells_per_day=100, cells_per_job=40, created_at=NOW, revoked_at=None)
ALLOWED = ("localhost", "127.0.0.1", "::1")


def test_a_new_token_has_its_shape_and_only_its_digest_is_kept() -> None:
    token_id, token = tokens.new_token()
    assert tokens.well_formed(token) and token.startswith(f"beacon_{token_id}_")
    assert tokens.digest(token) != tokens.digest(tokens.new_token()[1]) and len(tokens.digest(token)) == 64


@pytest.mark.parametrize(
    ("header", "found"),
    [
        (None, False),
        ("", False),
        ("Bearer", False),
        ("Basic abc", False),
        ("Bearer beacon_0a1b2c3d_short", False),
        ("Bearer beacon_0A1B2C3D_" + "a" * 43, False),  # the id is lower-case hex
        ("Bearer beacon_0a1b2c3d_" + "a" * 44, False),
        ("Bearer beacon_0a1b2c3d_" + "a" * 43, True),
        ("bearer   beacon_0a1b2c3d_" + "a" * 43 + "  ", True),
    ],
)
def test_only_a_bearer_header_holding_a_token_of_our_shape_yields_it(header: str | None, found: bool) -> None:
    assert (tokens.bearer(header) is not None) == found


def test_a_job_over_the_cells_per_job_never_fits() -> None:
    assert quota.per_job(TOKEN, 40) is None
    over = quota.per_job(TOKEN, 41)
    assert over is not None and over.resets_at is None
    assert over.problems() == ["the job has 41 cells; this token may start at most 40 cells per job"]


def test_the_daily_quota_says_what_is_left_and_when_it_resets() -> None:
    assert quota.per_day(TOKEN, 30, 70, NOW) is None
    over = quota.per_day(TOKEN, 31, 70, NOW)
    assert over is not None
    assert over.as_json() == {
        "error": "quota exceeded",
        "problems": [
            "the job has 31 cells; this token has 30 of its 100 cells per day left, until 2026-12-04T00:00:00+00:00"
        ],
        "quota": "cells_per_day",
        "limit": 100,
        "left": 30,
        "asked": 31,
        "resets_at": "2026-12-04T00:00:00+00:00",
    }
    assert quota.per_day(TOKEN, 1, 150, NOW).left == 0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("authority", "host"),
    [
        ("localhost:8080", "localhost"),
        ("LOCALHOST.", "localhost."),
        ("[::1]:8080", "::1"),
        ("::1", "::1"),
        ("a.b", "a.b"),
    ],
)
def test_host_of(authority: str, host: str) -> None:
    assert host_of(authority) == host


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({b"host": b"127.0.0.1:8080"}, None),
        ({b"host": b"[::1]:8080", b"origin": b"http://[::1]:8080"}, None),
        ({b"host": b"localhost:8080", b"origin": b"https://localhost:8080"}, None),
        ({}, 400),
        ({b"host": b"attacker.example:8080"}, 400),
        ({b"host": b"127.0.0.1.nip.io"}, 400),
        ({b"host": b"127.0.0.1:8080", b"origin": b"http://127.0.0.1:8081"}, 403),
        ({b"host": b"127.0.0.1:8080", b"origin": b"http://attacker.example"}, 403),
        ({b"host": b"127.0.0.1:8080", b"origin": b"file://"}, 403),
        ({b"host": b"127.0.0.1:8080", b"sec-fetch-site": b"cross-site"}, 403),
    ],
)
def test_which_hosts_and_origins_are_served(headers: dict[bytes, bytes], status: int | None) -> None:
    refused = refusal(headers, "/jobs", ALLOWED)
    assert (refused[0] if refused else None) == status
    assert refusal(headers, "/health/ready", ALLOWED) is None  # probes come by IP


def test_allowed_hosts_come_from_the_setting_or_the_loopback_names() -> None:
    assert Settings.from_env({}).allowed_hosts == ALLOWED
    assert Settings.from_env({"BEACON_HTTP_HOST": "10.0.0.5"}).allowed_hosts == (*ALLOWED, "10.0.0.5")
    assert Settings.from_env({"BEACON_ALLOWED_HOSTS": "beacon.example.org, [::1]"}).allowed_hosts == (
        "beacon.example.org",
        "::1",
    )
    with pytest.raises(SettingsError, match=re.escape("BEACON_ALLOWED_HOSTS: 'evil.example:80/x' is not a host name")):
        Settings.from_env({"BEACON_ALLOWED_HOSTS": "evil.example:80/x"})
    with pytest.raises(SettingsError, match="BEACON_READ_AUTH='maybe': use one of auto, token, open"):
        Settings.from_env({"BEACON_READ_AUTH": "maybe"})
