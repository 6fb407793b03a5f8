"""A single-node Apache Kafka 4 broker in KRaft mode, run from its Maven Central jars on Java 17+."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from deploy.local.proc import StartError, read_pid, require_free, spawn, stop, tail, wait_for

POM = Path(__file__).parent / "kafka" / "pom.xml"
KAFKA_VERSION = re.search(r"<kafka.version>([^<]+)<", POM.read_text()).group(1)  # type: ignore[union-attr]
HEAP = "-Xms256m -Xmx1g"  # ample for a test broker; leaves the 24 GiB machine to Postgres and Python


def port() -> int:
    return int(os.environ.get("BEACON_KAFKA_PORT", "19092"))


def brokers() -> int:
    n = int(os.environ.get("BEACON_KAFKA_BROKERS", "1"))
    if n not in (1, 3):
        raise StartError(f"BEACON_KAFKA_BROKERS={n}: use 1 (the default) or 3 (make up BROKERS=3)")
    return n


class KafkaCluster:
    """`nodes` combined broker+controller nodes on loopback: node i listens on base+2(i-1) (clients) and
    base+2(i-1)+1 (controllers). One node uses a dynamic quorum formatted --standalone; three use a
    static voter set. Topics on three nodes get replication factor 3 and min.insync.replicas 2."""

    def __init__(self, state: Path, nodes: int = 1, base_port: int | None = None) -> None:
        self.nodes = nodes
        self.base = port() if base_port is None else base_port
        self.home = state / "kafka" / f"{nodes}-node"
        self.lib = state / "cache" / f"kafka-lib-{KAFKA_VERSION}"
        self.log_dir = state / "logs"

    # --- layout ------------------------------------------------------------------------------------

    def broker_port(self, node: int) -> int:
        return self.base + 2 * (node - 1)

    def controller_port(self, node: int) -> int:
        return self.broker_port(node) + 1

    def node_dir(self, node: int) -> Path:
        return self.home / f"node-{node}"

    def pidfile(self, node: int) -> Path:
        return self.node_dir(node) / "kafka.pid"

    def log(self, node: int) -> Path:
        return self.log_dir / (f"kafka-{node}.log" if self.nodes > 1 else "kafka.log")

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.broker_port(n)}" for n in range(1, self.nodes + 1))

    @property
    def replication_factor(self) -> int:
        return 3 if self.nodes >= 3 else 1

    # --- prerequisites ---------------------------------------------------------------------------

    @staticmethod
    def check_java() -> None:
        if shutil.which("java") is None:
            raise StartError("no `java` on PATH. Kafka needs Java 17 or newer: apt-get install openjdk-17-jre-headless")
        out = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
        match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
        major = int(match.group(1)) if match else 0
        if major == 1 and match and match.group(2):
            major = int(match.group(2))
        if major < 17:
            raise StartError(
                f"Kafka {KAFKA_VERSION} needs Java 17 or newer; `java -version` says: {out.strip().splitlines()[0]}. "
                "Install openjdk-17-jre-headless and put it first on PATH (or set JAVA_HOME)."
            )

    def ensure_jars(self) -> None:
        """Resolve the broker's jars once into a cache folder; later starts reuse it."""
        if (self.lib / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
            return
        if shutil.which("mvn") is None:
            raise StartError("no `mvn` on PATH; it fetches Kafka's jars from Maven Central once: apt-get install maven")
        print(f"  fetching Kafka {KAFKA_VERSION} jars from Maven Central (once; cached in {self.lib}) …", flush=True)
        self.lib.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.lib.parent, prefix="kafka-lib-"))
        result = subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={tmp}",
                "-DincludeScope=runtime",
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise StartError(
                f"Maven could not resolve Kafka {KAFKA_VERSION}:\n{(result.stdout + result.stderr)[-2000:]}\n"
                "Check that Maven Central is reachable (mvn -B dependency:get -Dartifact=org.apache.kafka:"
                f"kafka_2.13:{KAFKA_VERSION})."
            )
        tmp.rename(self.lib)  # atomic: a half-fetched folder is never mistaken for a complete one

    # --- configuration ---------------------------------------------------------------------------

    def properties(self, node: int) -> Path:
        return self.node_dir(node) / "server.properties"

    def write_properties(self, node: int) -> None:
        b, c, rf = self.broker_port(node), self.controller_port(node), self.replication_factor
        if self.nodes == 1:
            quorum = f"controller.quorum.bootstrap.servers=127.0.0.1:{c}"
        else:
            voters = ",".join(f"{n}@127.0.0.1:{self.controller_port(n)}" for n in range(1, self.nodes + 1))
            quorum = f"controller.quorum.voters={voters}"
        self.node_dir(node).mkdir(parents=True, exist_ok=True)
        self.properties(node).write_text(
            "\n".join(
                [
                    "# Generated by deploy/local/kafka.py; edits are overwritten at the next start.",
                    "process.roles=broker,controller",
                    f"node.id={node}",
                    quorum,
                    f"listeners=PLAINTEXT://127.0.0.1:{b},CONTROLLER://127.0.0.1:{c}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{b},CONTROLLER://127.0.0.1:{c}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"log.dirs={self.node_dir(node) / 'data'}",
                    "num.partitions=6",
                    # Kafka's own topics: as many replicas as there are nodes (at most 3).
                    f"offsets.topic.replication.factor={rf}",
                    f"transaction.state.log.replication.factor={rf}",
                    f"transaction.state.log.min.isr={min(2, rf)}",
                    f"share.coordinator.state.topic.replication.factor={rf}",
                    f"share.coordinator.state.topic.min.isr={min(2, rf)}",
                    f"default.replication.factor={rf}",
                    f"min.insync.replicas={min(2, rf)}",
                    # Consumers join at once instead of waiting 3 s for more members.
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=false",
                    "",
                ]
            )
        )

    def format_storage(self, node: int, cluster_id: str) -> None:
        if (self.node_dir(node) / "data" / "meta.properties").exists():
            return
        argv = [
            "java",
            "-cp",
            f"{self.lib}/*",
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(self.properties(node)),
        ]
        if self.nodes == 1:
            argv.append("--standalone")
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode != 0:
            raise StartError(f"kafka-storage format failed:\n{(result.stdout + result.stderr)[-2000:]}")

    def cluster_id(self) -> str:
        path = self.home / "cluster-id"
        if not path.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            cluster_id = "-"
            while cluster_id.startswith("-"):  # as Kafka's own Uuid does: a leading '-' reads as an option
                cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            path.write_text(cluster_id)
        return path.read_text().strip()

    # --- lifecycle -------------------------------------------------------------------------------

    def running_nodes(self) -> list[int]:
        return [n for n in range(1, self.nodes + 1) if read_pid(self.pidfile(n)) is not None]

    def running(self) -> bool:
        return len(self.running_nodes()) == self.nodes

    def start(self, timeout: float = 90.0) -> float:
        """Start the nodes not running and wait until a client's metadata request succeeds; returns seconds."""
        if self.running():
            return 0.0
        self.check_java()
        self.ensure_jars()
        cluster_id = self.cluster_id()
        began = time.monotonic()
        for node in range(1, self.nodes + 1):
            if node in self.running_nodes():
                continue
            require_free(self.broker_port(node), f"Kafka node {node}", "BEACON_KAFKA_PORT")
            require_free(self.controller_port(node), f"the Kafka controller of node {node}", "BEACON_KAFKA_PORT")
            self.write_properties(node)
            self.format_storage(node, cluster_id)
            self.start_node(node)
        if not wait_for(lambda: self.running() and metadata_ok(self.bootstrap, self.nodes), timeout, interval=0.5):
            logs = "\n".join(f"--- {self.log(n)}\n{tail(self.log(n))}" for n in range(1, self.nodes + 1))
            raise StartError(f"Kafka did not become ready within {timeout:.0f} s. Last lines of its logs:\n{logs}")
        return time.monotonic() - began

    def start_node(self, node: int) -> None:
        argv = ["java", *HEAP.split(), "-cp", f"{self.lib}/*", "kafka.Kafka", str(self.properties(node))]
        spawn(argv, self.log(node), self.pidfile(node))

    def kill_node(self, node: int) -> None:
        """SIGKILL one node (fault tests): no clean shutdown, no leadership hand-over."""
        pid = read_pid(self.pidfile(node))
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: read_pid(self.pidfile(node)) is None, 10)

    def stop(self) -> bool:
        return any([stop(self.pidfile(n), timeout=60) for n in range(1, self.nodes + 1)])


def metadata_ok(servers: str, brokers: int = 1) -> bool:
    """Ready means a real client gets cluster metadata naming every broker, not merely an open port."""
    import logging

    from aiokafka.admin import AIOKafkaAdminClient

    # "connection refused" while the broker boots is expected; the caller reports the outcome.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

    async def ask() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=3000)
        try:
            await admin.start()
            await admin.list_topics()
            return len(admin._client.cluster.brokers()) >= brokers
        except Exception:
            return False
        finally:
            await admin.close()

    return asyncio.run(ask())
