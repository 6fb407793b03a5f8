"""Dependencies point one way (issue 13): contracts and the pure domain (beacon.schemas) ← shared
infrastructure (beacon.*) ← services and the local deployment tools ← the CLI on top. No service imports
another. Checked from the source's import statements (every one, also those inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Where each installed package's source lives (pyproject.toml's package-dir).
SOURCES = {"beacon": ROOT / "beacon", "beacon.schemas": ROOT / "schemas", "beacon.services": ROOT / "services"}
SOURCES["beacon.deploy"] = ROOT / "deploy"


def module_name(path: Path) -> str:
    for package, folder in sorted(SOURCES.items(), key=lambda kv: -len(kv[0])):
        if path.is_relative_to(folder):
            parts = [*package.split("."), *path.relative_to(folder).with_suffix("").parts]
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    raise ValueError(path)


def component(module: str) -> tuple[int, str]:
    """(layer, component): a module may import its own component and any lower layer."""
    parts = module.split(".")
    if parts[0] != "beacon":
        return (-1, "third-party")
    if len(parts) > 1 and parts[1] == "schemas":
        return (0, "schemas")
    if len(parts) > 2 and parts[1] == "services":
        return (2, f"services.{parts[2]}")
    if len(parts) > 1 and parts[1] == "services":
        return (2, "services")
    if len(parts) > 1 and parts[1] == "deploy":
        return (2, "deploy")
    if len(parts) > 1 and parts[1] == "cli":
        return (3, "cli")
    return (1, "infrastructure")


def imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from beacon.domain import results` imports beacon.domain.results
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def violation(source: str, target: str) -> str | None:
    src_layer, src_comp = component(source)
    dst_layer, dst_comp = component(target)
    if dst_layer < 0 or src_comp == dst_comp or dst_comp == "services":
        return None
    if dst_layer < src_layer and not (src_comp == "deploy" and dst_comp.startswith("services")):
        return None
    return f"{source} ({src_comp}) imports {target} ({dst_comp})"


def all_violations() -> list[str]:
    out = []
    for folder in SOURCES.values():
        for path in sorted(folder.rglob("*.py")):
            if path.is_relative_to(ROOT / "beacon") and folder != SOURCES["beacon"]:
                continue
            source = module_name(path)
            for line, target in imports(path):
                problem = violation(source, target)
                if problem:
                    out.append(f"{path.relative_to(ROOT)}:{line}: {problem}")
    return out


def test_dependencies_point_one_way() -> None:
    assert all_violations() == []


@pytest.mark.parametrize(
    ("source", "target", "allowed"),
    [
        ("beacon.schemas.events", "pydantic", True),
        ("beacon.domain.results", "beacon.domain.classify", True),
        ("beacon.schemas.events", "beacon.infra.settings", False),  # the domain knows no infrastructure
        ("beacon.infra.kafka", "beacon.schemas.events", True),
        ("beacon.infra.kafka", "beacon.recorder.store", False),
        ("beacon.recorder.main", "beacon.infra.kafka", True),
        ("beacon.recorder.replay", "beacon.providers.judge", False),  # no service imports another
        ("beacon.reader.api", "beacon.recorder.store", False),
        ("beacon.runner.worker", "beacon.runner.execute", True),
        ("beacon.runner.main", "beacon.cli.main", False),
        ("beacon.deploy.local.services", "beacon.runner.main", False),
        ("beacon.deploy.local.kafka", "beacon.infra.settings", True),
        ("beacon.cli.main", "beacon.providers.routing", True),
        ("beacon.cli.demo", "beacon.deploy.local.services", True),
    ],
)
def test_the_rule_itself(source: str, target: str, allowed: bool) -> None:
    assert (violation(source, target) is None) is allowed


def test_module_names_follow_the_package_mapping() -> None:
    assert module_name(ROOT / "schemas" / "events.py") == "beacon.schemas.events"
    assert module_name(ROOT / "services" / "reader" / "__init__.py") == "beacon.reader"
    assert module_name(ROOT / "beacon" / "cli" / "main.py") == "beacon.cli.main"
