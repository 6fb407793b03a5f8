"""Dependencies point one way (issues 13 and 18), by package: the contracts and the pure domain
(beacon.schemas, beacon.domain, beacon.migrations) ← shared infrastructure (beacon.infra) ← the model adapters
(beacon.providers) ← the services (beacon.submitter, .runner, .recorder, .reader) and the local deployment
(beacon.deploy) ← the CLI (beacon.cli). No service imports another. Checked from the source's import
statements (every one, also those inside functions), and each module's name is its path below its
workspace member: no mapping table."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.workspace import ROOT, members

LAYERS = {
    "schemas": 0,
    "domain": 0,
    "migrations": 0,
    "infra": 1,
    "providers": 2,
    "submitter": 3,
    "runner": 3,
    "recorder": 3,
    "reader": 3,
    "deploy": 3,
    "cli": 4,
}
# The contracts and the domain are one layer (one distribution, beacon-schemas): events count a job's cells,
# the domain builds events.
SAME_COMPONENT = {"schemas": "core", "domain": "core"}


def module_name(path: Path) -> str:
    """A module's import path is its file path below the workspace member that holds it."""
    for member in members():
        if path.is_relative_to(member.folder / "beacon"):
            parts = path.relative_to(member.folder).with_suffix("").parts
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    raise ValueError(f"{path} is in no workspace member's beacon/ folder")


def component(module: str) -> tuple[int, str]:
    """(layer, component): a module may import its own component and any lower layer."""
    parts = module.split(".")
    if parts[0] != "beacon" or len(parts) < 2:
        return (-1, "third-party")
    if parts[1] not in LAYERS:
        raise ValueError(f"{module}: beacon.{parts[1]} is no known package; add it to LAYERS")
    return (LAYERS[parts[1]], SAME_COMPONENT.get(parts[1], parts[1]))


def imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, node.module)]
    return found


def violation(source: str, target: str) -> str | None:
    src_layer, src_comp = component(source)
    dst_layer, dst_comp = component(target)
    if dst_layer < 0 or src_comp == dst_comp or dst_layer < src_layer:
        return None
    return f"{source} ({src_comp}) imports {target} ({dst_comp})"


def python_files() -> list[Path]:
    return sorted(p for m in members() for p in (m.folder / "beacon").rglob("*.py"))


def all_violations() -> list[str]:
    out = []
    for path in python_files():
        source = module_name(path)
        for line, target in imports(path):
            problem = violation(source, target)
            if problem:
                out.append(f"{path.relative_to(ROOT)}:{line}: {problem}")
    return out


def test_dependencies_point_one_way() -> None:
    assert len(python_files()) > 60
    assert all_violations() == []


@pytest.mark.parametrize(
    ("source", "target", "allowed"),
    [
        ("beacon.schemas.events", "pydantic", True),
        ("beacon.domain.results", "beacon.domain.classify", True),
        ("beacon.domain.results", "beacon.schemas.events", True),
        ("beacon.schemas.events", "beacon.domain.cells", True),  # one layer
        ("beacon.schemas.events", "beacon.infra.settings", False),  # the domain knows no infrastructure
        ("beacon.domain.catalogue", "beacon.infra.catalogues", False),
        ("beacon.infra.kafka", "beacon.schemas.events", True),
        ("beacon.infra.kafka", "beacon.recorder.store", False),
        ("beacon.infra.settings", "beacon.providers.routing", False),
        ("beacon.providers.openai", "beacon.infra.redact", True),
        ("beacon.providers.judge", "beacon.runner.execute", False),
        ("beacon.recorder.main", "beacon.infra.kafka", True),
        ("beacon.recorder.replay", "beacon.runner.worker", False),  # no service imports another
        ("beacon.reader.api", "beacon.recorder.store", False),
        ("beacon.runner.worker", "beacon.runner.execute", True),
        ("beacon.runner.worker", "beacon.providers", True),
        ("beacon.runner.main", "beacon.cli.main", False),
        ("beacon.deploy.local.services", "beacon.runner.main", False),
        ("beacon.deploy.local.kafka", "beacon.infra.settings", True),
        ("beacon.cli.main", "beacon.providers.routing", True),
        ("beacon.cli.demo", "beacon.deploy.local.services", True),
    ],
)
def test_the_rule_itself(source: str, target: str, allowed: bool) -> None:
    assert (violation(source, target) is None) is allowed


def test_an_unknown_package_is_an_error_not_a_pass() -> None:
    with pytest.raises(ValueError, match=r"beacon\.newthing is no known package"):
        component("beacon.newthing.x")


def test_module_names_are_file_paths() -> None:
    assert module_name(ROOT / "schemas" / "beacon" / "schemas" / "events.py") == "beacon.schemas.events"
    assert module_name(ROOT / "schemas" / "beacon" / "domain" / "cells.py") == "beacon.domain.cells"
    assert module_name(ROOT / "services" / "reader" / "beacon" / "reader" / "__init__.py") == "beacon.reader"
    assert module_name(ROOT / "cli" / "beacon" / "cli" / "main.py") == "beacon.cli.main"


def test_every_package_imports_from_its_own_file() -> None:
    """What `import` finds is the file this test names, for every module: no remapping hook in between."""
    import importlib.util

    for path in python_files():
        name = module_name(path)
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None, name
        assert Path(spec.origin).resolve() == path.resolve(), f"{name} imports from {spec.origin}, not {path}"


def test_the_namespace_has_no_init() -> None:
    """`beacon` is a namespace (PEP 420): a beacon/__init__.py in any member would hide the others."""
    for member in members():
        assert not (member.folder / "beacon" / "__init__.py").exists(), member.folder
