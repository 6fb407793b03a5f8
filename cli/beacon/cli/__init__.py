"""The entrypoints on top of everything: `beacon <command>` (main.py), the demo, reading results from the
database or the read API, and the tools that combine services (reclassify). Nothing below imports this."""

from beacon.cli.main import main

__all__ = ["main"]
