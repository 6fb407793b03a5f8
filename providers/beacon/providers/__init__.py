"""Model providers behind one interface (base.Provider), chosen per (region, model) by the routing
(routing.py). Every name routing.ProviderName accepts has its builder in BUILDERS; a route naming any other
provider is an error that lists the known ones."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from beacon.providers.base import Provider
from beacon.providers.routing import Route, Routing, RoutingError


@dataclass
class Endpoint:
    provider: Provider
    # Calls in flight to this endpoint; the runner's worker count caps the total on top.
    slots: asyncio.Semaphore


def _simulated(route: Route, region_display: str, api_keys: Mapping[str, str]) -> Provider:
    from beacon.providers.simulated import SimulatedProvider

    return SimulatedProvider(region_display, route.latency_ms, route.max_answer_chars)


def _ollama(route: Route, region_display: str, api_keys: Mapping[str, str]) -> Provider:
    from beacon.providers.ollama import OllamaProvider

    return OllamaProvider(route)


def _openai(route: Route, region_display: str, api_keys: Mapping[str, str]) -> Provider:
    from beacon.providers.openai import OpenAIProvider

    return OpenAIProvider(route, api_keys[route.api_key_env] if route.api_key_env else None)


# Every provider name the routing accepts has its builder here (tests/unit/test_routing.py checks both ways):
# a name without one is an error, never a silent fallback to `simulated` — that would record invented answers.
BUILDERS: dict[str, Callable[[Route, str, Mapping[str, str]], Provider]] = {
    "simulated": _simulated,
    "ollama": _ollama,
    "openai": _openai,
}


def _build(route: Route, region_display: str, api_keys: Mapping[str, str]) -> Provider:
    builder = BUILDERS.get(route.provider)
    if builder is None:
        raise RoutingError(f"unknown provider {route.provider!r}; the known providers: {', '.join(BUILDERS)}")
    return builder(route, region_display, api_keys)


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
