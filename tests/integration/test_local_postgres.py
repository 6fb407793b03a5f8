"""`make up`'s PostgreSQL on a real server: a checkout deleted without `make clean` and cloned again at the
same path finds a cluster locked by passwords it no longer has (as root the cluster lives outside the clone,
under /var/lib/beacon). It starts afresh with its own passwords, and the old data is moved aside, not lost."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import psycopg
import pytest

from beacon.deploy.local import postgres as local_postgres
from tests.faults.support import free_port_block


def test_a_clone_at_the_place_of_a_deleted_one_starts_afresh_and_keeps_the_old_data_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BEACON_PG_PORT", str(free_port_block(1)))
    state = tmp_path / "clone" / ".beacon"
    state.mkdir(parents=True)
    first = local_postgres.PostgresCluster(state)
    first.start()
    try:
        with psycopg.connect(local_postgres.admin_url(state)) as conn:
            conn.execute("CREATE TABLE kept (n int)")
        old_password = local_postgres.superuser_password(state)
    finally:
        first.stop()
    shutil.rmtree(tmp_path / "clone")  # deleted without `make clean`: the cluster outside stays, as root

    state.mkdir(parents=True)  # cloned again at the same path
    second = local_postgres.PostgresCluster(state)
    try:
        second.start()
        assert local_postgres.superuser_password(state) != old_password
        with psycopg.connect(local_postgres.admin_url(state)) as conn:
            assert conn.execute("SELECT to_regclass('kept')").fetchone() == (None,)  # a new cluster
        if os.geteuid() == 0:
            aside = second.home.with_name(second.home.name + ".orphaned")
            assert (aside / "data" / "PG_VERSION").exists()
            out = capsys.readouterr().out
            assert f"was moved to {aside}" in out and f"rm -rf {aside}" in out
    finally:
        second.stop()
        second.remove_outside()
        if os.geteuid() == 0:
            shutil.rmtree(second.home.with_name(second.home.name + ".orphaned"), ignore_errors=True)
