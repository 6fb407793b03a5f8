"""Model replies are hostile input: whatever a server sends, a cell ends as one event and nothing raises.

Each case runs a real adapter against a local server speaking the wire format, then the runner's own
`run_cell`, and checks the event the worker would emit: status, failure code, one model call, the
answer cleaned and cut with the edits recorded, secrets masked, and the event within the broker limit.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator

import pytest

from beacon.infra import redact
from beacon.infra.kafka import MAX_EVENT_BYTES
from beacon.providers.ollama import OllamaProvider
from beacon.providers.openai import OpenAIProvider
from beacon.providers.routing import Route, Routing, RoutingError
from beacon.runner.execute import run_cell
from beacon.schemas.events import (
    ExecutionCompleted,
    encode,
)
from tests.model_server import Behaviour, ModelServer
from tests.support import MODEL_KINDS, RUNNER, a_cell

KINDS = MODEL_KINDS
PRODUCER = RUNNER
CELL = a_cell("hostile")


@pytest.fixture
def server() -> Iterator[ModelServer]:
    s = ModelServer()
    yield s
    s.close()


def run(kind: str, url: str, api_key: str | None = None, **route: object) -> ExecutionCompleted:
    async def go() -> ExecutionCompleted:
        r = Route(provider=kind, endpoint=url, model="served", backoff_base_s=0.0, max_attempts=3, **route)
        p = OllamaProvider(r) if kind == "ollama" else OpenAIProvider(r, api_key)
        try:
            return await run_cell(CELL, p, PRODUCER)
        finally:
            await p.close()

    event = asyncio.run(go())
    assert len(encode(event)) <= MAX_EVENT_BYTES
    return event


def reply(kind: str, content: object, **extra: object) -> str:
    """A well-formed reply of either wire format, with `content` (any JSON value) as the answer."""
    if kind == "ollama":
        return json.dumps(
            {"model": "served", "message": {"role": "assistant", "content": content}, "done": True, **extra}
        )
    choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
    return json.dumps({"model": "served", "choices": [choice], **extra})


def raw(body: str, status: int = 200) -> Behaviour:
    return Behaviour(kind="status", status=status, body=body)


def assert_bad_response(event: ExecutionCompleted, server: ModelServer) -> None:
    assert event.status == "failed" and event.classification.label == "error"
    assert [a.failure.code for a in event.attempts if a.failure] == ["bad_response"]
    assert server.calls == 1  # not retried: the same reply would come back
    assert len(event.attempts[0].failure.message) <= 2000  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "body",
    [
        "[" * 20_000 + "]" * 20_000,  # nesting that overflows a recursive parser
        '{"model": "m", "message": {"content": 1' + "0" * 5000 + "}}",  # a 5,000-digit number
        "<html>not json</html>",
        '"just a string"',
        "[1, 2, 3]",
    ],
    ids=["20000-deep", "5000-digits", "html", "json-string", "json-list"],
)
def test_a_reply_that_is_not_usable_json_is_one_failed_cell(server: ModelServer, kind: str, body: str) -> None:
    server.script = [raw(body)]
    assert_bad_response(run(kind, server.url), server)


@pytest.mark.parametrize("kind", KINDS)
def test_content_of_the_wrong_type_is_a_bad_response(server: ModelServer, kind: str) -> None:
    server.script = [raw(reply(kind, {"nested": "object"}))]
    assert_bad_response(run(kind, server.url), server)


@pytest.mark.parametrize("kind", KINDS)
def test_null_content_is_an_empty_answer_and_text_parts_are_joined(server: ModelServer, kind: str) -> None:
    server.script = [raw(reply(kind, None)), raw(reply(kind, [{"type": "text", "text": "4"}, {"text": "."}]))]
    empty = run(kind, server.url)
    assert (empty.status, empty.answer, empty.classification.label) == ("completed", "", "empty")
    parts = run(kind, server.url)
    assert (parts.status, parts.answer) == ("completed", "4.")


@pytest.mark.parametrize("kind", KINDS)
def test_odd_model_and_usage_fields_are_dropped_not_fatal(server: ModelServer, kind: str) -> None:
    extra = {"model": 42, "usage": {"prompt_tokens": "many", "completion_tokens": 10**30}}
    if kind == "ollama":
        extra = {"model": ["x"], "prompt_eval_count": "many", "eval_count": -3}
    server.script = [raw(reply(kind, "4", **extra))]
    event = run(kind, server.url)
    assert (event.status, event.answer, event.provider_model, event.tokens) == ("completed", "4", None, None)


@pytest.mark.parametrize("kind", KINDS)
def test_nul_and_lone_surrogates_are_replaced_and_the_original_stays_provable(server: ModelServer, kind: str) -> None:
    server.script = [raw(reply(kind, "The answer is 4.\u0000 \ud800!"))]
    event = run(kind, server.url)
    original = "The answer is 4.\u0000 \ud800!"
    assert event.status == "completed" and event.answer == "The answer is 4.\ufffd \ufffd!"
    assert event.answer_edits is not None and event.answer_edits.replaced_characters == 2
    assert not event.answer_edits.truncated
    assert event.answer_edits.original_sha256 == hashlib.sha256(original.encode("utf-8", "surrogatepass")).hexdigest()
    assert event.receipt.answer_sha256 == hashlib.sha256(event.answer.encode()).hexdigest()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_huge_answer_is_cut_while_read_and_flagged(server: ModelServer, kind: str, stream: bool) -> None:
    server.answer = lambda prompt: "word " * 600_000  # 3 MB
    event = run(kind, server.url, stream=stream, max_answer_chars=50_000)
    assert event.status == "completed" and event.answer is not None and len(event.answer) == 50_000
    assert event.answer_edits is not None and event.answer_edits.truncated
    if stream:  # reading stopped soon after the limit, not at the end of 3 MB
        assert event.answer_edits.original_chars < 60_000


@pytest.mark.parametrize("kind", KINDS)
def test_an_answer_that_escapes_past_the_broker_limit_is_shortened_to_fit(server: ModelServer, kind: str) -> None:
    server.script = [raw(reply(kind, "\u0001" * 190_000))]  # 6 bytes each once escaped in JSON
    event = run(kind, server.url, max_answer_chars=200_000)
    assert event.status == "completed" and event.answer_edits is not None and event.answer_edits.truncated
    assert 100_000 < len(event.answer or "") < 170_000


def test_a_stream_chunk_that_is_not_an_object_is_a_bad_response(server: ModelServer) -> None:
    server.script = [raw('data: {"choices": [{"delta": {"content": "4"}}]}\n\ndata: [1, 2]\n\ndata: [DONE]\n\n')]
    assert_bad_response(run("openai", server.url, stream=True), server)


def test_ollama_stream_line_that_is_not_an_object_is_a_bad_response(server: ModelServer) -> None:
    server.script = [raw('{"message": {"content": "4"}, "done": false}\n"text"\n')]
    assert_bad_response(run("ollama", server.url, stream=True), server)


def test_an_echoed_api_key_and_credentials_never_reach_the_event(server: ModelServer) -> None:
    key = "sk-canary-1f2e3d4c5b6a"
    redact.remember(key)
    server.script = [raw(json.dumps({"error": f"invalid key Bearer {key} for {key}"}), status=401)]
    url = server.url.replace("http://", "http://alice:hunter2@") + "/v1?api_key=abc123"
    event = run("openai", url, api_key=key)
    text = encode(event).decode()
    assert event.status == "failed" and event.attempts[0].failure.code == "client_error"  # type: ignore[union-attr]
    for secret in (key, "hunter2", "alice", "abc123"):
        assert secret not in text
    assert event.receipt.endpoint == f"{server.url}/v1/chat/completions"


def test_provider_error_bodies_are_bounded(server: ModelServer) -> None:
    server.script = [raw("x" * 1_000_000, status=400)]
    event = run("openai", server.url)
    assert event.status == "failed" and len(event.attempts[0].failure.message) <= 2000  # type: ignore[union-attr]


ROUTING = """
[regions.eu-west.mistral-7b]
provider = "openai"
endpoint = "http://127.0.0.1:9/v1"
model = "m"
api_key_env = "BEACON_TEST_KEY"
"""


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "BEACON_TEST_KEY for an API key, but BEACON_TEST_KEY is not set"),
        ({"BEACON_TEST_KEY": "  "}, "BEACON_TEST_KEY is empty"),
        ({"BEACON_TEST_KEY": "sk-abc\n"}, "BEACON_TEST_KEY contains a line break"),
    ],
)
def test_api_keys_are_checked_at_start_up_and_named(environ: dict[str, str], message: str) -> None:
    routing = Routing.from_toml(ROUTING)
    with pytest.raises(RoutingError, match=message) as info:
        routing.api_keys("eu-west", environ)
    assert "sk-abc" not in str(info.value)
    assert routing.api_keys("us-east", environ) == {}  # another region's key is not this runner's business
    assert routing.api_keys("eu-west", {"BEACON_TEST_KEY": "sk-abc"}) == {"BEACON_TEST_KEY": "sk-abc"}
