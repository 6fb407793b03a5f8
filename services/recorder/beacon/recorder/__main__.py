"""`beacon-recorder` (also `python -m beacon.recorder`, and `beacon recorder` in the CLI): the projection
and the deadline clock, installed and started alone."""

from __future__ import annotations

import argparse

from beacon.infra import service
from beacon.infra.db import MigrationError
from beacon.infra.settings import Settings
from beacon.recorder import bootstrap


def serve(settings: Settings) -> None:
    service.run_service(bootstrap.recorder(settings).run)


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(
        prog="beacon-recorder", description="Project the events into PostgreSQL; record timeouts at deadlines."
    ).parse_args(argv)
    service.command(serve, mistakes=(MigrationError,))


if __name__ == "__main__":
    main()
