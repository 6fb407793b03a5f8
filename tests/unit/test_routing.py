from __future__ import annotations

import pytest

from beacon.providers.routing import Routing, RoutingError
from tests.paths import REPO_ROOT


def test_example_routing_file_is_valid() -> None:
    routing = Routing.from_file(REPO_ROOT / "deploy" / "routing.example.toml")
    us = routing.route("us-east", "qwen2.5-1.5b")
    assert (us.provider, us.model, us.stream, us.concurrency) == ("ollama", "qwen2.5:1.5b", True, 4)
    eu = routing.route("eu-west", "llama3.2-1b")
    assert (eu.provider, eu.concurrency, eu.api_key_env) == ("openai", 8, "BEACON_EU_API_KEY")
    assert routing.route("asia-pacific", "mistral-7b").provider == "simulated"


def test_without_a_file_everything_is_simulated() -> None:
    assert Routing.simulated(25).route("us-east", "mistral-7b").latency_ms == 25


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[defaults\n", "not valid TOML"),
        # Any id the catalogue may hold is accepted (runners do not read the catalogue), but not a non-id.
        ('[regions."mars base"."mistral-7b"]\nprovider = "simulated"\n', "regions.mars base: not a region id"),
        ('[regions.us-east."gpt 9"]\nprovider = "simulated"\n', "regions.us-east.gpt 9: not a model id"),
        (
            '[regions.us-east."mistral-7b"]\nprovider = "ollama"\n',
            "provider 'ollama' needs both `endpoint` and `model`",
        ),
        ('[regions.us-east."mistral-7b"]\nprovider = "bard"\n', "provider: Input should be 'simulated', 'ollama'"),
        ("[defaults]\nconcurrency = 0\n", "defaults.concurrency: Input should be greater than or equal to 1"),
        ("[defaults]\ncolour = 1\n", "defaults.colour: Extra inputs are not permitted"),
    ],
)
def test_bad_routing_is_refused_with_where_and_why(text: str, message: str) -> None:
    with pytest.raises(RoutingError) as info:
        Routing.from_toml(text, "r.toml")
    assert message in str(info.value)
    assert str(info.value).startswith("r.toml: ")


def test_every_provider_name_has_a_builder_and_no_other() -> None:
    from typing import get_args

    from beacon.providers import BUILDERS
    from beacon.providers.routing import ProviderName

    assert set(BUILDERS) == set(get_args(ProviderName))


def test_an_unknown_provider_is_an_error_naming_the_known_ones_never_simulated() -> None:
    from beacon.providers import Endpoints
    from beacon.providers.routing import Route

    route = Route.model_construct(**{**Route().model_dump(), "provider": "bard"})  # past validation, as a bug would
    endpoints = Endpoints(Routing({}, route), "us-east", "US")
    with pytest.raises(RoutingError, match=r"unknown provider 'bard'; the known providers: simulated, ollama, openai"):
        endpoints.for_model("mistral-7b")
