"""The benchmark harness at tiny sizes, so it cannot rot. It measures nothing: the figures are noise."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from beacon.infra.settings import Settings
from tests.paths import REPO_ROOT
from tests.support import service_env

pytestmark = pytest.mark.pipeline


def test_bench_smoke_run_writes_every_section(settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--out", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=300,
        env=service_env(settings),
    )
    assert result.returncode == 0, result.stdout.decode()[-2000:] + result.stderr.decode()[-2000:]
    results = json.loads(out.read_text())
    steps = {"recorder", "replay", "runner", "makespan", "post_jobs", "latency", "scaling", "regions", "api"}
    assert steps | {"machine", "read_load", "growth"} <= results.keys()
    assert (tmp_path / "results.png").read_bytes()[:4] == b"\x89PNG"  # the plot beside the figures
    assert results["machine"]["cores"] >= 1
    assert results["scaling"]["rows_exact"] is True
    assert "target end-to-end p99 ms" in result.stdout.decode()
