from __future__ import annotations

import pytest

from beacon.infra.settings import Settings, SettingsError


def test_defaults_and_overrides() -> None:
    s = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "k:1", "BEACON_RUNNER_CONCURRENCY": "3"})
    assert s.kafka_bootstrap_servers == "k:1" and s.runner_concurrency == 3 and s.topic_namespace == "beacon"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BEACON_RUNNER_CONCURRENCY": "many"}, "BEACON_RUNNER_CONCURRENCY='many' is not a whole number"),
        ({"BEACON_RUNNER_CONCURRENCY": "0"}, "BEACON_RUNNER_CONCURRENCY=0 must be at least 1"),
        ({"BEACON_LOG_FORMAT": "xml"}, "BEACON_LOG_FORMAT='xml': use 'json' or 'console'"),
    ],
)
def test_bad_settings_say_which_and_why(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        Settings.from_env(env)
