"""`openai`: the OpenAI-compatible chat completions API (vLLM, llama.cpp server, LM Studio, hosted APIs).

POST {endpoint}/v1/chat/completions, plain or streamed (server-sent events). The API key, checked at
start-up (routing.Routing.api_keys), is sent as a bearer token and never recorded: the receipt keeps the
endpoint without user-info or query, and failure messages are redacted.
"""

from __future__ import annotations

import json
from contextlib import aclosing
from typing import Any

import httpx

from beacon.infra.redact import public_url
from beacon.providers.answers import clean_label
from beacon.providers.base import ModelCall, ProviderResult
from beacon.providers.http import (
    Reply,
    StreamCaps,
    as_object,
    as_text,
    bad_response,
    client,
    endpoint_url,
    excerpt,
    parse_json,
    post,
    read_body,
    read_lines,
    tokens,
    with_retries,
)
from beacon.providers.routing import Route, check_api_key


class OpenAIProvider:
    name = "openai"

    def __init__(self, route: Route, api_key: str | None = None) -> None:
        self.route = route
        self.max_answer_chars = route.max_answer_chars
        self.url = endpoint_url(route.endpoint, "/v1/chat/completions")
        self.endpoint = public_url(self.url)
        self.caps = StreamCaps.for_answer(route.max_answer_chars)
        self.http = client(route)
        if api_key is not None:
            check_api_key(route.api_key_env or "the API key", api_key)  # as at start-up, for any other caller
            self.http.headers["Authorization"] = f"Bearer {api_key}"

    def body(self, call: ModelCall) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.route.model,
            "messages": [
                {"role": "system", "content": call.system_prompt},
                {"role": "user", "content": call.prompt},
            ],
            "temperature": call.params.temperature,
            "max_tokens": call.params.max_tokens,
            "stream": self.route.stream,
        }
        if call.params.seed is not None:
            body["seed"] = call.params.seed
        if self.route.stream:
            body["stream_options"] = {"include_usage": True}
        return body

    @staticmethod
    def _tokens(usage: Any) -> Any:
        if not isinstance(usage, dict):
            return None
        return tokens(usage.get("prompt_tokens"), usage.get("completion_tokens"))

    @staticmethod
    def _content(choice: Any, part: str) -> str:
        """choices[0].message.content (or .delta.content in a stream chunk) as text."""
        inner = as_object(choice, "choices[0]").get(part)
        if inner is None and part == "delta":
            return ""
        return as_text(as_object(inner, f"choices[0].{part}").get("content"), f"choices[0].{part}.content")

    async def _once(self, call: ModelCall) -> Reply:
        return await post(self.http, self.url, self.body(call), self._read)

    async def _read(self, response: httpx.Response) -> Reply:
        if self.route.stream:
            return await self._read_stream(response)
        text = await read_body(response)
        data = as_object(parse_json(text, response.status_code), "the reply")
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            raise bad_response(f"no choices in reply: {excerpt(text, 200)!r}")
        return Reply(
            answer=self._content(choices[0], "message"),
            provider_model=clean_label(data.get("model")),
            tokens=self._tokens(data.get("usage")),
        )

    async def _read_stream(self, response: httpx.Response) -> Reply:
        parts: list[str] = []
        size = 0
        model = usage = None
        async with aclosing(read_lines(response, self.caps)) as lines:
            async for line in lines:
                if not line.startswith("data:"):
                    continue  # blank separators and SSE comments
                payload = line[5:].strip()
                if payload == "[DONE]":
                    return Reply(answer="".join(parts), provider_model=model, tokens=usage)
                try:
                    chunk = as_object(json.loads(payload), "a stream event")
                except (ValueError, RecursionError):
                    raise bad_response(
                        f"stream event is not JSON the runner can read: {excerpt(payload, 200)!r}"
                    ) from None
                model = clean_label(chunk.get("model")) or model
                usage = self._tokens(chunk.get("usage")) or usage
                choices = chunk.get("choices") or []
                if not isinstance(choices, list):
                    raise bad_response("stream event's choices is not a list")
                for choice in choices:
                    text = self._content(choice, "delta")
                    parts.append(text)
                    size += len(text)
                if size > self.max_answer_chars:  # stop reading: the rest would be cut anyway
                    return Reply(answer="".join(parts), provider_model=model, tokens=usage, truncated=True)
        raise bad_response("stream ended without data: [DONE]")

    async def call(self, call: ModelCall) -> ProviderResult:
        return await with_retries(self.route, lambda: self._once(call))

    async def close(self) -> None:
        await self.http.aclose()
