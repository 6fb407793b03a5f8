"""The regional topology (`make up TOPOLOGY=regions`): the central cluster (submitter, recorder, reader,
PostgreSQL) and one single-node KRaft cluster per region (its runner), each region linked to the centre by
its own MirrorMaker 2 process (beacon.deploy.local.mirror).

Each region is a trust domain of its own and lives in a folder of its own, `.beacon/regions/<region>/`,
laid out like a whole deployment: its Kafka's data and logs, its passwords (`secrets/kafka/`: its admin, its
runner, its link), its signing keys (`keys/`: the runner's private key only, and trusted.json), and an `env`
file naming its cluster. A runner started with BEACON_STATE_DIR at that folder knows nothing of any other
cluster, database or region. The central folder's keys hold the submitter's and the recorder's private
keys; every trusted.json holds every public key, so each side checks the other's signatures.

Ports: region i of the catalogue (0, 1, 2, …) listens on BEACON_KAFKA_PORT + 10·(i+1) (clients) and the next
port (its controller).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from beacon.deploy.local import access, credentials
from beacon.deploy.local.kafka import KafkaCluster
from beacon.deploy.local.mirror import CENTRAL, End, MirrorLink
from beacon.deploy.local.proc import private_file
from beacon.infra import keys
from beacon.infra.settings import Settings
from beacon.infra.topics import TopicSpec, declared
from beacon.schemas.topics import LATEST_PER_KEY, Principals, Topics

PORT_STEP = 10
MARKER = "topology"  # in the state folder: "regions" while the regional topology is up
# Connect's storage topics of a link, per end: one partition for its configs (Connect requires it).
MIRROR_PARTITIONS = {"configs": 1, "offsets": 5, "status": 1}


def is_up(state: Path) -> bool:
    marker = state / MARKER
    return marker.is_file() and marker.read_text().strip() == "regions"


def region_env(home: Path) -> dict[str, str]:
    """What a runner of the region whose folder is `home` is started with: that folder, so its own cluster,
    keys and password (none of the central ones), and its `env` lines over what the caller's environment says."""
    env = {
        "BEACON_STATE_DIR": str(home),
        "BEACON_SECRETS_DIR": str(home / "secrets"),
        "BEACON_KEYS_DIR": str(home / "keys"),
    }
    for line in (home / "env").read_text().splitlines():
        name, _, value = line.partition("=")
        if name:
            env[name] = value
    return env


def mirror_topics(namespace: str, region: str, replication_factor: int) -> list[TopicSpec]:
    """A link's bookkeeping topics on one end (compacted, as Connect requires), made by admin."""
    internal = Topics(namespace).mirror_internal(region)
    return [
        TopicSpec(name, MIRROR_PARTITIONS[kind], replication_factor, dict(LATEST_PER_KEY))
        for kind, name in internal.items()
    ]


def central_principals(regions: Iterable[str]) -> list[str]:
    """The principals of the central cluster: the submitter, the recorder and each region's link."""
    return [*access.principals([]), *(Principals.mirror(r) for r in regions)]


def regional_principals(region: str) -> list[str]:
    return [Principals.runner(region), Principals.mirror(region)]


def grant_central(admin: Settings, passwords: dict[str, str], regions: list[str]) -> None:
    """The central cluster's principals, ACLs and topics: the product's topics and each region's expansions
    (mirrored in), each link's bookkeeping topics, and no work topic (no runner runs here)."""
    ns = admin.topic_namespace
    topics = declared(admin, regions, work=False)
    topics += [t for r in regions for t in mirror_topics(ns, r, admin.replication_factor)]
    access.grant(admin, passwords, regions, acls=access.central_plan(ns, regions), topics=topics)


def grant_region(admin: Settings, passwords: dict[str, str], region: str) -> None:
    """A region's own cluster: its runner's and its link's principals, ACLs and topics."""
    ns = admin.topic_namespace
    topics = [*declared(admin, [region]), *mirror_topics(ns, region, admin.replication_factor)]
    access.grant(admin, passwords, [region], acls=access.regional_plan(ns, region), topics=topics)


@dataclass
class Region:
    id: str
    folder: Path
    cluster: KafkaCluster
    link: MirrorLink

    def admin(self, namespace: str) -> Settings:
        return Settings.from_env(
            {
                **os.environ,
                "BEACON_STATE_DIR": str(self.folder),
                "KAFKA_BOOTSTRAP_SERVERS": self.cluster.bootstrap,
                "BEACON_TOPIC_NAMESPACE": namespace,
                "BEACON_REPLICATION_FACTOR": "1",
                "BEACON_KAFKA_USERNAME": Principals.ADMIN,
                "BEACON_KAFKA_PASSWORD": self.cluster.password(Principals.ADMIN),
                "BEACON_KEYS_DIR": str(self.folder / "keys"),
            }
        )


def ports(base: int, regions: Iterable[str]) -> dict[str, int]:
    """Each region's client port: BEACON_KAFKA_PORT + 10·(i+1) for the i-th region (its controller: the next)."""
    return {region: base + PORT_STEP * (i + 1) for i, region in enumerate(regions)}


class Topology:
    """The regional clusters and links around one central cluster, for one topic namespace.

    `state` is the central folder (its secrets hold the central passwords, its keys the central services'
    keys); `central` the central cluster's admin settings; `ports` each region's client port; `home` holds
    a folder per region (`state`/regions unless given: the tests keep theirs apart from a developer's)."""

    def __init__(self, state: Path, central: Settings, ports: dict[str, int], home: Path | None = None) -> None:
        self.state, self.central = state, central
        self.namespace = central.topic_namespace
        self.home = home or state / "regions"
        cache = state / "cache"
        self.regions: dict[str, Region] = {}
        for region, port in ports.items():
            path = self.home / region
            cluster = KafkaCluster(path, 1, base_port=port, cache=cache)
            # The link's two ends, each with the folder of that cluster's password files (its own among them).
            hub = credentials.location(state, "kafka")
            central_end = End(CENTRAL, central.kafka_bootstrap_servers, hub, central.replication_factor)
            own_end = End(region, cluster.bootstrap, credentials.location(path, "kafka"), 1)
            link = MirrorLink(path, cache, self.namespace, region, central_end, own_end)
            self.regions[region] = Region(region, path, cluster, link)

    def __getitem__(self, region: str) -> Region:
        return self.regions[region]

    def start_clusters(self, timeout: float = 180.0) -> None:
        """Every region's cluster, launched together and then awaited (their JVMs boot side by side)."""
        for r in self.regions.values():
            r.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            r.cluster.launch()
        for r in self.regions.values():
            r.cluster.wait_ready(timeout)

    def grant(self) -> None:
        """Principals, ACLs and topics on every cluster; each runner's key in its region; keys exchanged."""
        regions = list(self.regions)
        passwords = {p: credentials.password(self.state, "kafka", p) for p in central_principals(regions)}
        grant_central(self.central, passwords, regions)
        keys.ensure(self.central.keys_dir, keys.bindings([]))  # the submitter's and the recorder's
        for r in self.regions.values():
            own = {p: credentials.password(r.folder, "kafka", p) for p in regional_principals(r.id)}
            grant_region(r.admin(self.namespace), own, r.id)
            keys.ensure(r.folder / "keys", [("runner", r.id)])
        keys.exchange([self.central.keys_dir, *(r.folder / "keys" for r in self.regions.values())])

    def write_env(self) -> None:
        """Each region's `env` file: its own cluster only (no database: a runner needs none)."""
        for r in self.regions.values():
            fd = private_file(r.folder / "env")
            try:
                os.ftruncate(fd, 0)
                os.write(fd, f"KAFKA_BOOTSTRAP_SERVERS={r.cluster.bootstrap}\nBEACON_REPLICATION_FACTOR=1\n".encode())
            finally:
                os.close(fd)

    def env(self, region: str) -> dict[str, str]:
        return region_env(self.regions[region].folder)

    def start_links(self, timeout: float = 180.0) -> None:
        for r in self.regions.values():
            r.link.launch()
        for r in self.regions.values():
            r.link.wait_started(timeout)

    def up(self) -> None:
        self.start_clusters()
        self.grant()
        self.write_env()
        self.start_links()

    def stop(self) -> list[str]:
        """Links first (nothing left to copy from a stopped cluster), then the clusters."""
        stopped = [f"link {r.id}" for r in self.regions.values() if r.link.stop()]
        return stopped + [f"Kafka {r.id}" for r in self.regions.values() if r.cluster.stop()]
