"""Apache Kafka 4 in KRaft mode (one node, or three on loopback), run from its Maven Central jars on Java 17+.

Authenticated and authorized from its first start: clients and brokers speak SASL/SCRAM-SHA-512 on the
BROKER listener, controllers SASL/PLAIN on the CONTROLLER listener (SCRAM credentials live in the metadata
log, which a controller cannot read before it is up), and the StandardAuthorizer allows nothing that no ACL
allows. `admin` (and the nodes' own `broker` and `controller`) are super users; the admin and broker SCRAM
credentials are written at format time, every service's principal and ACLs by beacon.deploy.local.access.

Ready means ready for Beacon, not merely an open port: every node answers a metadata request naming
every node, and Kafka's internal topics (__consumer_offsets for consumer groups, __transaction_state for
transactions) exist with a leader and enough in-sync replicas for every partition (`readiness`)."""

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

from beacon.deploy.local import credentials
from beacon.deploy.local.proc import StartError, alive, read_pid, require_free, spawn, stop, tail, wait_for

# Maven fetches Kafka's jars from Central with this (package data, beside this module).
POM = Path(__file__).parent / "kafka-jars" / "pom.xml"
KAFKA_VERSION = re.search(r"<kafka.version>([^<]+)<", POM.read_text()).group(1)  # type: ignore[union-attr]
HEAP = "-Xms256m -Xmx1g"  # ample for a test broker; leaves the 24 GiB machine to Postgres and Python
# The principals every node knows from its first start: the operator's, and the nodes' own two.
ADMIN, BROKER, CONTROLLER = "admin", "broker", "controller"
SCRAM = "SCRAM-SHA-512"


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

    def __init__(self, state: Path, nodes: int = 1, base_port: int | None = None, cache: Path | None = None) -> None:
        self.nodes = nodes
        self.base = port() if base_port is None else base_port
        self.state = state  # its data, logs and passwords (a region's cluster: that region's own folder)
        self.home = state / "kafka" / f"{nodes}-node"
        self.lib = (cache or state / "cache") / f"kafka-lib-{KAFKA_VERSION}"  # jars may be shared
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

    def password(self, principal: str) -> str:
        return credentials.password(self.state, "kafka", principal)

    def admin_security(self) -> dict[str, object]:
        """Client options of the admin principal (readiness probes, ACLs, tests)."""
        return {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": SCRAM,
            "sasl_plain_username": ADMIN,
            "sasl_plain_password": self.password(ADMIN),
        }

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
        resolve_jars(POM, self.lib, f"kafka_2.13-{KAFKA_VERSION}.jar", f"Kafka {KAFKA_VERSION}")

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
        broker_pw, controller_pw = self.password(BROKER), self.password(CONTROLLER)
        scram_login = "org.apache.kafka.common.security.scram.ScramLoginModule"
        plain_login = "org.apache.kafka.common.security.plain.PlainLoginModule"
        self.node_dir(node).mkdir(parents=True, exist_ok=True)
        # Mode 600 (the private umask): it holds the nodes' own passwords.
        self.properties(node).write_text(
            "\n".join(
                [
                    "# Generated by beacon.deploy.local.kafka (make up); edits are overwritten at the next start.",
                    "process.roles=broker,controller",
                    f"node.id={node}",
                    quorum,
                    f"listeners=BROKER://127.0.0.1:{b},CONTROLLER://127.0.0.1:{c}",
                    f"advertised.listeners=BROKER://127.0.0.1:{b},CONTROLLER://127.0.0.1:{c}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=BROKER",
                    "listener.security.protocol.map=BROKER:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
                    f"listener.name.broker.sasl.enabled.mechanisms={SCRAM}",
                    f"sasl.mechanism.inter.broker.protocol={SCRAM}",
                    f'listener.name.broker.scram-sha-512.sasl.jaas.config={scram_login} required username="{BROKER}" '
                    f'password="{broker_pw}";',
                    "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
                    "sasl.mechanism.controller.protocol=PLAIN",
                    f'listener.name.controller.plain.sasl.jaas.config={plain_login} required username="{CONTROLLER}" '
                    f'password="{controller_pw}" user_{CONTROLLER}="{controller_pw}";',
                    "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                    "allow.everyone.if.no.acl.found=false",
                    f"super.users=User:{ADMIN};User:{BROKER};User:{CONTROLLER}",
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

    def format_storage(self, nodes: list[int], cluster_id: str) -> None:
        """Format the storage of the nodes not formatted yet, all at once (one JVM each, ~3 s apiece)."""
        todo = [n for n in nodes if not (self.node_dir(n) / "data" / "meta.properties").exists()]
        old = [n for n in nodes if n not in todo and not self.secured_marker(n).exists()]
        if old:
            raise StartError(
                f"the Kafka data in {self.home} was made before Beacon's Kafka required authentication; "
                "`make down && make clean && make up` starts it afresh (its topics are deleted)"
            )
        formats = {}
        for node in todo:
            argv = ["java", "-cp", f"{self.lib}/*", "kafka.tools.StorageTool", "format", "-t", cluster_id]
            argv += ["-c", str(self.properties(node))]
            # The two principals needed before any ACL exists; argv is private to this process's user.
            for principal in (ADMIN, BROKER):
                argv += ["--add-scram", f"{SCRAM}=[name={principal},password={self.password(principal)}]"]
            if self.nodes == 1:
                argv.append("--standalone")
            formats[node] = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        failed = {node: proc.communicate()[0] for node, proc in formats.items()}
        failed = {node: out for node, out in failed.items() if formats[node].returncode != 0}
        if failed:
            node, out = next(iter(failed.items()))
            raise StartError(f"kafka-storage format of node {node} failed:\n{out[-2000:]}")
        for node in todo:
            self.secured_marker(node).write_text("formatted with SCRAM credentials for admin and broker\n")

    def secured_marker(self, node: int) -> Path:
        return self.node_dir(node) / "authenticated"

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

    def start(self, timeout: float = 120.0) -> float:
        """Start the nodes not running, then wait until the cluster is ready (`readiness`); returns the
        seconds it took. An already-running cluster is checked too (quick: its internal topics exist)."""
        began = time.monotonic()
        self.launch()
        self.wait_ready(timeout)
        return time.monotonic() - began

    def launch(self) -> None:
        """Start the nodes not running, without waiting for them (several clusters can boot side by side)."""
        missing = [n for n in range(1, self.nodes + 1) if n not in self.running_nodes()]
        if missing:
            self.check_java()
            self.ensure_jars()
            cluster_id = self.cluster_id()
            for node in missing:
                require_free(self.broker_port(node), f"Kafka node {node}", "BEACON_KAFKA_PORT")
                require_free(self.controller_port(node), f"the Kafka controller of node {node}", "BEACON_KAFKA_PORT")
                self.write_properties(node)
            self.format_storage(missing, cluster_id)
            for node in missing:
                self.start_node(node)

    def wait_ready(self, timeout: float) -> None:
        """Wait until `readiness` finds nothing missing; fail with what is missing and the nodes' logs."""
        deadline = time.monotonic() + timeout
        while True:
            missing = readiness(self.addresses(), self.admin_security())
            if missing is None:
                return
            dead = [n for n in range(1, self.nodes + 1) if n not in self.running_nodes()]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(f"--- {self.log(n)}\n{tail(self.log(n))}" for n in range(1, self.nodes + 1))
                why = f"node(s) {dead} exited" if dead else f"not ready within {timeout:.0f} s"
                raise StartError(f"Kafka {why}: {missing}. Last lines of its logs:\n{logs}")
            time.sleep(0.5)

    def addresses(self) -> dict[int, str]:
        """node id → its client listener"""
        return {n: f"127.0.0.1:{self.broker_port(n)}" for n in range(1, self.nodes + 1)}

    def start_node(self, node: int) -> None:
        argv = ["java", *HEAP.split(), "-cp", f"{self.lib}/*", "kafka.Kafka", str(self.properties(node))]
        spawn(argv, self.log(node), self.pidfile(node))

    def kill_node(self, node: int) -> None:
        """SIGKILL one node (fault tests): no clean shutdown, no leadership hand-over."""
        pid = read_pid(self.pidfile(node))
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: read_pid(self.pidfile(node)) is None, 10)

    def stop_node(self, node: int) -> None:
        """Stop one node cleanly (SIGTERM: controlled shutdown, leaderships handed over)."""
        stop(self.pidfile(node), timeout=60)

    def stop(self, timeout: float = 60.0) -> bool:
        """Stop every node, all at once: a node stopped after the others would wait in vain for a
        controller quorum to acknowledge its controlled shutdown (a minute, then SIGKILL). Returns
        whether any was running."""
        pids = {n: pid for n in range(1, self.nodes + 1) if (pid := read_pid(self.pidfile(n))) is not None}
        for pid in pids.values():
            os.kill(pid, signal.SIGTERM)
        if not wait_for(lambda: not any(alive(pid) for pid in pids.values()), timeout):
            for pid in pids.values():
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
            wait_for(lambda: not any(alive(pid) for pid in pids.values()), 10)
        for n in range(1, self.nodes + 1):
            self.pidfile(n).unlink(missing_ok=True)
        return bool(pids)


def resolve_jars(pom: Path, lib: Path, marker: str, what: str) -> None:
    """Resolve `pom`'s runtime dependencies from Maven Central into `lib`, once: a later call finds `marker`
    there and returns at once."""
    if (lib / marker).exists():
        return
    if shutil.which("mvn") is None:
        raise StartError(f"no `mvn` on PATH; it fetches {what}'s jars from Maven Central once: apt-get install maven")
    print(f"  fetching {what} jars from Maven Central (once; cached in {lib}) …", flush=True)
    lib.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=lib.parent, prefix=f"{lib.name}-"))
    argv = ["mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies", f"-DoutputDirectory={tmp}"]
    result = subprocess.run([*argv, "-DincludeScope=runtime"], capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise StartError(
            f"Maven could not resolve {what}:\n{(result.stdout + result.stderr)[-2000:]}\n"
            f"Check that Maven Central is reachable (mvn -B -f {pom} dependency:resolve)."
        )
    try:
        tmp.rename(lib)  # atomic: a half-fetched folder is never mistaken for a complete one
    except OSError:  # another process fetched it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
        if not (lib / marker).exists():
            raise


def metadata_ok(servers: str, security: dict[str, object], brokers: int = 1) -> bool:
    """Ready means a real client gets cluster metadata naming every broker, not merely an open port."""
    import logging

    from aiokafka.admin import AIOKafkaAdminClient

    # "connection refused" while the broker boots is expected; the caller reports the outcome.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

    async def ask() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=3000, **security)
        try:
            await admin.start()
            # The brokers the answer names (the client's own list falls back to the bootstrap addresses).
            return len((await admin.describe_cluster())["brokers"]) >= brokers
        except Exception:
            return False
        finally:
            await admin.close()

    return asyncio.run(ask())


# --- readiness -------------------------------------------------------------------------------------

# The internal topics that hold the group and the transaction coordinators' state. The first FindCoordinator
# of a kind (key type 0: group, 1: transaction) makes Kafka create its topic (50 partitions); until then,
# and until every partition has a leader, a consumer group cannot join or commit and a transaction cannot begin.
INTERNAL_TOPICS = ("__consumer_offsets", "__transaction_state")
COORDINATOR_KINDS = {0: "group", 1: "transaction"}
PROBE_KEY = "beacon.readiness"  # a group id and a transactional id that are only ever looked up


def readiness(nodes: dict[int, str], security: dict[str, object]) -> str | None:
    """None when the cluster of `nodes` (node id → host:port) can serve Beacon, else what is missing:
    - every node answers a metadata request, and its answer names every node;
    - every node finds a group coordinator and a transaction coordinator (creating the internal topics);
    - on every node's metadata, every partition of both internal topics has a leader and at least
      min(2, nodes) replicas in sync (a commit or a transaction needs min.insync.replicas of them)."""
    import logging

    from aiokafka.conn import create_conn
    from aiokafka.errors import for_code
    from aiokafka.protocol.coordination import FindCoordinatorRequest
    from aiokafka.protocol.metadata import MetadataRequest

    need_isr = min(2, len(nodes))

    async def probe(node: int, address: str) -> str | None:
        host, port_ = address.rsplit(":", 1)
        try:
            conn = await create_conn(host, int(port_), request_timeout_ms=5000, **security)
        except Exception as exc:
            return f"node {node} ({address}) does not answer: {type(exc).__name__}: {exc}"
        try:
            brokers = sorted(b[0] for b in (await conn.send(MetadataRequest([]))).brokers)
            if brokers != sorted(nodes):
                return f"node {node} names brokers {brokers}, not {sorted(nodes)}"
            for key_type, kind in COORDINATOR_KINDS.items():
                found = await conn.send(FindCoordinatorRequest(PROBE_KEY, key_type))
                if found.error_code:
                    return f"node {node} finds no {kind} coordinator yet ({for_code(found.error_code).__name__})"
            request = MetadataRequest(list(INTERNAL_TOPICS), allow_auto_topic_creation=False)
            for topic in (await conn.send(request)).to_object()["topics"]:
                if topic["error_code"]:
                    return f"node {node}: {topic['topic']}: {for_code(topic['error_code']).__name__}"
                weak = [p["partition"] for p in topic["partitions"] if p["leader"] < 0 or len(p["isr"]) < need_isr]
                if weak or not topic["partitions"]:
                    return (
                        f"node {node}: {len(weak)} of {len(topic['partitions'])} partitions of {topic['topic']} "
                        f"have no leader or fewer than {need_isr} replicas in sync"
                    )
            return None
        except Exception as exc:
            return f"node {node} ({address}): {type(exc).__name__}: {exc}"
        finally:
            conn.close()

    async def ask() -> str | None:
        answers = await asyncio.gather(*(probe(n, a) for n, a in nodes.items()))
        return next((a for a in answers if a is not None), None)

    # "connection refused" while a node boots is expected; the caller reports what is still missing.
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        return asyncio.run(ask())
    finally:
        quiet.setLevel(level)
