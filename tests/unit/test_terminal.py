"""Untrusted text never drives the operator's terminal: control, C1 and bidi characters are escaped."""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beacon.cli.matrix import render
from beacon.infra.http import bounded
from beacon.infra.terminal import safe, safe_json

UNSAFE = {
    *map(chr, range(0x00, 0x20)),
    "\x7f",
    *map(chr, range(0x80, 0xA0)),
    *map(chr, range(0x202A, 0x202F)),
    *map(chr, range(0x2066, 0x206A)),
    *map(chr, range(0xD800, 0xE000)),
}

# An OSC 52 sequence writes the clipboard; CSI sequences move the cursor and recolour; U+202E reverses.
CLIPBOARD = "\x1b]52;c;Y3VybCBldmlsLnNoIHwgc2g=\x07"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (CLIPBOARD, "\\x1b]52;c;Y3VybCBldmlsLnNoIHwgc2g=\\x07"),
        ("\x1b[2J\x1b[31mred", "\\x1b[2J\\x1b[31mred"),
        ("a\x9b31mb", "a\\x9b31mb"),  # C1 CSI: one byte does what ESC [ does on some terminals
        ("ok\u202etxt.exe", "ok\\u202etxt.exe"),
        ("\u2066isolate\u2069", "\\u2066isolate\\u2069"),
        ("del\x7f", "del\\x7f"),
        ("nul\x00", "nul\\x00"),
        ("two\nlines\r\tend", "two\\nlines\\r\\tend"),
        ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
        (
            "plain text, ünïcödé, 中文, עברית, emoji 🙂, C:\\path",
            "plain text, ünïcödé, 中文, עברית, emoji 🙂, C:\\path",
        ),
    ],
)
def test_safe_escapes_exactly_the_dangerous_characters(text: str, shown: str) -> None:
    assert safe(text) == shown


def test_safe_keeps_newlines_when_asked_and_nothing_else() -> None:
    assert safe("error:\n  \x1b[31mline\r", newlines=True) == "error:\n  \\x1b[31mline\\r"
    assert safe(ValueError("bad \x1b")) == "bad \\x1b"  # any object: its str()


@given(st.text())
def test_safe_output_never_holds_an_unsafe_character(text: str) -> None:
    out = safe(text)
    assert not UNSAFE & set(out)
    # Character by character: a safe one is kept as it is, an unsafe one becomes a backslash escape.
    assert out == "".join(c if c not in UNSAFE else safe(c) for c in text)
    for c in set(text) & UNSAFE:
        assert safe(c).startswith("\\") and len(safe(c)) in (2, 4, 6)


@given(st.text(), st.booleans())
def test_safe_keeps_only_newlines_with_newlines(text: str, newlines: bool) -> None:
    out = safe(text, newlines=newlines)
    assert not (UNSAFE - ({"\n"} if newlines else set())) & set(out)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)
    )
)
def test_safe_json_is_valid_json_of_the_same_value_and_pure_printable_ascii(value: object) -> None:
    out = safe_json(value)
    assert json.loads(out) == value
    assert all(0x20 <= ord(c) < 0x7F for c in out)


def test_safe_json_escapes_del_c1_and_bidi() -> None:
    assert safe_json({"a": "\x7f\x9b\u202e\x1b"}) == '{"a": "\\u007f\\u009b\\u202e\\u001b"}'


def test_every_escaped_character_is_a_control_format_or_surrogate() -> None:
    for c in UNSAFE:
        assert unicodedata.category(c) in ("Cc", "Cf", "Cs")


def test_matrix_render_escapes_labels_and_cells() -> None:
    spec = {
        "questions": [{"id": "q\x1b]52;c;x\x07"}],
        "models": [{"id": "m\u202e"}],
        "regions": [{"id": "r1", "display": "\x1b[31mUS"}],
    }
    rows = [{"question_id": "q\x1b]52;c;x\x07", "model_id": "m\u202e", "region": "r1", "status": "completed",
             "classification": "\x9bevil"}]  # fmt: skip
    text = render(spec, rows)
    assert not UNSAFE - {"\n"} & set(text)
    assert "q\\x1b]52;c;x\\x07" in text and "m\\u202e \\x1b[31mUS" in text and "\\x9bevil" in text


def test_bounded_lists_at_most_twenty_lines_of_bounded_width() -> None:
    assert bounded(["a", "b"]) == ["a", "b"]
    lines = bounded([f"problem {i}" for i in range(1000)])
    assert len(lines) == 21 and lines[-1] == "… and 980 more"
    [long] = bounded(["x" * 100_000])
    assert len(long) == 300 and long.endswith("…")
