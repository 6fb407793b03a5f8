"""Every setting in one place, read from the environment.

`make up` writes `.beacon/env` with KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL; when those variables are
not set, they are read from that file, so `beacon …` works right after `make up` without sourcing it.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from beacon.domain.catalogue import Catalogue
from beacon.schemas.topics import Groups, Topics

# BEACON_TOPIC_NAMESPACE's default: the prefix of every topic and consumer group.
DEFAULT_NAMESPACE = "beacon"


def state_dir() -> Path:
    """Where `make up` keeps what it starts: BEACON_STATE_DIR, else the nearest `.beacon/` at or above the
    working folder (so `beacon …` works from anywhere in a checkout), else `./.beacon`."""
    if os.environ.get("BEACON_STATE_DIR"):
        return Path(os.environ["BEACON_STATE_DIR"])
    here = Path.cwd()
    for folder in (here, *here.parents):
        if (folder / ".beacon").is_dir():
            return folder / ".beacon"
    return here / ".beacon"


def _env_file_values() -> dict[str, str]:
    path = state_dir() / "env"
    if not path.exists():
        return {}
    values = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            values[name.strip()] = value.strip()
    return values


class SettingsError(ValueError):
    pass


def _int(env: dict[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise SettingsError(f"{name}={value} must be at least {minimum}")
    return value


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str
    database_url: str
    # Prefix of every topic name; tests use their own so they never see each other's events.
    topic_namespace: str
    topic_partitions: int
    replication_factor: int
    default_deadline_seconds: int
    runner_concurrency: int
    simulated_latency_ms: int
    # TOML routing of (region, model) to providers; None: everything goes to `simulated`.
    routing_file: Path | None
    recorder_batch_size: int
    deadline_sweep_seconds: int
    # The reader's read API and portal (`beacon reader`); port 0 turns them off.
    http_host: str
    http_port: int
    # The recorder's /metrics and /health (on http_host); port 0 turns them off.
    recorder_port: int
    recorder_batch_wait_ms: int
    log_format: str
    # How long a command (beacon submit, status, dlq, replay) waits for an unavailable Kafka cluster.
    kafka_wait_seconds: int
    # How long the recorder holds a result whose JobSubmitted it has not read (the topics are not ordered with
    # each other) before it dead-letters it as "job never arrived".
    orphan_wait_seconds: int = 600
    # The catalogue of questions, models and regions; None: the default (beacon.domain's catalogue.toml).
    catalogue_file: Path | None = None
    # A second recorder group projects the whole log again (e.g. to measure a replay); None: the usual one.
    recorder_group: str | None = None
    # Where `beacon status`/`matrix` read from when given no database: a reader's base URL.
    api_url: str | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = {**_env_file_values(), **(os.environ if environ is None else environ)}
        log_format = env.get("BEACON_LOG_FORMAT", "json")
        if log_format not in ("json", "console"):
            raise SettingsError(f"BEACON_LOG_FORMAT={log_format!r}: use 'json' or 'console'")
        return cls(
            kafka_bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092"),
            database_url=env.get("DATABASE_URL", "postgresql://beacon@127.0.0.1:15432/beacon"),
            topic_namespace=env.get("BEACON_TOPIC_NAMESPACE", DEFAULT_NAMESPACE),
            topic_partitions=_int(env, "BEACON_TOPIC_PARTITIONS", 6, 1),
            replication_factor=_int(env, "BEACON_REPLICATION_FACTOR", 1, 1),
            default_deadline_seconds=_int(env, "BEACON_DEFAULT_DEADLINE_SECONDS", 3600, 1),
            runner_concurrency=_int(env, "BEACON_RUNNER_CONCURRENCY", 8, 1),
            simulated_latency_ms=_int(env, "BEACON_SIMULATED_LATENCY_MS", 0),
            routing_file=Path(env["BEACON_ROUTING_FILE"]) if env.get("BEACON_ROUTING_FILE") else None,
            recorder_batch_size=_int(env, "BEACON_RECORDER_BATCH_SIZE", 2000, 1),
            deadline_sweep_seconds=_int(env, "BEACON_DEADLINE_SWEEP_SECONDS", 5, 1),
            http_host=env.get("BEACON_HTTP_HOST", "127.0.0.1"),
            http_port=_int(env, "BEACON_HTTP_PORT", 8080),
            recorder_port=_int(env, "BEACON_RECORDER_PORT", 8082),
            recorder_batch_wait_ms=_int(env, "BEACON_RECORDER_BATCH_WAIT_MS", 200, 1),
            log_format=log_format,
            kafka_wait_seconds=_int(env, "BEACON_KAFKA_WAIT_SECONDS", 60),
            orphan_wait_seconds=_int(env, "BEACON_ORPHAN_WAIT_SECONDS", 600, 1),
            recorder_group=env.get("BEACON_RECORDER_GROUP") or None,
            catalogue_file=Path(env["BEACON_CATALOGUE_FILE"]) if env.get("BEACON_CATALOGUE_FILE") else None,
            api_url=env.get("BEACON_API_URL") or None,
        )

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_namespace)

    @property
    def groups(self) -> Groups:
        return Groups(self.topic_namespace, self.recorder_group)

    @property
    def catalogue(self) -> Catalogue:
        """The active catalogue, read once per file (raises CatalogueError, naming line and field)."""
        return _catalogue(self.catalogue_file)


@functools.cache
def _catalogue(path: Path | None) -> Catalogue:
    from beacon.infra import catalogues  # reads the default only when a catalogue is first asked for

    return catalogues.default() if path is None else catalogues.load(path)
