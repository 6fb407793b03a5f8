"""Model providers behind one interface (base.Provider), chosen per (region, model) by the routing."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from beacon.providers.base import Provider
from beacon.providers.routing import Route, Routing


@dataclass
class Endpoint:
    provider: Provider
    # Calls in flight to this endpoint; the runner's worker count caps the total on top.
    slots: asyncio.Semaphore


def _build(route: Route, region_display: str, api_keys: Mapping[str, str]) -> Provider:
    if route.provider == "ollama":
        from beacon.providers.ollama import OllamaProvider

        return OllamaProvider(route)
    if route.provider == "openai":
        from beacon.providers.openai import OpenAIProvider

        return OpenAIProvider(route, api_keys[route.api_key_env] if route.api_key_env else None)
    from beacon.providers.simulated import SimulatedProvider

    return SimulatedProvider(region_display, route.latency_ms, route.max_answer_chars)


class Endpoints:
    """One provider instance and one concurrency limit per distinct route of this runner's region."""

    def __init__(
        self, routing: Routing, region: str, region_display: str, api_keys: Mapping[str, str] | None = None
    ) -> None:
        self.routing = routing
        self.region = region
        self.region_display = region_display
        self.api_keys = api_keys or {}  # checked at start-up: Routing.api_keys
        self._by_route: dict[str, Endpoint] = {}

    def for_model(self, model_id: str) -> Endpoint:
        route = self.routing.route(self.region, model_id)
        key = route.model_dump_json()
        if key not in self._by_route:
            provider = _build(route, self.region_display, self.api_keys)
            self._by_route[key] = Endpoint(provider, asyncio.Semaphore(route.concurrency))
        return self._by_route[key]

    def judge(self) -> Endpoint | None:
        """The judge's endpoint, when the routing names one."""
        if self.routing.judge is None:
            return None
        key = "judge:" + self.routing.judge.model_dump_json()
        if key not in self._by_route:
            provider = _build(self.routing.judge, self.region_display, self.api_keys)
            self._by_route[key] = Endpoint(provider, asyncio.Semaphore(self.routing.judge.concurrency))
        return self._by_route[key]

    async def close(self) -> None:
        for endpoint in self._by_route.values():
            close = getattr(endpoint.provider, "close", None)
            if close is not None:
                await close()
