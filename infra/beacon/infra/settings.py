"""Every setting in one place, read from the environment.

`make up` writes `.beacon/env` with KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL; when those variables are
not set, they are read from that file, so `beacon …` works right after `make up` without sourcing it.

Credentials: each service acts as its own Kafka principal and PostgreSQL role (`Settings.acting_as`). An
explicit BEACON_KAFKA_USERNAME / BEACON_KAFKA_PASSWORD(_FILE), or a DATABASE_URL that names a user, is used
as given; otherwise the service's own password is read from the mode-600 file `make up` wrote for it under
BEACON_SECRETS_DIR (default `.beacon/secrets`): `kafka/<principal>` and `postgres/<role>`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

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


# How clients authenticate to Kafka: SASL/SCRAM-SHA-512 (what `make up` starts), or — only for a cluster of
# your own that has no authentication — PLAINTEXT, which every service then warns about at start.
KAFKA_SECURITY = ("sasl", "plaintext")
# PostgreSQL roles are named beacon_<role> (beacon.deploy.local.postgres creates them; README lists them).
DB_ROLE_PREFIX = "beacon_"
# The names a loopback HTTP service answers to (the Host header), and the addresses that count as loopback.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def read_secret(path: Path, setting: str) -> str:
    """A password from a file of its owner's alone; a file others may read is refused (it leaked already)."""
    try:
        mode = path.stat().st_mode & 0o077
        text = path.read_text().strip()
    except OSError as exc:
        raise SettingsError(f"{setting}: cannot read {path}: {exc.strerror}") from None
    if mode:
        raise SettingsError(f"{setting}: {path} may be read by others (mode {oct(mode)}); chmod 600 {path}")
    if not text:
        raise SettingsError(f"{setting}: {path} is empty")
    return text


def url_user(url: str) -> str | None:
    """The user a postgresql:// URL names, if any."""
    rest = url.partition("://")[2]
    creds, at, _ = rest.rpartition("@")
    return creds.split(":", 1)[0] or None if at else None


def with_credentials(url: str, user: str, password: str) -> str:
    scheme, _, rest = url.partition("://")
    host = rest.rpartition("@")[2]
    return f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{host}"


def without_credentials(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


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
    database_url: str = dataclasses.field(repr=False)  # it may hold a password
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
    # "sasl" (SCRAM-SHA-512) or "plaintext"; the principal and its password (never printed: repr=False).
    kafka_security: str = "sasl"
    kafka_username: str | None = None
    kafka_password: str | None = dataclasses.field(default=None, repr=False)
    # Where the credentials came from, for messages (a setting's name or a file), never the secret itself.
    kafka_credentials_from: str = "nowhere: set BEACON_KAFKA_USERNAME and BEACON_KAFKA_PASSWORD(_FILE)"
    # The mode-700 folder of the password files `make up` writes (kafka/<principal>, postgres/<role>).
    secrets_dir: Path = Path(".beacon/secrets")
    # The signing keys (beacon.infra.keys): trusted.json, and the private keys of this machine's services.
    keys_dir: Path = Path(".beacon/keys")
    # The host names the HTTP services answer to (Host header, and the Origin of a browser's request):
    # anything else is refused, which stops DNS rebinding and cross-site pages.
    allowed_hosts: tuple[str, ...] = LOOPBACK_NAMES
    # Whether the read API asks for an API token: "token", "open", or "auto" (open only when it listens
    # on a loopback address, as the demo does).
    read_auth: str = "auto"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = {**_env_file_values(), **(os.environ if environ is None else environ)}
        log_format = env.get("BEACON_LOG_FORMAT", "json")
        if log_format not in ("json", "console"):
            raise SettingsError(f"BEACON_LOG_FORMAT={log_format!r}: use 'json' or 'console'")
        return cls(
            kafka_bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092"),
            database_url=env.get("DATABASE_URL", "postgresql://127.0.0.1:15432/beacon"),
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
            **_kafka_credentials(env),
            secrets_dir=Path(env["BEACON_SECRETS_DIR"]) if env.get("BEACON_SECRETS_DIR") else state_dir() / "secrets",
            keys_dir=Path(env["BEACON_KEYS_DIR"]) if env.get("BEACON_KEYS_DIR") else state_dir() / "keys",
            allowed_hosts=_hosts(env),
            read_auth=_choice(env, "BEACON_READ_AUTH", "auto", ("auto", "token", "open")),
        )

    @property
    def read_needs_token(self) -> bool:
        if self.read_auth == "auto":
            return self.http_host not in LOOPBACK_NAMES
        return self.read_auth == "token"

    def acting_as(self, kafka_principal: str | None = None, db_role: str | None = None) -> Settings:
        """These settings for one service: its own Kafka principal and PostgreSQL role, unless the
        environment names credentials explicitly (a user's deployment gives each service its own)."""
        changes: dict[str, object] = {}
        if kafka_principal and self.kafka_username is None:
            path = self.secrets_dir / "kafka" / kafka_principal
            if path.exists():
                changes.update(
                    kafka_username=kafka_principal,
                    kafka_password=read_secret(path, "BEACON_SECRETS_DIR"),
                    kafka_credentials_from=f"{path} (BEACON_SECRETS_DIR; or set BEACON_KAFKA_PASSWORD)",
                )
        if db_role and url_user(self.database_url) is None:
            path = self.secrets_dir / "postgres" / db_role
            if path.exists():
                password = read_secret(path, "BEACON_SECRETS_DIR")
                changes["database_url"] = with_credentials(self.database_url, DB_ROLE_PREFIX + db_role, password)
        return dataclasses.replace(self, **changes) if changes else self

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


def _choice(env: dict[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = env.get(name) or default
    if value not in allowed:
        raise SettingsError(f"{name}={value!r}: use one of {', '.join(allowed)}")
    return value


def _hosts(env: dict[str, str]) -> tuple[str, ...]:
    """BEACON_ALLOWED_HOSTS (comma-separated names or addresses, no ports), or the loopback names and the
    address the read API listens on when that is a specific one."""
    raw = env.get("BEACON_ALLOWED_HOSTS")
    if raw is None or not raw.strip():
        bound = env.get("BEACON_HTTP_HOST", "127.0.0.1")
        extra = () if bound in ("0.0.0.0", "::", "") or bound in LOOPBACK_NAMES else (bound.lower(),)
        return LOOPBACK_NAMES + extra
    names = tuple(h.strip().lower().strip("[]") for h in raw.split(",") if h.strip())
    bad = [h for h in names if not re.fullmatch(r"[a-z0-9.:-]{1,253}", h) or h.startswith(".")]
    if bad:
        raise SettingsError(
            f"BEACON_ALLOWED_HOSTS: {bad[0]!r} is not a host name or address (comma-separated, without ports)"
        )
    return names


def _kafka_credentials(env: dict[str, str]) -> dict[str, object]:
    security = env.get("BEACON_KAFKA_SECURITY", "sasl").lower()
    if security not in KAFKA_SECURITY:
        raise SettingsError(f"BEACON_KAFKA_SECURITY={security!r}: use 'sasl' (SCRAM-SHA-512) or 'plaintext'")
    out: dict[str, object] = {"kafka_security": security}
    user = env.get("BEACON_KAFKA_USERNAME") or None
    if user is None:
        return out
    if env.get("BEACON_KAFKA_PASSWORD"):
        password, source = env["BEACON_KAFKA_PASSWORD"], "BEACON_KAFKA_PASSWORD"
    elif env.get("BEACON_KAFKA_PASSWORD_FILE"):
        source = f"BEACON_KAFKA_PASSWORD_FILE={env['BEACON_KAFKA_PASSWORD_FILE']}"
        password = read_secret(Path(env["BEACON_KAFKA_PASSWORD_FILE"]), "BEACON_KAFKA_PASSWORD_FILE")
    else:
        raise SettingsError(
            f"BEACON_KAFKA_USERNAME={user!r} needs a password: set BEACON_KAFKA_PASSWORD_FILE (a mode-600 file) "
            "or BEACON_KAFKA_PASSWORD"
        )
    return out | {"kafka_username": user, "kafka_password": password, "kafka_credentials_from": source}


@functools.cache
def _catalogue(path: Path | None) -> Catalogue:
    from beacon.infra import catalogues  # reads the default only when a catalogue is first asked for

    return catalogues.default() if path is None else catalogues.load(path)
