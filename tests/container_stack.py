"""Kafka, PostgreSQL and Beacon's services as containers of the project's own images (`make image`), through
testcontainers' generic DockerContainer, for the container test and for BEACON_TEST_BACKEND=containers.

Containers use the host's network (the daemon here runs without a bridge), so each listens on a port of its
own on 127.0.0.1. Passwords are files in a state folder laid out as `make up` lays it out (secrets/kafka,
secrets/postgres), mounted read-only; the services run as uid 10001, so the folder is theirs. Ryuk (the
reaper testcontainers would pull) is off: no registry here; every container is stopped by its fixture.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

import docker
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

from beacon.deploy.local import credentials
from beacon.deploy.local import kafka as local_kafka
from beacon.deploy.local import postgres as local_postgres
from beacon.deploy.local.proc import StartError

UID = 10001  # the images' user
VERSION = "0.1.0"
IMAGES = {
    "beacon": f"beacon:{VERSION}",
    "kafka": f"beacon-kafka:{local_kafka.KAFKA_VERSION}",
    "postgres": "beacon-postgres:15",
}


class ContainersUnavailable(StartError):
    pass


def require_images() -> None:
    """A Docker daemon that answers and holds every image, or the reason and what to do."""
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        raise ContainersUnavailable(
            f"no Docker daemon answers ({type(exc).__name__}: {exc}); as root: "
            "dockerd --storage-driver=vfs --iptables=false --bridge=none &"
        ) from None
    missing = [tag for tag in IMAGES.values() if not client.images.list(name=tag)]
    if missing:
        raise ContainersUnavailable(f"images {', '.join(missing)} are missing: run `make image`")


def owned(path: Path) -> Path:
    """`path` and what is in it made the containers' user's (as root), mode 700/600 as before."""
    if os.geteuid() == 0:
        for folder, _, files in os.walk(path):
            os.chown(folder, UID, UID)
            for name in files:
                os.chown(Path(folder, name), UID, UID)
    return path


@dataclass
class Infra:
    """Kafka and PostgreSQL as containers, and the state folder holding their passwords."""

    state: Path
    kafka_port: int
    pg_port: int
    kafka: DockerContainer
    postgres: DockerContainer

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def admin_db_url(self, database: str = "postgres") -> str:
        password = local_postgres.superuser_password(self.state)
        return f"postgresql://{local_postgres.USER}:{password}@127.0.0.1:{self.pg_port}/{database}"

    def stop(self) -> None:
        for c in (self.kafka, self.postgres):
            c.stop()


def _node_secrets(state: Path) -> Path:
    """The three passwords a Kafka node itself needs, apart from every service's (least privilege)."""
    folder = state / "kafka-node"
    folder.mkdir(mode=0o700, exist_ok=True)
    for who in (local_kafka.ADMIN, local_kafka.BROKER, local_kafka.CONTROLLER):
        (folder / who).write_text(credentials.password(state, "kafka", who))
        (folder / who).chmod(0o600)
    return owned(folder)


def start_infra(state: Path, kafka_port: int, pg_port: int, timeout: float = 180) -> Infra:
    """Kafka (one KRaft node, SASL/SCRAM and ACLs) and PostgreSQL (scram-sha-256), each waited for until it
    says it is ready; the passwords made in `state` as `make up` makes them."""
    require_images()
    state.mkdir(parents=True, exist_ok=True)
    for who in (local_kafka.ADMIN, local_kafka.BROKER, local_kafka.CONTROLLER):
        credentials.password(state, "kafka", who)
    superuser = state / "postgres-superuser"
    superuser.mkdir(mode=0o700, exist_ok=True)
    (superuser / "password").write_text(local_postgres.superuser_password(state))
    (superuser / "password").chmod(0o600)
    kafka = (
        DockerContainer(IMAGES["kafka"])
        .with_kwargs(network_mode="host")
        .with_env("KAFKA_PORT", str(kafka_port))
        .with_env("KAFKA_CONTROLLER_PORT", str(kafka_port + 1))
        .with_volume_mapping(str(_node_secrets(state)), "/run/secrets/kafka", "ro")
        .waiting_for(LogMessageWaitStrategy("Kafka Server started").with_startup_timeout(int(timeout)))
    )
    postgres = (
        DockerContainer(IMAGES["postgres"])
        .with_kwargs(network_mode="host")
        .with_env("PGPORT", str(pg_port))
        .with_env("POSTGRES_USER", local_postgres.USER)
        .with_env("POSTGRES_PASSWORD_FILE", "/run/secrets/postgres/password")
        .with_volume_mapping(str(owned(superuser)), "/run/secrets/postgres", "ro")
        .waiting_for(
            LogMessageWaitStrategy("database system is ready to accept connections").with_startup_timeout(int(timeout))
        )
    )
    try:
        kafka.start()
        postgres.start()
    except Exception:
        why = f"containers did not start:\n{_logs_or_none(kafka)[-3000:]}\n{_logs_or_none(postgres)[-3000:]}"
        for c in (kafka, postgres):
            try:
                c.stop()
            except Exception:
                pass  # never started
        raise RuntimeError(why) from None
    return Infra(state, kafka_port, pg_port, kafka, postgres)


def _logs_or_none(container: DockerContainer) -> str:
    try:
        return logs(container)
    except Exception:
        return "(no container)"


def logs(container: DockerContainer) -> str:
    out, err = container.get_logs()
    return (out + err).decode(errors="replace")


def service(command: list[str], env: dict[str, str], mounts: dict[Path, str]) -> DockerContainer:
    """A Beacon service container as a user runs it: uid 10001, read-only root file system, a tmpfs for its
    state folder and /tmp, its secrets mounted read-only."""
    container = (
        DockerContainer(IMAGES["beacon"])
        .with_command(command)
        .with_kwargs(network_mode="host", read_only=True, stop_signal="SIGTERM")
    )
    # tmpfs mount options (with_tmpfs_mount takes a size only): the state folder is the service's alone.
    container.tmpfs.update({"/tmp": "mode=1777", "/var/lib/beacon": f"uid={UID},gid={UID},mode=700"})
    for name, value in env.items():
        container = container.with_env(name, value)
    for host, inside in mounts.items():
        container = container.with_volume_mapping(str(host), inside, "ro")
    return container


def wait_exited(container: DockerContainer, timeout: float = 30) -> int:
    """The container's exit code, once it has exited."""
    wrapped = container.get_wrapped_container()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        wrapped.reload()
        if wrapped.status == "exited":
            return int(wrapped.attrs["State"]["ExitCode"])
        time.sleep(0.2)
    raise AssertionError(f"container {wrapped.name} still {wrapped.status} after {timeout} s")
