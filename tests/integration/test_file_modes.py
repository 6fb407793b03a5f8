"""Issue 20, point 12: what the local deployment writes is its owner's alone. `.beacon/env` (it may hold a
DATABASE_URL with a password) is 600 in a 700 folder, written so by `make up`; the Kafka started for these
tests keeps its log segments (every prompt and answer) 600; the services' logs are 600."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from beacon.deploy.local import kafka as local_kafka
from beacon.infra.settings import state_dir
from tests.support import Infra

pytestmark = pytest.mark.pipeline


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_make_up_writes_its_env_file_600_in_a_700_folder(infra: Infra, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    (state / "env").write_text("old\n")
    os.chmod(state / "env", 0o644)  # what an earlier version left: made private again
    env = {
        **os.environ,
        "BEACON_STATE_DIR": str(state),
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka,  # the session's servers: `up` starts nothing, only writes env
        "DATABASE_URL": infra.admin_db_url,
        **infra.kafka_admin_env(),  # a cluster of the user's own: `up` checks it as the principal they name
    }
    subprocess.run([sys.executable, "-m", "beacon.deploy.local", "up"], env=env, check=True, timeout=120,
                   capture_output=True)  # fmt: skip
    assert mode(state) == 0o700
    assert mode(state / "env") == 0o600
    assert (state / "env").read_text().startswith(f"KAFKA_BOOTSTRAP_SERVERS={infra.kafka}\n")


def test_the_local_kafkas_log_segments_and_the_logs_are_private(infra: Infra) -> None:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.fail("this test checks the Kafka that `make up` starts; unset KAFKA_BOOTSTRAP_SERVERS", pytrace=False)
    cluster = local_kafka.KafkaCluster(state_dir(), local_kafka.brokers())
    segments = [p for p in cluster.home.glob("node-*/data/*/*.log") if p.is_file()]
    assert segments, f"no log segments under {cluster.home}"
    assert {p: oct(mode(p)) for p in segments if mode(p) & 0o077} == {}
    logs = [p for p in (state_dir() / "logs").glob("*.log") if p.stat().st_uid == os.geteuid()]
    assert {p: oct(mode(p)) for p in logs if mode(p) & 0o077} == {}
