"""`beacon-reader` (also `python -m beacon.reader`, and `beacon reader` in the CLI): the read API and the
portal, installed and started alone."""

from __future__ import annotations

import argparse

from beacon.domain.catalogue import CatalogueError
from beacon.infra import service
from beacon.infra.db import MigrationError
from beacon.infra.settings import Settings
from beacon.reader.main import run


def serve(settings: Settings) -> None:
    settings.catalogue  # noqa: B018 - an invalid catalogue stops it here, with its problems, before it serves
    service.run_service(lambda: run(settings))


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(prog="beacon-reader", description="Serve the read API and the portal.").parse_args(argv)
    service.command(serve, mistakes=(CatalogueError, MigrationError))


if __name__ == "__main__":
    main()
