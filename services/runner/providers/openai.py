"""`openai`: the OpenAI-compatible chat completions API (vLLM, llama.cpp server, LM Studio, hosted APIs).

POST {endpoint}/v1/chat/completions, plain or streamed (server-sent events). The API key, when the route
names an environment variable for it, is sent as a bearer token and never recorded.
"""

from __future__ import annotations

import json
import os
from typing import Any

from schemas.events import TokenCounts
from services.runner.providers.base import ModelCall, ProviderResult
from services.runner.providers.http import Reply, bad_response, check_status, client, parse_json, with_retries
from services.runner.routing import Route


class OpenAIProvider:
    name = "openai"

    def __init__(self, route: Route) -> None:
        self.route = route
        base = str(route.endpoint).rstrip("/")
        self.url = self.endpoint = base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")
        headers = {}
        if route.api_key_env:
            key = os.environ.get(route.api_key_env)
            if not key:
                raise ValueError(f"the routing names {route.api_key_env} for the API key, but it is not set")
            headers["Authorization"] = f"Bearer {key}"
        self.http = client(route)
        self.http.headers.update(headers)

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
    def _tokens(usage: Any) -> TokenCounts | None:
        if not isinstance(usage, dict):
            return None
        return TokenCounts(prompt=usage.get("prompt_tokens"), completion=usage.get("completion_tokens"))

    async def _once(self, call: ModelCall) -> Reply:
        if not self.route.stream:
            response = await self.http.post(self.url, json=self.body(call))
            check_status(response, response.text)
            data = parse_json(response.text, response.status_code)
            try:
                content = data["choices"][0]["message"]["content"]
            except (KeyError, IndexError, TypeError):
                raise bad_response(f"no choices[0].message.content in reply: {response.text[:200]!r}") from None
            return Reply(answer=content or "", provider_model=data.get("model"), tokens=self._tokens(data.get("usage")))
        async with self.http.stream("POST", self.url, json=self.body(call)) as response:
            if response.status_code >= 400:
                check_status(response, (await response.aread()).decode(errors="replace"))
            parts: list[str] = []
            model = tokens = None
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators and SSE comments
                payload = line[5:].strip()
                if payload == "[DONE]":
                    return Reply(answer="".join(parts), provider_model=model, tokens=tokens)
                try:
                    chunk = json.loads(payload)
                except json.JSONDecodeError:
                    raise bad_response(f"stream event is not JSON: {payload[:200]!r}") from None
                model = chunk.get("model", model)
                tokens = self._tokens(chunk.get("usage")) or tokens
                for choice in chunk.get("choices") or []:
                    parts.append((choice.get("delta") or {}).get("content") or "")
            raise bad_response("stream ended without data: [DONE]")

    async def call(self, call: ModelCall) -> ProviderResult:
        return await with_retries(self.route, lambda: self._once(call))

    async def close(self) -> None:
        await self.http.aclose()
