"""Where each model of each region is sent: provider, endpoint, model name, limits. Configuration only.

Read from the TOML file named by BEACON_ROUTING_FILE (see deploy/routing.example.toml); without one,
every model in every region goes to the `simulated` provider, which is what the demo uses. A region may
route a model to a different endpoint than another region does — that is the point of regions.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, model_validator

from beacon.schemas.events import MAX_ANSWER_CHARS
from beacon.schemas.ids import ID_DESCRIPTION, ID_PATTERN

ProviderName = Literal["simulated", "ollama", "openai"]


_ID = re.compile(ID_PATTERN)


class RoutingError(ValueError):
    pass


def _kind(char: str) -> str:
    if char == " ":
        return "a space"
    if char == "\t":
        return "a tab"
    if ord(char) < 0x20 or ord(char) == 0x7F:
        return "a control character"
    return "a non-ASCII character"


def check_api_key(name: str, value: str) -> None:
    """Refuse, naming the variable `name` and never the value, an API key that is empty or holds anything
    but visible ASCII (0x21-0x7E: no space, tab, control or non-ASCII character). Such a key can only fail
    (it is not a valid header value, or not the key the provider issued), and the HTTP library's error
    would quote the header — the key — back, escaped (a tab as backslash-t, é as \\xc3\\xa9), and
    with the key split where a parser stopped reading it."""
    if not value.strip():
        raise RoutingError(f"the routing names {name} for an API key, but {name} is empty")
    if "\r" in value or "\n" in value:
        raise RoutingError(
            f"{name} contains a line break (often a trailing newline in a mounted secret); "
            "remove it, e.g. with `printf %s` instead of `echo` when writing the secret"
        )
    for position, char in enumerate(value, 1):
        if not "\x21" <= char <= "\x7e":
            raise RoutingError(
                f"{name} holds {_kind(char)} at character {position} of {len(value)}; an API key is visible "
                "ASCII only (no spaces, tabs, control or non-ASCII characters): check how the secret was written"
            )


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    concurrency: int = Field(4, ge=1, le=1024, description="Calls in flight at once to this endpoint.")
    connect_timeout_s: float = Field(5.0, gt=0)
    first_byte_timeout_s: float = Field(60.0, gt=0, description="Longest silence while waiting for bytes.")
    total_timeout_s: float = Field(180.0, gt=0, description="Longest a single attempt may take in all.")
    max_attempts: int = Field(3, ge=1, le=20)
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    max_answer_chars: int = Field(
        100_000, ge=1, le=MAX_ANSWER_CHARS, description="Answers are cut here (while read, when streamed)."
    )


class Route(Limits):
    provider: ProviderName = "simulated"
    endpoint: HttpUrl | None = None
    model: str | None = Field(None, description="The provider's own name for the model, e.g. 'llama3.2:1b'.")
    api_key_env: str | None = Field(None, description="Environment variable holding the API key (openai).")
    stream: bool = False
    latency_ms: int = Field(0, ge=0, description="simulated only: how long each call takes.")

    @model_validator(mode="after")
    def _endpoint_for_real_providers(self) -> Route:
        if self.provider != "simulated" and (self.endpoint is None or self.model is None):
            raise ValueError(f"provider {self.provider!r} needs both `endpoint` and `model`")
        return self


class RoutingFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    defaults: Route = Field(default_factory=Route)
    # region id → model id → the fields that differ from `defaults`
    regions: dict[str, dict[str, dict[str, object]]] = Field(default_factory=dict)
    # Optional: a model that gives a second opinion on every answer (judge.py).
    judge: Route | None = None

    @model_validator(mode="after")
    def _judge_is_a_real_model(self) -> RoutingFile:
        if self.judge is not None and self.judge.provider == "simulated":
            raise ValueError("judge: give a real provider (ollama or openai) with `endpoint` and `model`")
        return self


class Routing:
    def __init__(self, routes: dict[tuple[str, str], Route], default: Route, judge: Route | None = None) -> None:
        self._routes = routes
        self._default = default
        self.judge = judge

    def route(self, region: str, model_id: str) -> Route:
        return self._routes.get((region, model_id), self._default)

    def has_own_route(self, region: str, model_id: str) -> bool:
        """False when the routing names models for this region but not this one, which then goes to the
        default route: worth telling the user. A routing without per-model routes means the default for all."""
        own = {reg for reg, _ in self._routes}
        return (region, model_id) in self._routes or region not in own

    def routes_of(self, region: str | None) -> list[Route]:
        """The routes a runner of `region` may call (None: only the judge, as `beacon reclassify --judge`)."""
        routes = (
            [] if region is None else [self._default, *(r for (reg, _), r in self._routes.items() if reg == region)]
        )
        return routes + ([self.judge] if self.judge is not None else [])

    def api_keys(self, region: str | None, environ: Mapping[str, str]) -> dict[str, str]:
        """The API keys this region's routes name, checked before the runner takes any work (check_api_key):
        a key that is unset, empty or not visible ASCII would fail every call, and an HTTP library would
        quote it in the error text."""
        keys = {}
        for route in self.routes_of(region):
            name = route.api_key_env
            if name is None or name in keys:
                continue
            value = environ.get(name)
            if value is None:
                raise RoutingError(f"the routing names {name} for an API key, but {name} is not set")
            check_api_key(name, value)
            keys[name] = value
        return keys

    @classmethod
    def simulated(cls, latency_ms: int = 0, concurrency: int = 8) -> Routing:
        """Everything simulated; the runner's own window is the only limit worth having offline."""
        return cls({}, Route(latency_ms=latency_ms, concurrency=concurrency))

    @classmethod
    def from_toml(cls, text: str, source: str = "routing file") -> Routing:
        try:
            data = RoutingFile.model_validate(tomllib.loads(text))
        except tomllib.TOMLDecodeError as exc:
            raise RoutingError(f"{source}: not valid TOML: {exc}") from None
        except ValidationError as exc:
            raise RoutingError(f"{source}: {_describe(exc)}") from None
        routes: dict[tuple[str, str], Route] = {}
        for region, models in data.regions.items():
            # Any id the catalogue may hold (runners do not read the catalogue): a slug, as in events.
            if not _ID.fullmatch(region):
                raise RoutingError(f"{source}: regions.{region}: not a region id ({ID_DESCRIPTION})")
            for model_id, fields in models.items():
                where = f"regions.{region}.{model_id}"
                if not _ID.fullmatch(model_id):
                    raise RoutingError(f"{source}: {where}: not a model id ({ID_DESCRIPTION})")
                merged = {**data.defaults.model_dump(exclude_unset=True), **fields}
                try:
                    routes[(region, model_id)] = Route.model_validate(merged)
                except ValidationError as exc:
                    raise RoutingError(f"{source}: {where}: {_describe(exc)}") from None
        return cls(routes, data.defaults, data.judge)

    @classmethod
    def from_file(cls, path: Path) -> Routing:
        if not path.is_file():
            raise RoutingError(f"routing file {path} does not exist (BEACON_ROUTING_FILE)")
        return cls.from_toml(path.read_text(), str(path))


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg'].removeprefix('Value error, ')}"
        for e in exc.errors(include_url=False)
    )
