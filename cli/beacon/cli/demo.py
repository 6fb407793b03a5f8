"""`beacon demo` (what `make demo` runs after `make up`): the whole product, locally, in one command."""

from __future__ import annotations

import asyncio
import time
from importlib import resources

from beacon.cli.show import matrix_text, watch
from beacon.deploy.local import services
from beacon.infra import db
from beacon.infra.settings import Settings, state_dir
from beacon.schemas.topics import Principals
from beacon.submitter.bootstrap import submit_once
from beacon.submitter.decide import parse_spec

# The seed's 8 × 3 × 3 job, shipped with the CLI (`beacon example full-matrix` prints it).
DEMO_JOB = resources.files("beacon.cli").joinpath("examples", "full-matrix.json")


def demo(settings: Settings, timeout: float) -> None:
    began = time.monotonic()
    print("1/4 database: ", end="", flush=True)
    applied = db.migrate(settings.acting_as(db_role="migrator").database_url)
    print(f"applied {', '.join(applied)}" if applied else "up to date")

    print("2/4 services (simulated models — no model server is called):")
    for name, (pid, started) in services.start_all(state_dir()).items():
        print(f"    {name:<22} pid {pid:<7} {'started' if started else 'already running'}")

    spec = parse_spec(DEMO_JOB.read_bytes(), settings.catalogue)
    submitted = asyncio.run(submit_once(settings.acting_as(Principals.SUBMITTER, "submitter"), spec))
    settings = settings.acting_as(db_role="reader")  # from here on it only reads
    catalogue = settings.catalogue
    print(
        f"3/4 submitted {submitted.job_id} (catalogue {catalogue.describe()}, asked in {catalogue.default_language}):"
        f" {len(spec.questions)} questions × {len(spec.models)} models × "
        f"{len(spec.regions)} regions = {submitted.expected_executions} executions"
    )

    summary = watch(settings, submitted.job_id, timeout)
    print(
        f"4/4 recorded {summary.recorded}/{summary.expected} in {time.monotonic() - began:.1f} s — "
        f"status {summary.status}; the matrix (simulated provider):\n"
    )
    print(matrix_text(settings, submitted.job_id))
    portal = f"http://{settings.http_host}:{settings.http_port}/ui/jobs/{submitted.job_id}"
    print(f"""
Portal: {portal}   (the grid, every answer, the cross-region analysis)
More:   .venv/bin/beacon executions {submitted.job_id}     every answer
        .venv/bin/beacon status {submitted.job_id} --json
        logs in {state_dir() / "logs"}
Stop everything (services, Kafka, PostgreSQL): make down""")
