"""`python -m deploy.local up|down|status` — what `make up` and `make down` run.

up starts PostgreSQL and Kafka (each only if not already running, and only if DATABASE_URL /
KAFKA_BOOTSTRAP_SERVERS do not already name a server of yours), waits until both answer, and writes
`.beacon/env` with the two sourceable lines the services and tests read.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from beacon.settings import state_dir
from deploy.local import kafka, postgres, services
from deploy.local.proc import StartError, read_pid


def up() -> None:
    state = state_dir()
    state.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()

    db_url = os.environ.get("DATABASE_URL")
    if db_url:
        print(f"PostgreSQL: using DATABASE_URL from the environment ({db_url.split('@')[-1]})")
    else:
        cluster = postgres.PostgresCluster(state)
        was_running = cluster.running()
        cluster.start()
        db_url = postgres.url()
        print(f"PostgreSQL: {'already running' if was_running else 'started'} on 127.0.0.1:{postgres.port()}")

    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if servers:
        print(f"Kafka: using KAFKA_BOOTSTRAP_SERVERS from the environment ({servers})")
        if not kafka.metadata_ok(servers):
            raise StartError(f"Kafka at {servers} does not answer a metadata request")
    else:
        node = kafka.KafkaNode(state)
        was_running = node.running()
        seconds = node.start()
        servers = kafka.bootstrap()
        how = "already running" if was_running else f"started in {seconds:.1f} s"
        print(f"Kafka {kafka.KAFKA_VERSION} (KRaft): {how} on {servers}")

    (state / "env").write_text(f"KAFKA_BOOTSTRAP_SERVERS={servers}\nDATABASE_URL={db_url}\n")
    print(f"Ready in {time.monotonic() - began:.1f} s; wrote {state / 'env'} (source it, or let `beacon` read it).")


def down() -> None:
    state = state_dir()
    stopped = services.stop_all(state)
    if stopped:
        print(f"Stopped Beacon services: {', '.join(stopped)}")
    print("Kafka: stopped" if kafka.KafkaNode(state).stop() else "Kafka: was not running")
    print("PostgreSQL: stopped" if postgres.PostgresCluster(state).stop() else "PostgreSQL: was not running")


def status() -> None:
    state = state_dir()
    node = kafka.KafkaNode(state)
    pid = read_pid(node.pidfile)
    if pid:
        rss_kib = next((int(line.split()[1]) for line in open(f"/proc/{pid}/status") if line.startswith("VmRSS")), 0)
        print(f"Kafka: running, pid {pid}, resident memory {rss_kib / 1024:.0f} MiB")
    else:
        print("Kafka: not running")
    print(f"PostgreSQL: {'running' if postgres.PostgresCluster(state).running() else 'not running'}")
    for name in services.service_commands():
        spid = read_pid(state / "run" / f"{name}.pid")
        print(f"{name}: {'running, pid ' + str(spid) if spid else 'not running'}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m deploy.local", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args()
    try:
        {"up": up, "down": down, "status": status}[args.command]()
    except StartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
