"""Each part of Beacon is its own distribution with only its own dependencies (issue 18): a runner deployed in
a region installs no PostgreSQL driver and no web framework; no service's closure holds another service; and
every third-party module a member imports is one its declared dependencies bring. From the one lock file,
and (test_a_service_installs_alone) by really installing each service by itself from it."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.workspace import ROOT, closure, members

SERVICES = ("beacon-submitter", "beacon-runner", "beacon-recorder", "beacon-reader")
DATABASE = {"psycopg", "psycopg-binary", "psycopg-pool", "beacon-migrations"}
WEB = {"fastapi", "uvicorn", "starlette"}


def test_a_runner_brings_no_database_driver_and_no_web_framework() -> None:
    runner = closure("beacon-runner")
    assert {"aiokafka", "httpx", "beacon-providers", "beacon-infra", "beacon-schemas"} <= runner
    assert runner & (DATABASE | WEB) == set()


@pytest.mark.parametrize("service", ["beacon-submitter", "beacon-recorder", "beacon-reader"])
def test_the_database_services_bring_the_driver_and_the_migrations(service: str) -> None:
    assert DATABASE | {"fastapi", "uvicorn"} <= closure(service)


@pytest.mark.parametrize("service", SERVICES)
def test_no_service_brings_another(service: str) -> None:
    others = set(SERVICES) - {service}
    assert closure(service) & (others | {"beacon-cli", "beacon-deploy"}) == set()


def test_only_the_runner_brings_the_model_adapters() -> None:
    assert {s for s in SERVICES if "beacon-providers" in closure(s)} == {"beacon-runner"}


def _imports(folder: Path) -> dict[str, Path]:
    """Top-level third-party modules, and `beacon.<package>` for Beacon's own, that `folder` imports."""
    stdlib = sys.stdlib_module_names
    found: dict[str, Path] = {}
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                parts = name.split(".")
                top = ".".join(parts[:2]) if parts[0] == "beacon" else parts[0]
                if parts[0] not in stdlib and top not in ("beacon", "__future__"):
                    found.setdefault(top, path)
    return found


@pytest.mark.parametrize("member", sorted({m.name for m in members()}))
def test_every_import_is_a_declared_dependency(member: str) -> None:
    """A module may import a package (third-party, or another member's part of `beacon`) only if its member's
    closure (from uv.lock) installs it."""
    import tomllib

    folder = next(m.folder for m in members() if m.name == member)
    declared = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    extras = tuple(declared.get("optional-dependencies", {}))
    have = closure(member, extras)
    providers = importlib.metadata.packages_distributions()
    owners = {m.package: m.name for m in members()}
    missing = []
    for module, path in sorted(_imports(folder / "beacon").items()):
        if module.startswith("beacon."):
            dists = {owners[module]}
        else:
            dists = {d.lower().replace("_", "-") for d in providers.get(module, [module])}
        if not dists & have:
            missing.append(f"{path.relative_to(ROOT)} imports {module} ({', '.join(sorted(dists))}), not in {member}")
    assert missing == []


PROBE = """
import importlib, importlib.util, sys
importlib.import_module(sys.argv[1])
print(" ".join(m for m in ("psycopg", "fastapi", "uvicorn", "httpx") if importlib.util.find_spec(m)))
"""


@pytest.mark.parametrize(
    ("service", "entrypoint", "brings", "command"),
    [
        ("beacon-runner", "beacon.runner.__main__", {"httpx"}, "beacon-runner"),
        ("beacon-recorder", "beacon.recorder.__main__", {"psycopg", "fastapi", "uvicorn"}, "beacon-recorder"),
        ("beacon-reader", "beacon.reader.__main__", {"psycopg", "fastapi", "uvicorn"}, "beacon-reader"),
        ("beacon-submitter", "beacon.submitter.__main__", {"psycopg", "fastapi", "uvicorn"}, "beacon-submitter-api"),
    ],
)
def test_a_service_installs_alone(
    service: str, entrypoint: str, brings: set[str], command: str, tmp_path: Path
) -> None:
    """`uv sync --package` from the lock into an empty environment, not editable: the service's entrypoint
    imports, exactly the heavy packages it needs are there, and its own command starts and checks its
    settings before it touches anything (no Kafka or database here: a bad setting must be the error)."""
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(tmp_path / "env"),
        "UV_PYTHON_DOWNLOADS": "never",
        "VIRTUAL_ENV": "",
    }
    uv = Path(sys.executable).with_name("uv")
    subprocess.run(
        [str(uv), "sync", "--quiet", "--locked", "--no-dev", "--no-editable", "--package", service,
         "--python", sys.executable],
        cwd=ROOT, env=env, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    python = tmp_path / "env" / "bin" / "python"
    out = subprocess.run(
        [str(python), "-c", PROBE, entrypoint],
        cwd=tmp_path,  # not the checkout: imports come from the installed wheels
        env={"PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert set(out.split()) == brings
    started = subprocess.run(
        [str(tmp_path / "env" / "bin" / command), *(["--region", "us-east"] if command == "beacon-runner" else [])],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "BEACON_LOG_FORMAT": "xml", "BEACON_STATE_DIR": str(tmp_path / "state")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (started.returncode, started.stderr) == (2, "error: BEACON_LOG_FORMAT='xml': use 'json' or 'console'\n")


def test_a_runner_alone_refuses_a_region_that_is_no_id_before_it_connects() -> None:
    from beacon.infra.settings import Settings
    from beacon.runner.__main__ import BadRegion, serve

    with pytest.raises(BadRegion, match=r"--region 'us east' is not a region id"):
        serve(Settings.from_env({}), "us east")
