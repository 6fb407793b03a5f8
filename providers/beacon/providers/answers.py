"""Pure: a model's raw answer → the text Beacon records, and a record of what was changed.

PostgreSQL's text and jsonb refuse NUL, and UTF-8 has no lone surrogates; both arrive in real replies.
They are replaced by U+FFFD, the answer is cut at the route's limit, and the SHA-256 of the original
(UTF-8, surrogates passed through) is kept so the original stays provable against the provider's logs.
"""

from __future__ import annotations

import hashlib
import re

from beacon.infra.redact import redact
from beacon.schemas.events import MAX_MESSAGE_CHARS, AnswerEdits

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def raw_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def storable(text: str) -> tuple[str, int]:
    """`text` with NUL and lone surrogates replaced; and how many were."""
    return _UNSTORABLE.subn(REPLACEMENT, text)


def clean_answer(raw: str, max_chars: int, truncated_while_reading: bool = False) -> tuple[str, AnswerEdits | None]:
    """The answer to record; edits is None when the answer is kept exactly as received."""
    truncated = truncated_while_reading or len(raw) > max_chars
    answer, replaced = storable(raw[:max_chars])
    if not truncated and not replaced:
        return answer, None
    return answer, AnswerEdits(
        truncated=truncated, replaced_characters=replaced, original_chars=len(raw), original_sha256=raw_sha256(raw)
    )


def clean_message(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Untrusted text for a failure message or a label: storable, secrets masked, bounded."""
    text, _ = storable(redact(text[: limit * 4]))  # bound first: a provider's error body may be megabytes
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clean_label(value: object, limit: int = 200) -> str | None:
    """A provider-reported name (e.g. the model): kept only if it is a string, and made safe."""
    return clean_message(value, limit) if isinstance(value, str) and value.strip() else None
