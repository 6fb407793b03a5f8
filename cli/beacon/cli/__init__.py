"""The `beacon` command (beacon-cli), on top of everything: main.py (one subcommand per service and per user
tool), show.py and matrix.py (a job on screen), reading.py (the database or the reader's API), demo.py
(`beacon demo`) and examples/ (job specs and a catalogue, package data: `beacon example [NAME]`).

The one place pieces that may not import each other meet: `beacon reclassify --judge` hands the providers'
judge (beacon.providers.judge) to the recorder's reclassification. Nothing imports this package."""

from beacon.cli.main import main

__all__ = ["main"]
