"""`python -m beacon.deploy.local up|down|status|clean|init` — what `make up`, `make down` and `make clean` run,
and (init) the grants of `make up` on servers of yours, for a container's one-shot job.

up starts PostgreSQL and Kafka (each only if not already running, and only if DATABASE_URL /
KAFKA_BOOTSTRAP_SERVERS do not already name a server of yours), waits until both answer, gives every
service its own Kafka principal with its ACLs and its own PostgreSQL role (passwords in mode-600 files under
`.beacon/secrets/`), migrates the database as its owner, and writes `.beacon/env` with the sourceable lines
the services and tests read (addresses only: no secret). clean deletes what lives outside
`.beacon/` (as root, PostgreSQL's cluster); `make clean` then deletes `.beacon/`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import psycopg

from beacon.deploy.local import access, credentials, kafka, mirror, postgres, regions, services
from beacon.deploy.local.proc import PRIVATE_UMASK, StartError, private_file, read_pid
from beacon.infra import db, keys, logs
from beacon.infra.settings import (
    DB_ROLE_PREFIX,
    Settings,
    SettingsError,
    read_secret,
    state_dir,
    with_credentials,
    without_credentials,
)
from beacon.schemas.topics import Principals


def admin_settings(state: Path, servers: str, replication_factor: int, **env: str) -> Settings:
    """Settings of the Kafka admin principal on the local cluster (ACLs, topics, readiness; tests too)."""
    return Settings.from_env(
        {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": servers,
            "BEACON_REPLICATION_FACTOR": str(replication_factor),
            "BEACON_KAFKA_USERNAME": Principals.ADMIN,
            "BEACON_KAFKA_PASSWORD": credentials.password(state, "kafka", Principals.ADMIN),
            **env,
        }
    )


def grant_services(state: Path, admin: Settings, regions: list[str] | None = None) -> None:
    """Every service principal of the namespace of `admin` (the catalogue's regions, unless given): its
    password, its ACLs, its topics, its signing key."""
    regions = list(admin.catalogue.regions) if regions is None else regions
    passwords = {p: credentials.password(state, "kafka", p) for p in access.principals(regions)}
    access.grant(admin, passwords, regions)
    keys.ensure(admin.keys_dir, keys.bindings(regions))  # and each service's signing key


def make_private(state: Path) -> None:
    """The state folder and what an earlier `make up` left in it: folders 700, files 600 (symlinks, and what
    they point to, are left alone: PostgreSQL's cluster outside the clone is the postgres user's)."""
    state.chmod(0o700)
    for folder, dirs, files in os.walk(state):
        for name in dirs + files:
            path = Path(folder, name)
            try:
                if not path.is_symlink() and path.stat().st_uid == os.geteuid():
                    path.chmod(0o700 if path.is_dir() else 0o600)
            except FileNotFoundError:  # a running Kafka deletes old segments as it goes
                continue


def topology() -> str:
    name = os.environ.get("BEACON_TOPOLOGY") or "single"
    if name not in ("single", "regions"):
        raise StartError(f"TOPOLOGY={name}: use single (the default: one Kafka cluster) or regions")
    return name


def up_regions(state: Path, admin: Settings) -> None:
    """The regional topology around the central cluster: a cluster per region, then principals, ACLs, topics
    and keys on every cluster, then one MirrorMaker link per region."""
    names = list(admin.catalogue.regions)
    topo = regions.Topology(state, admin, regions.ports(kafka.port(), names))
    began = time.monotonic()
    topo.start_clusters()
    print(
        f"Kafka per region: {', '.join(f'{r} on {topo[r].cluster.bootstrap}' for r in names)}"
        f" ({time.monotonic() - began:.1f} s)"
    )
    topo.grant()
    topo.write_env()
    print(
        "  ACLs: submitter, recorder and mirror-<region> centrally; runner-<region> and mirror-<region> on each "
        f"region's cluster; each runner's key in its region's folder ({topo.home}/<region>/keys)"
    )
    began = time.monotonic()
    topo.start_links()
    (state / regions.MARKER).write_text("regions\n")
    print(
        f"MirrorMaker {mirror.MIRROR_VERSION}: one link per region, jobs out, results and expansions back "
        f"({time.monotonic() - began:.1f} s); logs in {topo.home}/<region>/logs"
    )


def up() -> None:
    logs.configure("console", level=logging.WARNING, library_level=logging.ERROR)  # its own lines say it all
    os.umask(PRIVATE_UMASK)  # every file this process and its children create is the owner's alone
    state = state_dir()
    state.mkdir(parents=True, exist_ok=True)
    make_private(state)
    began = time.monotonic()

    db_url = os.environ.get("DATABASE_URL")
    if db_url:
        print(f"PostgreSQL: using DATABASE_URL from the environment ({db_url.split('@')[-1]})")
    else:
        cluster = postgres.PostgresCluster(state)
        was_running = cluster.running()
        cluster.start()
        db_url = postgres.url()
        applied = db.migrate(postgres.role_url(state, "migrator"))
        print(
            f"PostgreSQL: {'already running' if was_running else 'started'} on 127.0.0.1:{postgres.port()}, "
            f"scram-sha-256, roles {', '.join(postgres.ROLES)} (beacon_*); "
            f"{'migrated: ' + ', '.join(applied) if applied else 'schema up to date'}"
        )
        if cluster.outside:
            print(
                f"  as root, it runs as postgres: data, sockets and log in {cluster.home} (owned by postgres; "
                f"{cluster.link} points there, `make clean` deletes it)"
            )

    local = Settings.from_env()
    regional = topology() == "regions"
    made = keys.ensure(local.keys_dir, keys.bindings([] if regional else local.catalogue.regions))
    print(
        f"Signing keys: {'made ' + ', '.join(k.binding() for k in made) if made else 'one live key per service'} in "
        f"{local.keys_dir} (trusted.json; private/ mode 600)"
    )
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    extra = ""
    if servers and regional:
        raise StartError("TOPOLOGY=regions starts its own clusters: unset KAFKA_BOOTSTRAP_SERVERS")
    if servers:
        print(f"Kafka: using KAFKA_BOOTSTRAP_SERVERS from the environment ({servers}); its ACLs are yours to set")
        from beacon.infra import kafka as clients

        if not kafka.metadata_ok(servers, clients.security(Settings.from_env())):
            raise StartError(f"Kafka at {servers} does not answer a metadata request")
    else:
        cluster = kafka.KafkaCluster(state, kafka.brokers())
        other = kafka.KafkaCluster(state, 4 - cluster.nodes)  # the 1-node and 3-node layouts share ports
        if other.running_nodes():
            raise StartError(f"a {other.nodes}-node Kafka from an earlier `make up` is running; `make down` first")
        if regional and cluster.nodes != 1:
            raise StartError("TOPOLOGY=regions runs one node per cluster: leave BROKERS unset")
        if not regional and regions.is_up(state):
            raise StartError(
                "the regional topology from an earlier `make up TOPOLOGY=regions` is running; `make down` first"
            )
        was_running = cluster.running()
        seconds = cluster.start()
        servers = cluster.bootstrap
        how = "already running" if was_running else f"started in {seconds:.1f} s"
        granted = time.monotonic()
        admin = admin_settings(state, servers, cluster.replication_factor)
        if regional:
            print(f"Kafka {kafka.KAFKA_VERSION} (KRaft, central): {how} on {servers}; SASL/SCRAM-SHA-512")
            up_regions(state, admin)
        else:
            grant_services(state, admin)
            print(
                f"Kafka {kafka.KAFKA_VERSION} (KRaft, {cluster.nodes} node{'s' * (cluster.nodes > 1)}): {how} on "
                f"{servers}; SASL/SCRAM-SHA-512, ACLs for "
                f"{', '.join(access.principals(Settings.from_env().catalogue.regions))}"
                f" ({time.monotonic() - granted:.1f} s)"
            )
        extra = f"BEACON_REPLICATION_FACTOR={cluster.replication_factor}\n"

    print(f"  passwords: {state / 'secrets'} (one mode-600 file per principal and role)")
    env = f"KAFKA_BOOTSTRAP_SERVERS={servers}\nDATABASE_URL={db_url}\n{extra}"
    fd = private_file(state / "env")  # it may hold a DATABASE_URL with a password
    try:
        os.ftruncate(fd, 0)
        os.write(fd, env.encode())
    finally:
        os.close(fd)
    print(f"Ready in {time.monotonic() - began:.1f} s; wrote {state / 'env'} (source it, or let `beacon` read it).")


def regional(state: Path) -> regions.Topology:
    """The regional topology of the state folder, as `make up TOPOLOGY=regions` laid it out."""
    names = sorted(p.name for p in (state / "regions").iterdir() if p.is_dir()) if (state / "regions").exists() else []
    admin = Settings.from_env()
    return regions.Topology(
        state, admin, regions.ports(kafka.port(), [r for r in admin.catalogue.regions if r in names])
    )


def down() -> None:
    state = state_dir()
    stopped = services.stop_all(state)
    if stopped:
        print(f"Stopped Beacon services: {', '.join(stopped)}")
    if regions.is_up(state) or (state / "regions").exists():
        stopped_regions = regional(state).stop()
        (state / regions.MARKER).unlink(missing_ok=True)
        if stopped_regions:
            print(f"Regional topology: stopped {', '.join(stopped_regions)}")
    stopped_kafka = [kafka.KafkaCluster(state, n).stop() for n in (1, 3)]
    print("Kafka: stopped" if any(stopped_kafka) else "Kafka: was not running")
    print("PostgreSQL: stopped" if postgres.PostgresCluster(state).stop() else "PostgreSQL: was not running")


def status() -> None:
    state = state_dir()
    for cluster in (kafka.KafkaCluster(state, 1), kafka.KafkaCluster(state, 3)):
        for node in range(1, cluster.nodes + 1):
            pid = read_pid(cluster.pidfile(node))
            if pid:
                with open(f"/proc/{pid}/status") as f:
                    rss_kib = next((int(line.split()[1]) for line in f if line.startswith("VmRSS")), 0)
                print(
                    f"Kafka node {node}/{cluster.nodes}: running on 127.0.0.1:{cluster.broker_port(node)}, "
                    f"pid {pid}, resident memory {rss_kib / 1024:.0f} MiB"
                )
    if regions.is_up(state):
        for name, r in regional(state).regions.items():
            print(
                f"Region {name}: Kafka "
                f"{'running on ' + r.cluster.bootstrap if r.cluster.running() else 'not running'}, "
                f"link {'running' if r.link.running() else 'not running'}"
            )
    print(f"PostgreSQL: {'running' if postgres.PostgresCluster(state).running() else 'not running'}")
    for name in services.service_commands(state):
        spid = read_pid(state / "run" / f"{name}.pid")
        print(f"{name}: {'running, pid ' + str(spid) if spid else 'not running'}")


def init(region: str | None) -> None:
    """`make up`'s grants on servers of yours (a container's one-shot `init`; deploy/compose, deploy/k8s), as the
    Kafka admin and the PostgreSQL superuser, every password read from BEACON_SECRETS_DIR (kafka/<principal>,
    postgres/<role>, postgres/admin: the superuser's; none is made here: the folder may be read-only).
    Idempotent. With --region, that region's own cluster in the regional topology: its runner's and its
    link's principals, ACLs and topics (no database). Without, the central cluster (or the only one) and the
    database: roles, the database, migrations, and principals, ACLs and topics (BEACON_TOPOLOGY=regions: the
    central plan, no runner). Signing keys are made where missing only if BEACON_KEYS_DIR is writable."""
    logs.configure("console", level=logging.INFO, library_level=logging.ERROR)
    env = Settings.from_env()
    secrets = env.secrets_dir

    def secret(kind: str, name: str) -> str:
        return read_secret(secrets / kind / name, "BEACON_SECRETS_DIR")

    admin = Settings.from_env(
        {**os.environ, "BEACON_KAFKA_USERNAME": Principals.ADMIN, "BEACON_KAFKA_PASSWORD": secret("kafka", "admin")}
    )
    names = list(admin.catalogue.regions)
    if region is not None:
        mine = regions.regional_principals(region)
        regions.grant_region(admin, {p: secret("kafka", p) for p in mine}, region)
        print(
            f"init: region {region}: principals {', '.join(mine)}, their ACLs and topics"
            f" on {admin.kafka_bootstrap_servers}"
        )
        return
    superuser = os.environ.get("BEACON_PG_SUPERUSER", postgres.USER)
    server = without_credentials(env.database_url)
    address, _, query = server.partition("?")  # sslmode=… and the like hold for both databases
    base, _, database = address.rpartition("/")
    maintenance = f"{base}/postgres" + (f"?{query}" if query else "")
    with psycopg.connect(
        with_credentials(maintenance, superuser, secret("postgres", "admin")), autocommit=True
    ) as conn:
        postgres.ensure_roles(conn, None, {r: secret("postgres", r) for r in postgres.ROLES})
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone():
            postgres.create_database(conn, database)
    applied = db.migrate(with_credentials(server, DB_ROLE_PREFIX + "migrator", secret("postgres", "migrator")))
    print(
        f"init: PostgreSQL roles {', '.join(postgres.ROLES)};"
        f" {'migrated: ' + ', '.join(applied) if applied else 'schema up to date'}"
    )
    if topology() == "regions":
        who = regions.central_principals(names)
        regions.grant_central(admin, {p: secret("kafka", p) for p in who}, names)
        bindings = keys.bindings([])
    else:
        who = access.principals(names)
        access.grant(admin, {p: secret("kafka", p) for p in who}, names)
        bindings = keys.bindings(names)
    print(f"init: Kafka principals {', '.join(who)}, their ACLs and topics on {admin.kafka_bootstrap_servers}")
    if os.access(admin.keys_dir, os.W_OK):
        made = keys.ensure(admin.keys_dir, bindings)
        print(f"init: signing keys {'made ' + ', '.join(k.binding() for k in made) if made else 'present'}")


def clean() -> None:
    removed = postgres.PostgresCluster(state_dir()).remove_outside()
    if removed:
        print(f"PostgreSQL: deleted its cluster in {removed}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m beacon.deploy.local", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "clean", "init"])
    parser.add_argument("--region", help="init: that region's own cluster (the regional topology)")
    args = parser.parse_args()
    try:
        if args.command == "init":
            init(args.region)
        else:
            {"up": up, "down": down, "status": status, "clean": clean}[args.command]()
    except (StartError, SettingsError, access.AccessError, psycopg.OperationalError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
