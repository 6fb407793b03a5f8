"""The workspace as the tests see it: its members (read from the root pyproject.toml) and the dependency
closure of each, as the one lock file pins it."""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Member:
    name: str  # the distribution, e.g. beacon-runner
    folder: Path
    package: str  # the import package it adds to the namespace, e.g. beacon.runner


@functools.cache
def members() -> tuple[Member, ...]:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found = []
    for pattern in root["tool"]["uv"]["workspace"]["members"]:
        for folder in sorted(ROOT.glob(pattern)):
            if not (folder / "pyproject.toml").exists():
                continue
            name = tomllib.loads((folder / "pyproject.toml").read_text())["project"]["name"]
            packages = sorted(p.name for p in (folder / "beacon").iterdir() if p.is_dir() and p.name != "__pycache__")
            found += [Member(name, folder, f"beacon.{p}") for p in packages]
    return tuple(found)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.cache
def _lock() -> dict[str, dict]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return {_normal(p["name"]): p for p in lock["package"]}


def closure(distribution: str, extras: tuple[str, ...] = ()) -> set[str]:
    """Every distribution installing `distribution` (with `extras`) brings, from uv.lock."""
    lock = _lock()
    seen: set[str] = set()
    seen_extras: set[tuple[str, str]] = set()
    todo: list[tuple[str, tuple[str, ...]]] = [(_normal(distribution), extras)]
    while todo:
        name, wanted = todo.pop()
        entry = lock[name]
        deps = [] if name in seen else list(entry.get("dependencies", []))
        seen.add(name)
        for extra in wanted:
            if (name, extra) not in seen_extras:
                seen_extras.add((name, extra))
                deps += entry.get("optional-dependencies", {}).get(extra, [])
        for dep in deps:
            todo.append((_normal(dep["name"]), tuple(dep.get("extra", ()))))
    return seen
