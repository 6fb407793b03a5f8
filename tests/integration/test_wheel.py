"""The wheels, not the checkout: every workspace member builds a wheel holding exactly its portion of the
`beacon` namespace (its code and every data file, never beacon/__init__.py), and those wheels, installed (not
editable) into a fresh virtual environment outside the repository, migrate an empty PostgreSQL database and
serve their package data from an empty folder, with no PYTHONPATH and no `.beacon/env` of the checkout.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

import psycopg
import pytest

from beacon.infra import catalogues
from tests.workspace import ROOT, members

pytestmark = [pytest.mark.pipeline, pytest.mark.timeout(600)]

UV = Path(sys.executable).with_name("uv")
# Each distribution of the workspace and its folder (schemas/ adds two packages, beacon.schemas and beacon.domain).
MEMBERS: dict[str, Path] = {m.name: m.folder for m in members()}
MIGRATIONS_SOURCE = ROOT / "migrations" / "beacon" / "migrations"
REQUIRED_TABLES = {"jobs", "executions", "submissions", "classifications", "schema_migrations"}
# Data files each wheel must hold at least one of, so an empty tree on both sides cannot pass the comparison.
EXPECTED_DATA = {
    "beacon-migrations": ["beacon/migrations/*.sql"],
    "beacon-schemas": [
        "beacon/domain/catalogue.toml",
        "beacon/schemas/json/*.schema.json",
        "beacon/schemas/openapi/*.openapi.json",
        "beacon/schemas/asyncapi/*.asyncapi.yaml",
    ],
    "beacon-reader": ["beacon/reader/portal/index.html"],
    "beacon-cli": ["beacon/cli/examples/*.json", "beacon/cli/examples/*.toml"],
    "beacon-deploy": ["beacon/deploy/local/kafka-jars/pom.xml"],
}


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode("utf-8", "replace")
    return output or ""


def run(args: list[str | Path], *, cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """Run a command to its end (check=True); when it fails or hangs, the failure shows what it printed."""
    command = [str(a) for a in args]
    try:
        return subprocess.run(
            command, cwd=cwd, env=env, check=True, capture_output=True, encoding="utf-8", timeout=timeout
        )
    except subprocess.CalledProcessError as exc:
        failure = f"exited {exc.returncode}\n--- stdout\n{_text(exc.stdout)}\n--- stderr\n{_text(exc.stderr)}"
    except subprocess.TimeoutExpired as exc:
        failure = f"still running after {timeout} s\n--- stdout\n{_text(exc.stdout)}\n--- stderr\n{_text(exc.stderr)}"
    pytest.fail(f"{shlex.join(command)} (in {cwd}) {failure}", pytrace=False)  # outside `except`: no chained trace


def uv_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "UV_PYTHON_DOWNLOADS": "never"}


def user_env(home: Path, state: Path, **extra: str) -> dict[str, str]:
    """A user's shell: no PYTHONPATH, no virtual environment, no BEACON_* or DATABASE_URL of this session, and
    a state folder of its own, so the checkout's `.beacon/env` is never read."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "BEACON_STATE_DIR": str(state),
        **extra,
    }


def source_files(folder: Path) -> set[str]:
    """Every file of a member's beacon/ tree, as a path in its wheel, ignoring bytecode."""
    return {
        p.relative_to(folder).as_posix()
        for p in (folder / "beacon").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def data(names: set[str]) -> set[str]:
    return {n for n in names if not n.endswith(".py")}


def migration_names() -> list[str]:
    return sorted(p.name for p in MIGRATIONS_SOURCE.glob("*.sql"))


@dataclass(frozen=True)
class Wheel:
    path: Path
    name: str  # from its METADATA
    version: str
    files: set[str]  # every file in it, directories left out


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Wheel]:
    """`uv build --all-packages --wheel` from the repository's root, each wheel by its distribution name."""
    out = tmp_path_factory.mktemp("wheels")
    assert not out.is_relative_to(ROOT)
    run(
        [UV, "build", "--all-packages", "--wheel", "--out-dir", out, "--python", sys.executable],
        cwd=ROOT,
        env=uv_env(),
        timeout=300,
    )
    found: dict[str, Wheel] = {}
    for path in sorted(out.glob("*.whl")):
        with zipfile.ZipFile(path) as z:
            files = {n for n in z.namelist() if not n.endswith("/")}
            metadata_file = next(n for n in files if n.endswith(".dist-info/METADATA"))
            metadata = HeaderParser().parsestr(z.read(metadata_file).decode())
        assert metadata["Name"] not in found, (
            f"two wheels of {metadata['Name']}: {found[metadata['Name']].path}, {path}"
        )
        found[metadata["Name"]] = Wheel(path, metadata["Name"], metadata["Version"], files)
    return found


def test_every_member_builds_exactly_one_wheel(wheels: dict[str, Wheel]) -> None:
    assert sorted(wheels) == sorted(MEMBERS)
    for name, wheel in wheels.items():
        version = tomllib.loads((MEMBERS[name] / "pyproject.toml").read_text())["project"]["version"]
        assert wheel.version == version
        assert wheel.path.name == f"{name.replace('-', '_')}-{version}-py3-none-any.whl"


@pytest.mark.parametrize("member", sorted(MEMBERS))
def test_a_wheel_holds_its_members_beacon_tree_and_nothing_else(member: str, wheels: dict[str, Wheel]) -> None:
    wheel = wheels[member]
    dist_info = f"{member.replace('-', '_')}-{wheel.version}.dist-info/"
    ours = {n for n in wheel.files if n.startswith("beacon/")}
    meta = {n for n in wheel.files if n.startswith(dist_info)}
    assert wheel.files - ours - meta == set(), f"{wheel.path.name} holds files outside beacon/ and {dist_info}"
    assert "beacon/__init__.py" not in ours, "beacon is a namespace (PEP 420): no wheel may own beacon/__init__.py"
    assert {f"{dist_info}{n}" for n in ("METADATA", "WHEEL", "RECORD")} <= meta
    source = source_files(MEMBERS[member])
    assert data(ours) == data(source), f"the data files of {wheel.path.name} differ from {MEMBERS[member]}/beacon"
    assert ours == source, f"the files of {wheel.path.name} differ from {MEMBERS[member]}/beacon"
    for pattern in EXPECTED_DATA.get(member, []):
        assert fnmatch.filter(sorted(ours), pattern), f"{wheel.path.name} has no {pattern}"


@dataclass(frozen=True)
class Installed:
    venv: Path
    python: Path
    beacon: Path  # the console script
    site_packages: Path


@pytest.fixture(scope="module")
def installed(wheels: dict[str, Wheel], tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """Every wheel installed, not editable, into a new virtual environment outside the repository, with the
    third-party versions uv.lock pins (from PyPI or uv's cache)."""
    work = tmp_path_factory.mktemp("installed")
    assert not work.is_relative_to(ROOT)
    export = ["--frozen", "--all-packages", "--no-dev", "--no-hashes", "--no-emit-workspace", "--no-header"]
    pins = run([UV, "export", *export, "--no-annotate"], cwd=ROOT, env=uv_env(), timeout=60).stdout
    constraints = work / "constraints.txt"
    constraints.write_text(pins)
    venv = work / "venv"
    run([UV, "venv", "--python", sys.executable, venv], cwd=work, env=uv_env(), timeout=60)
    python = venv / "bin" / "python"
    run(
        [UV, "pip", "install", "--python", python, "-c", constraints, *(w.path for w in wheels.values())],
        cwd=work,
        env=uv_env(),
        timeout=300,
    )
    freeze = run([UV, "pip", "freeze", "--python", python], cwd=work, env=uv_env(), timeout=60).stdout.splitlines()
    ours = sorted(line for line in freeze if line.startswith("beacon-"))
    assert ours == sorted(f"{name} @ {w.path.as_uri()}" for name, w in wheels.items())
    site = run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        cwd=work,
        env=user_env(work, work),
        timeout=60,
    ).stdout.strip()
    return Installed(venv, python, venv / "bin" / "beacon", Path(site))


@pytest.fixture
def empty_folder(tmp_path: Path) -> Path:
    """A working folder with nothing in it, outside the repository."""
    folder = tmp_path / "cwd"
    folder.mkdir()
    assert not folder.is_relative_to(ROOT)
    return folder


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "home").mkdir()
    (tmp_path / "state").mkdir()
    return user_env(tmp_path / "home", tmp_path / "state")


PROBE = """
import importlib.util, json, sys
from importlib import resources
import beacon
print(json.dumps({
    "beacon": list(beacon.__path__),
    "packages": {p: list(importlib.util.find_spec(p).submodule_search_locations) for p in sys.argv[1:]},
    "migrations": str(resources.files("beacon.migrations")),
}))
"""


def test_the_installed_wheels_are_imported_not_the_checkout(
    installed: Installed, empty_folder: Path, env: dict[str, str]
) -> None:
    packages = sorted({m.package for m in members()})
    found = json.loads(run([installed.python, "-c", PROBE, *packages], cwd=empty_folder, env=env, timeout=60).stdout)
    namespace = installed.site_packages / "beacon"
    assert [Path(p).resolve() for p in found["beacon"]] == [namespace.resolve()]
    assert not (namespace / "__init__.py").exists()
    for package in packages:
        where = namespace / package.removeprefix("beacon.")
        assert [Path(p).resolve() for p in found["packages"][package]] == [where.resolve()], package
    assert Path(found["migrations"]).resolve() == (namespace / "migrations").resolve()
    leaks = [p for p in installed.site_packages.glob("*.pth") if str(ROOT) in p.read_text()]
    assert leaks == [], "an editable install of the checkout leaked into the new environment"


def test_beacon_migrate_from_an_empty_folder(
    installed: Installed, empty_db: str, empty_folder: Path, env: dict[str, str]
) -> None:
    names = migration_names()
    assert names, f"no migrations in {MIGRATIONS_SOURCE}"
    first = run([installed.beacon, "migrate"], cwd=empty_folder, env={**env, "DATABASE_URL": empty_db}, timeout=60)
    assert (first.stdout, first.stderr) == (f"applied {', '.join(names)}\n", "")
    with psycopg.connect(empty_db) as conn:
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            )
        }
        applied = conn.execute("SELECT version, sha256 FROM schema_migrations ORDER BY version").fetchall()
    assert REQUIRED_TABLES <= tables, f"missing: {sorted(REQUIRED_TABLES - tables)}"
    # Exactly the checkout's SQL was applied: same files, same bytes.
    expected = [
        (name, hashlib.sha256((MIGRATIONS_SOURCE / name).read_text(encoding="utf-8").encode()).hexdigest())
        for name in names
    ]
    assert applied == expected
    second = run([installed.beacon, "migrate"], cwd=empty_folder, env={**env, "DATABASE_URL": empty_db}, timeout=60)
    assert (second.stdout, second.stderr) == ("database is up to date\n", "")
    assert list(empty_folder.iterdir()) == []


def test_the_package_data_from_an_empty_folder(installed: Installed, empty_folder: Path, env: dict[str, str]) -> None:
    example = run([installed.beacon, "example", "single"], cwd=empty_folder, env=env, timeout=60)
    spec = json.loads(example.stdout)
    assert "questions" in spec
    assert example.stdout == (MEMBERS["beacon-cli"] / "beacon/cli/examples/single.json").read_text(encoding="utf-8")

    validate = run([installed.beacon, "catalogue", "validate"], cwd=empty_folder, env=env, timeout=60)
    shipped = installed.site_packages / "beacon" / "domain" / "catalogue.toml"
    source = catalogues.load(MEMBERS["beacon-schemas"] / "beacon/domain/catalogue.toml")
    assert validate.stderr == ""
    assert validate.stdout.startswith(f"{shipped}: valid — {source.describe()}: "), validate.stdout
    assert validate.stdout.count("\n") == 1
    assert list(empty_folder.iterdir()) == []
