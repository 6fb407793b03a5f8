"""`beacon-runner --region R` (also `python -m beacon.runner`, and `beacon runner` in the CLI): one
region's runner, as that region deploys it — installed alone, with no database driver and no web stack."""

from __future__ import annotations

import argparse
import re
import sys

from beacon.domain.catalogue import CatalogueError
from beacon.infra import service
from beacon.infra.settings import Settings
from beacon.providers.routing import RoutingError
from beacon.runner.main import run
from beacon.schemas.ids import ID_DESCRIPTION, ID_PATTERN


class BadRegion(ValueError):
    pass


def serve(settings: Settings, region: str) -> None:
    if not re.fullmatch(ID_PATTERN, region):  # it names topics and groups; which regions exist, jobs say
        raise BadRegion(f"--region {region!r} is not a region id ({ID_DESCRIPTION})")
    try:  # a runner needs no catalogue, but a region nobody can submit to is likely a typo
        known = settings.catalogue
        if region not in known.regions:
            print(
                f"warning: region {region!r} is not in the catalogue {known.describe()};"
                f" known: {', '.join(known.regions)}",
                file=sys.stderr,
            )
    except CatalogueError:
        pass
    service.run_service(lambda: run(settings, region))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="beacon-runner", description="Run the cells of jobs for one region.")
    parser.add_argument("--region", required=True, help="the region this runner serves, e.g. us-east")
    args = parser.parse_args(argv)
    service.command(lambda settings: serve(settings, args.region), mistakes=(BadRegion, RoutingError))


if __name__ == "__main__":
    main()
