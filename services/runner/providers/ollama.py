"""`ollama`: the Ollama chat API, POST {endpoint}/api/chat, plain or streamed (NDJSON)."""

from __future__ import annotations

import json
from typing import Any

from schemas.events import TokenCounts
from services.runner.providers.base import ModelCall, ProviderResult
from services.runner.providers.http import Reply, bad_response, check_status, client, parse_json, with_retries
from services.runner.routing import Route


class OllamaProvider:
    name = "ollama"

    def __init__(self, route: Route) -> None:
        self.route = route
        self.url = self.endpoint = str(route.endpoint).rstrip("/") + "/api/chat"
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
    def _reply(final: dict[str, Any], answer: str) -> Reply:
        tokens = TokenCounts(prompt=final.get("prompt_eval_count"), completion=final.get("eval_count"))
        return Reply(answer=answer, provider_model=final.get("model"), tokens=tokens)

    async def _once(self, call: ModelCall) -> Reply:
        if not self.route.stream:
            response = await self.http.post(self.url, json=self.body(call))
            check_status(response, response.text)
            data = parse_json(response.text, response.status_code)
            content = data.get("message", {}).get("content") if isinstance(data, dict) else None
            if not isinstance(content, str):
                raise bad_response(f"no message.content in reply: {response.text[:200]!r}")
            return self._reply(data, content)
        async with self.http.stream("POST", self.url, json=self.body(call)) as response:
            if response.status_code >= 400:
                check_status(response, (await response.aread()).decode(errors="replace"))
            parts: list[str] = []
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                try:
                    chunk = json.loads(line)
                except json.JSONDecodeError:
                    raise bad_response(f"stream line is not JSON: {line[:200]!r}") from None
                if "error" in chunk:
                    raise bad_response(f"stream error: {chunk['error']}")
                parts.append(chunk.get("message", {}).get("content", ""))
                if chunk.get("done"):
                    return self._reply(chunk, "".join(parts))
            raise bad_response("stream ended without a final done=true line")

    async def call(self, call: ModelCall) -> ProviderResult:
        return await with_retries(self.route, lambda: self._once(call))

    async def close(self) -> None:
        await self.http.aclose()
