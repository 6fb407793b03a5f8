"""`python -m beacon.deploy.local init`, sent wrong: it reads every password from BEACON_SECRETS_DIR and makes
none, so a missing or readable-by-others file stops it with the file's name before it connects anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _init(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BEACON_", "KAFKA_", "DATABASE_"))},
        "BEACON_STATE_DIR": str(tmp_path / "state"),
        "BEACON_SECRETS_DIR": str(tmp_path / "secrets"),
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",  # nothing listens: it must not get that far
        "DATABASE_URL": "postgresql://127.0.0.1:9/beacon",
        **env,
    }
    argv = [sys.executable, "-m", "beacon.deploy.local", "init", *args]
    return subprocess.run(argv, env=full, capture_output=True, text=True, timeout=60)


def test_init_without_the_admin_password_names_the_file_and_makes_none(tmp_path: Path) -> None:
    result = _init(tmp_path)
    assert result.returncode == 1
    assert f"BEACON_SECRETS_DIR: cannot read {tmp_path / 'secrets' / 'kafka' / 'admin'}" in result.stderr
    assert not (tmp_path / "secrets").exists() and not (tmp_path / "state").exists()


def test_init_refuses_a_password_file_others_may_read(tmp_path: Path) -> None:
    admin = tmp_path / "secrets" / "kafka" / "admin"
    admin.parent.mkdir(parents=True)
    admin.write_text("hunter2")
    admin.chmod(0o644)
    result = _init(tmp_path, "--region", "us-east")
    assert result.returncode == 1
    assert f"{admin} may be read by others" in result.stderr and "chmod 600" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_init_refuses_an_unknown_topology(tmp_path: Path) -> None:
    admin = tmp_path / "secrets" / "kafka" / "admin"
    admin.parent.mkdir(parents=True)
    admin.write_text("x")
    admin.chmod(0o600)
    (tmp_path / "secrets" / "postgres").mkdir()
    result = _init(tmp_path, BEACON_TOPOLOGY="mesh")
    assert result.returncode == 1
    # The database comes first, so its superuser's password is what it asks for before the topology matters.
    assert "postgres/admin" in result.stderr or "TOPOLOGY=mesh" in result.stderr
