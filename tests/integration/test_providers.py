"""Each HTTP adapter against a local server speaking its real wire format: bodies checked, calls counted."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from beacon.domain.classify import classify
from beacon.infra.catalogues import DEFAULT
from beacon.providers import Endpoints
from beacon.providers.base import ModelCall, ProviderResult
from beacon.providers.ollama import OllamaProvider
from beacon.providers.openai import OpenAIProvider
from beacon.providers.routing import Route, Routing
from beacon.schemas.events import GenerationParams
from tests.model_server import Behaviour, ModelServer

CALL = ModelCall(
    model_id="llama3.2-1b",
    model_name="Llama 3.2 1B Instruct",
    system_prompt=DEFAULT.regions["eu-west"].system_prompts["en"],
    prompt="What is the capital of France?",
    params=GenerationParams(temperature=0.1, max_tokens=500, seed=7),
)
FAST = {"backoff_base_s": 0.01, "backoff_max_s": 5.0, "max_attempts": 3}


@pytest.fixture
def server() -> Iterator[ModelServer]:
    s = ModelServer()
    yield s
    s.close()


def provider(kind: str, url: str, **route: object):
    r = Route(provider=kind, endpoint=url, model="served-model", **{**FAST, **route})
    return OllamaProvider(r) if kind == "ollama" else OpenAIProvider(r)


def call(kind: str, url: str, **route: object) -> ProviderResult:
    async def go() -> ProviderResult:
        p = provider(kind, url, **route)
        try:
            return await p.call(CALL)
        finally:
            await p.close()

    return asyncio.run(go())


KINDS = ["ollama", "openai"]


@pytest.mark.parametrize("kind", KINDS)
def test_success_sends_the_real_request_shape(server: ModelServer, kind: str) -> None:
    result = call(kind, server.url)
    assert (result.status, result.answer) == ("completed", "Answer: What is the capital of France?")
    assert server.calls == 1 and len(result.attempts) == 1 and result.attempts[0].outcome == "ok"
    body = server.requests[0]
    assert body["model"] == "served-model" and body["stream"] is False
    # The regional system prompt exactly once, then the one question.
    assert body["messages"] == [
        {"role": "system", "content": DEFAULT.regions["eu-west"].system_prompts["en"]},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    if kind == "ollama":
        assert server.paths == ["/api/chat"]
        assert body["options"] == {"temperature": 0.1, "num_predict": 500, "seed": 7}
    else:
        assert server.paths == ["/v1/chat/completions"]
        assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.1, 500, 7)
    assert result.provider_model == "served-model"
    assert result.tokens is not None and result.tokens.prompt == 26 and result.tokens.completion == 7


@pytest.mark.parametrize("kind", KINDS)
def test_streaming_success(server: ModelServer, kind: str) -> None:
    result = call(kind, server.url, stream=True)
    assert (result.status, result.answer) == ("completed", "Answer: What is the capital of France?")
    assert server.calls == 1 and server.requests[0]["stream"] is True
    assert result.tokens is not None and result.tokens.completion == 7


@pytest.mark.parametrize("kind", KINDS)
def test_429_waits_as_long_as_retry_after_says(server: ModelServer, kind: str) -> None:
    server.script = [Behaviour("status", 429, retry_after="1")]
    result = call(kind, server.url)
    assert result.status == "completed" and server.calls == 2
    assert server.call_times[1] - server.call_times[0] >= 0.95
    first = result.attempts[0]
    assert first.outcome == "error" and first.http_status == 429
    assert first.failure is not None and first.failure.code == "rate_limited" and first.failure.transient


@pytest.mark.parametrize("kind", KINDS)
def test_500_then_success_is_retried(server: ModelServer, kind: str) -> None:
    server.script = [Behaviour("status", 500, body='{"error": "model crashed"}')]
    result = call(kind, server.url)
    assert result.status == "completed" and server.calls == 2
    assert [a.outcome for a in result.attempts] == ["error", "ok"]
    failure = result.attempts[0].failure
    assert failure is not None and failure.code == "server_error" and "model crashed" in failure.message


@pytest.mark.parametrize("kind", KINDS)
def test_400_is_not_retried_and_keeps_the_error_text(server: ModelServer, kind: str) -> None:
    server.script = [Behaviour("status", 400, body='{"error": "model \\"served-model\\" not found"}')]
    result = call(kind, server.url)
    assert (result.status, result.answer) == ("failed", None) and server.calls == 1
    failure = result.attempts[0].failure
    assert failure is not None and (failure.code, failure.http_status, failure.transient) == (
        "client_error",
        400,
        False,
    )
    assert "not found" in failure.message
    assert classify(result.status, result.answer).label == "error"


@pytest.mark.parametrize("kind", KINDS)
def test_read_timeout_ends_as_timeout_after_the_attempt_limit(server: ModelServer, kind: str) -> None:
    server.script = [Behaviour("hang", delay_s=2.0), Behaviour("hang", delay_s=2.0)]
    result = call(kind, server.url, first_byte_timeout_s=0.3, max_attempts=2)
    assert result.status == "timeout" and server.calls == 2
    assert [a.outcome for a in result.attempts] == ["timeout", "timeout"]
    assert all(a.failure and a.failure.code == "read_timeout" for a in result.attempts)


@pytest.mark.parametrize("kind", KINDS)
def test_total_timeout_bounds_an_attempt(server: ModelServer, kind: str) -> None:
    server.script = [Behaviour("hang", delay_s=2.0)]
    result = call(kind, server.url, total_timeout_s=0.3, max_attempts=1)
    assert result.status == "timeout" and server.calls == 1
    assert result.attempts[0].failure is not None and result.attempts[0].failure.code == "total_timeout"


@pytest.mark.parametrize("kind", KINDS)
def test_malformed_json_fails_without_retry(server: ModelServer, kind: str) -> None:
    server.script = [Behaviour("malformed")]
    result = call(kind, server.url)
    assert result.status == "failed" and server.calls == 1
    failure = result.attempts[0].failure
    assert failure is not None and failure.code == "bad_response" and "not JSON" in failure.message


@pytest.mark.parametrize("kind", KINDS)
def test_empty_content_is_an_answer_classified_empty(server: ModelServer, kind: str) -> None:
    server.script = [Behaviour("empty")]
    result = call(kind, server.url)
    assert (result.status, result.answer) == ("completed", "") and server.calls == 1
    assert classify(result.status, result.answer).label == "empty"


@pytest.mark.parametrize("kind", KINDS)
def test_connection_refused_is_retried_then_failed(kind: str) -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = call(kind, f"http://127.0.0.1:{port}")
    assert result.status == "failed" and len(result.attempts) == 3
    assert all(a.failure and a.failure.code == "connect_error" for a in result.attempts)


def test_openai_sends_the_api_key_checked_at_start_up(server: ModelServer) -> None:
    seen: list[str | None] = []
    original = server._handle

    def spy(h):
        seen.append(h.headers.get("Authorization"))
        original(h)

    server._handle = spy  # type: ignore[method-assign]
    route = Route(provider="openai", endpoint=server.url, model="m", api_key_env="TEST_MODEL_KEY")
    routing = Routing({("eu-west", "llama3.2-1b"): route}, Route())
    keys = routing.api_keys("eu-west", {"TEST_MODEL_KEY": "sk-test"})  # what `beacon runner` does first

    async def go() -> ProviderResult:
        endpoints = Endpoints(routing, "eu-west", "EU", keys)
        try:
            return await endpoints.for_model("llama3.2-1b").provider.call(CALL)
        finally:
            await endpoints.close()

    assert asyncio.run(go()).status == "completed"
    assert seen == ["Bearer sk-test"]


def test_concurrency_limit_per_endpoint_is_never_exceeded(server: ModelServer) -> None:
    server.delay_s = 0.2
    routing = Routing(
        {("eu-west", "llama3.2-1b"): Route(provider="openai", endpoint=server.url, model="m", concurrency=3)}, Route()
    )

    async def go() -> None:
        endpoints = Endpoints(routing, "eu-west", "EU")

        async def one() -> None:
            endpoint = endpoints.for_model("llama3.2-1b")
            async with endpoint.slots:
                assert (await endpoint.provider.call(CALL)).status == "completed"

        await asyncio.gather(*(one() for _ in range(12)))
        await endpoints.close()

    asyncio.run(go())
    assert server.calls == 12
    assert server.max_in_flight == 3
