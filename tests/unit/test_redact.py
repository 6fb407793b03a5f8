"""Secrets are masked wherever they appear in text Beacon writes down; receipts keep public URLs only."""

from __future__ import annotations

import pytest

from beacon.infra import redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Illegal header value b'Bearer sk-abc123def\\n'", "Illegal header value b'Bearer [redacted]\\n'"),
        ("auth: Basic dXNlcjpwYXNz", "auth: Basic [redacted]"),
        ("GET http://alice:hunter2@host:8000/v1", "GET http://[redacted]@host:8000/v1"),
        ("url?api_key=abc&x=1", "url?api_key=[redacted]&x=1"),
        ('{"password": "p4ss", "token": "t0k"}', '{"password": "[redacted]", "token": "[redacted]"}'),
        ("key sk-proj-0123456789abcdef leaked", "key [redacted] leaked"),
        ("completed in 2026-11-27T10:00:00Z, 4 tokens", "completed in 2026-11-27T10:00:00Z, 4 tokens"),
    ],
)
def test_shapes_of_secrets_are_masked_and_ordinary_text_is_not(text: str, expected: str) -> None:
    assert redact.redact(text) == expected


def test_a_remembered_secret_is_masked_whatever_its_shape() -> None:
    redact.remember("plainvalue-42")
    assert redact.redact("the server said plainvalue-42 was wrong") == "the server said [redacted] was wrong"


def test_log_lines_are_redacted_value_by_value() -> None:
    line = redact.log_processor(None, "", {"event": "x", "error": "Bearer abcdef123", "n": 3})
    assert line == {"event": "x", "error": "Bearer [redacted]", "n": 3}


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("http://user:pw@host:8080/v1/chat?key=1#frag", "http://host:8080/v1/chat"),
        ("https://api.example/v1", "https://api.example/v1"),
        ("http://[::1]:11434/api/chat", "http://[::1]:11434/api/chat"),
        (None, None),
    ],
)
def test_public_url(url: str | None, public: str | None) -> None:
    assert redact.public_url(url) == public
