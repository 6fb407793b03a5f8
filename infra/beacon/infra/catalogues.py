"""Reading a catalogue: the default one (package data of beacon.domain) or a user's file.

The domain parses text (beacon.domain.catalogue.parse); this module is where the bytes come from, so an
installed wheel finds its default catalogue exactly as a checkout does.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import Any

from beacon.domain.catalogue import Catalogue, CatalogueError, parse

# Where the default catalogue is, for messages and `beacon catalogue validate` (a real file in a wheel too).
DEFAULT_FILE = Path(str(resources.files("beacon.domain").joinpath("catalogue.toml")))


def load(path: Path) -> Catalogue:
    """A catalogue file, parsed and checked (CatalogueError names each problem's line, or why it can't be read)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogueError(str(path), [f"cannot read it: {exc}"]) from None
    return parse(text, str(path))


@functools.cache
def default() -> Catalogue:
    return load(DEFAULT_FILE)


def __getattr__(name: str) -> Any:
    # `DEFAULT` reads the file on first use, not when this module is imported.
    if name == "DEFAULT":
        return default()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
