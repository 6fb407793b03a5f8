"""The portal in a real browser (Debian's chromium, driven by Playwright) on a finished 8 × 3 × 3 job:
72 cells with the right classes, a refused cell's answer on click, a filter, and a screenshot."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest

from beacon.infra.settings import Settings
from beacon.providers.simulated import DEFLECTION
from tests.harness import Services, wait_for_rows
from tests.paths import EXAMPLES, REPO_ROOT
from tests.support import beacon

pytestmark = pytest.mark.pipeline

ARTIFACTS = REPO_ROOT / "test-artifacts"
# Chromium's own flags for a closed network: no background fetches, no component updates.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "the portal test needs Debian's chromium: apt-get install chromium (.ci/run installs it)", pytrace=False
        )
    return path


def test_portal_grid_click_filter_screenshot(settings: Settings, pipeline: Services, api_port: int) -> None:
    from playwright.sync_api import sync_playwright

    spec = {
        **json.loads((EXAMPLES / "full-matrix.json").read_text()),
        "job_id": f"ui-{uuid.uuid4().hex[:8]}",
    }
    assert beacon(settings, "submit", "-", stdin=json.dumps(spec).encode()).returncode == 0
    assert wait_for_rows(settings, pipeline, spec["job_id"], 72) == 72

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(f"http://127.0.0.1:{api_port}/ui/jobs/{spec['job_id']}")
        page.wait_for_selector("body[data-job-done=yes]", timeout=15000)

        cells = page.locator("td.cell")
        assert cells.count() == 72
        assert page.locator("td.cell.refused").count() == 13
        assert page.locator("td.cell.answered").count() == 59
        assert "72/72 recorded" in page.locator("#progress-text").inner_text()
        # each region asks in its one language: shown in its columns' heads and the progress line
        assert page.locator("#grid tr").first.locator("th").nth(1).inner_text().split("\n")[-1] == "US · en"
        assert "languages us-east en, eu-west en, asia-pacific en" in page.locator("#progress-text").inner_text()

        page.locator('td.cell[data-q="tiananmen_neutral"][data-m="qwen2.5-1.5b"][data-r="asia-pacific"]').click()
        page.wait_for_selector("#detail .answer")
        detail = page.locator("#detail").inner_text()
        assert DEFLECTION in detail and "simulated model" in detail and "prompt_sha256" in detail
        assert "tiananmen_neutral · qwen2.5-1.5b · asia-pacific · asked in en" in detail

        page.select_option("#f-region", "asia-pacific")
        assert page.locator("td.cell").count() == 24  # 8 questions × 3 models in one region
        assert page.locator("td.cell.refused").count() == 7
        page.select_option("#f-label", "refused")
        assert page.locator("td.cell.answered").count() == 0

        page.select_option("#f-region", "")
        page.select_option("#f-label", "")
        shot = ARTIFACTS / "portal-job.png"
        page.screenshot(path=str(shot), full_page=True)
        assert Path(shot).stat().st_size > 10_000
        browser.close()
