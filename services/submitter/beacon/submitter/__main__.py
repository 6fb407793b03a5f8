"""`beacon-submitter-api [--host H] [--port P]` (also `python -m beacon.submitter`, and `beacon submitter-api`
in the CLI): POST /jobs, installed and started alone."""

from __future__ import annotations

import argparse

from beacon.domain.catalogue import CatalogueError
from beacon.infra import http, service
from beacon.infra.db import MigrationError
from beacon.infra.settings import Settings
from beacon.submitter.http import create_app


class DidNotStart(RuntimeError):
    pass


def serve(settings: Settings, host: str, port: int) -> None:
    settings.catalogue  # noqa: B018 - an invalid catalogue stops it here, with its problems, before it serves
    # Head deadline, keep-alive, concurrency and head-size limits: beacon.infra.http.
    server = http.server(create_app(settings), host, port)
    server.run()
    if not server.started:
        raise DidNotStart(f"the submitter API did not start on {host}:{port} (the reason is above)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="beacon-submitter-api", description="Serve POST /jobs.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args(argv)
    service.command(lambda s: serve(s, args.host, args.port), mistakes=(CatalogueError, MigrationError, DidNotStart))


if __name__ == "__main__":
    main()
