"""The three services as separate processes, talking only through Kafka, for the pipeline tests."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from beacon.settings import Settings
from schemas.catalogue import REGIONS
from tests.harness import Services


@pytest.fixture(scope="session")
def pipeline(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """A recorder and one runner per region, started once for the session."""
    services = Services(settings, tmp_path_factory.mktemp("service-logs"))
    services.start("recorder", "recorder")
    for region in REGIONS:
        services.start(f"runner-{region}", "runner", "--region", region)
    time.sleep(1)
    services.assert_alive()
    yield services
    services.stop_all()
