"""The benchmark's plot from a results document of the shape `make bench` writes (figures made up: this
checks the drawing, not a measurement), and its size arguments refused with a message when wrong."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bench import plot
from bench.run import sizes

RESULTS = {
    "machine": {"cores": 2, "memory_gib": 24.0, "python": "3.11.7", "kafka": "4.4.0"},
    "growth": {
        "recorder": [
            {
                "events": n,
                "per_s": 9000.0 - n / 1000,
                "peak_rss_mib": 120.0,
                "replay_s": n / 5000,
                "replay_s_per_million": 200.0,
            }
            for n in (10_000, 100_000, 1_000_000)
        ],
        "reads": [
            {"cells": c, "bytes": c * 80, "first_ms": c / 100, "p50_ms": 2.0, "p99_ms": 4.0, "revalidate_p50_ms": 1.0}
            for c in (1_000, 10_000, 100_000)
        ],
    },
    "regions": {"per_second": 200, "direct_p50_ms": 10, "direct_p99_ms": 14, "hop_p50_ms": 15, "hop_p99_ms": 26},
}


def test_the_plot_is_a_png_of_every_panel(tmp_path: Path) -> None:
    out = tmp_path / "results.png"
    plot.draw(RESULTS, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 20_000  # four panels of lines and bars, not an empty canvas


def test_without_the_regional_step_the_plot_still_draws(tmp_path: Path) -> None:
    out = tmp_path / "results.png"
    plot.draw({k: v for k, v in RESULTS.items() if k != "regions"}, out)
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_sizes_are_whole_numbers_separated_by_commas() -> None:
    assert sizes("10000,100000") == [10_000, 100_000]
    for wrong, said in [("10k", "whole numbers"), ("0,5", "at least 1"), ("", "whole numbers")]:
        with pytest.raises(argparse.ArgumentTypeError, match=said):
            sizes(wrong)
