"""Where the tests find the checkout and the package data they read (the code itself finds its data through
importlib.resources, so it needs no checkout)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = Path(str(resources.files("beacon.cli").joinpath("examples")))
MIGRATIONS = Path(str(resources.files("beacon.migrations")))
