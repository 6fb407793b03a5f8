"""`ollama`: the Ollama chat API, POST {endpoint}/api/chat, plain or streamed (NDJSON)."""

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
from beacon.providers.routing import Route


class OllamaProvider:
    name = "ollama"

    def __init__(self, route: Route) -> None:
        self.route = route
        self.max_answer_chars = route.max_answer_chars
        self.url = endpoint_url(route.endpoint, "/api/chat")
        self.endpoint = public_url(self.url)
        self.caps = StreamCaps.for_answer(route.max_answer_chars)
        self.http = client(route)

    def body(self, call: ModelCall) -> dict[str, Any]:
        options: dict[str, Any] = {"temperature": call.params.temperature, "num_predict": call.params.max_tokens}
        if call.params.seed is not None:
            options["seed"] = call.params.seed
        return {
            "model": self.route.model,
            "messages": [
                {"role": "system", "content": call.system_prompt},
                {"role": "user", "content": call.prompt},
            ],
            "stream": self.route.stream,
            "options": options,
        }

    @staticmethod
    def _content(data: dict[str, Any]) -> str:
        message = data.get("message")
        if message is None:
            return ""
        return as_text(as_object(message, "message").get("content"), "message.content")

    @staticmethod
    def _reply(final: dict[str, Any], answer: str, truncated: bool = False) -> Reply:
        return Reply(
            answer=answer,
            provider_model=clean_label(final.get("model")),
            tokens=tokens(final.get("prompt_eval_count"), final.get("eval_count")),
            truncated=truncated,
        )

    async def _once(self, call: ModelCall) -> Reply:
        return await post(self.http, self.url, self.body(call), self._read)

    async def _read(self, response: httpx.Response) -> Reply:
        if not self.route.stream:
            text = await read_body(response)
            data = as_object(parse_json(text, response.status_code), "the reply")
            if not isinstance(data.get("message"), dict):
                raise bad_response(f"no message in reply: {excerpt(text, 200)!r}")
            return self._reply(data, self._content(data))
        parts: list[str] = []
        size = 0
        async with aclosing(read_lines(response, self.caps)) as lines:
            async for line in lines:
                if not line.strip():
                    continue
                try:
                    chunk = as_object(json.loads(line), "a stream line")
                except (ValueError, RecursionError):
                    raise bad_response(f"stream line is not JSON the runner can read: {excerpt(line, 200)!r}") from None
                if "error" in chunk:
                    raise bad_response(f"stream error: {excerpt(str(chunk['error']), 500)}")
                text = self._content(chunk)
                parts.append(text)
                size += len(text)
                if chunk.get("done") is True:
                    return self._reply(chunk, "".join(parts))
                if size > self.max_answer_chars:  # stop reading: the rest would be cut anyway
                    return self._reply(chunk, "".join(parts), truncated=True)
        raise bad_response("stream ended without a final done=true line")

    async def call(self, call: ModelCall) -> ProviderResult:
        return await with_retries(self.route, lambda: self._once(call))

    async def close(self) -> None:
        await self.http.aclose()
