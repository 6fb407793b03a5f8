"""The installed distribution claims one import name, `beacon` (issue 13): schemas/, services/ and deploy/
are mapped under it, so a wheel of Beacon installs next to an unrelated package called `schemas`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IGNORED = (
    ".git",
    ".venv",
    ".beacon",
    "build",
    "*.egg-info",
    "test-artifacts",
    "__pycache__",
    ".*_cache",
    "node_modules",
)
SOURCE_FOLDERS = {
    "beacon": "beacon",
    "schemas": "beacon/schemas",
    "services": "beacon/services",
    "deploy": "beacon/deploy",
}


def test_the_wheel_holds_only_beacon_and_every_source_file(tmp_path: Path) -> None:
    # Built from a copy: pip builds in the source tree and would leave build/ and *.egg-info behind.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*IGNORED))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
        timeout=240,
    )
    (wheel,) = tmp_path.glob("beacon-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"beacon", next(n.split("/")[0] for n in names if ".dist-info/" in n)}
    expected = {
        f"{installed}/{path.relative_to(ROOT / folder).as_posix()}"
        for folder, installed in SOURCE_FOLDERS.items()
        for path in (ROOT / folder).rglob("*")
        if path.suffix in (".py", ".json", ".yaml", ".html")
        or (path.name == "catalogue.toml" and "__pycache__" not in path.parts)
    }
    assert expected - set(names) == set()  # a new module or data file is never left out of the wheel

    # Installed beside a package that really is called `schemas`, both import, each its own.
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=240,
    )
    (site / "schemas").mkdir()
    (site / "schemas" / "__init__.py").write_text("WHO = 'somebody else'\n")
    probe = (
        "import schemas, beacon.schemas.events, beacon.reader.api, beacon.cli.main;"
        "print(schemas.WHO, beacon.schemas.events.__file__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,  # not the repository: the import must come from the installed wheel
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert out.startswith("somebody else ") and str(site / "beacon" / "schemas" / "events.py") in out
