"""Untrusted text on an operator's terminal.

Model answers, error texts from other services, dead letters' headers and bytes, ids read from a database
or from an API are all untrusted: a reply that contains `ESC ] 52 ; c ; … BEL` writes the operator's
clipboard, other escape sequences rewrite the screen or the window title, and bidi overrides make a line
read differently from the bytes it holds. Everything the CLI prints from those sources goes through
`safe` (text) or `safe_json` (--json output) first.

Escaped: C0 controls (U+0000–U+001F), DEL (U+007F), C1 controls (U+0080–U+009F), the bidi embeddings,
overrides and isolates (U+202A–U+202E, U+2066–U+2069, the "Trojan Source" set) and lone surrogates (which
a JSON document may hold and which a UTF-8 terminal cannot even be sent). Each becomes its Python escape:
ESC is shown as the four characters `\\x1b`, U+202E as `\\u202e`. Backslashes themselves are left alone, so
ordinary text (a Windows path in an answer) reads as it is; the cost is that a literal `\\x1b` in the text
looks the same as an escaped ESC, which is harmless: neither reaches the terminal as a control.
"""

from __future__ import annotations

import json
from typing import Any

_BIDI = [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_ESCAPES: dict[int, str] = {
    **{c: f"\\x{c:02x}" for c in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]},
    **{c: f"\\u{c:04x}" for c in [*_BIDI, *range(0xD800, 0xE000)]},
    0x09: "\\t",
    0x0A: "\\n",
    0x0D: "\\r",
}
_KEEP_NEWLINES = {k: v for k, v in _ESCAPES.items() if k != 0x0A}


def safe(value: object, *, newlines: bool = False) -> str:
    """`value` as text that cannot drive a terminal. With `newlines`, "\\n" is kept (a multi-line message
    of our own); every other control character, "\\r" and "\\t" included, is escaped."""
    text = value if isinstance(value, str) else str(value)
    return text.translate(_KEEP_NEWLINES if newlines else _ESCAPES)


def safe_json(value: Any) -> str:
    """JSON for --json output, printable ASCII only: with `ensure_ascii` (stated here, not left to a
    default) json.dumps writes every character outside U+0020–U+007E as a \\uXXXX escape — C0 controls,
    DEL, C1 controls, bidi overrides, lone surrogates alike — so the text is still valid JSON that parses
    back to the same value, and no byte of it can drive a terminal. Values JSON has no type for (times)
    are written as their str()."""
    return json.dumps(value, ensure_ascii=True, default=str)
