"""The regional topology as data: who may do what on the central cluster and on each region's, what each
MirrorMaker link copies (and filters) in which direction, the ports and folders of the regions, and the keys
exchange that lets each trust domain check the others' signatures without holding their private keys.
Nothing here starts a process: tests/integration exercises the real clusters and links."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from beacon.deploy.local import access, credentials, regions
from beacon.deploy.local.kafka import KafkaCluster
from beacon.deploy.local.mirror import CENTRAL, STARTED, End, MirrorLink
from beacon.infra import keys
from beacon.infra.settings import Settings
from beacon.schemas.topics import Groups, Principals, Topics, dead_letter_topic, region_header

NS = "beacon"
T, G = Topics(NS), Groups(NS)
# us-east-2 is there to catch a name or prefix of us-east that also covers us-east-2's.
REGIONS = ["us-east", "eu-west", "us-east-2"]
CENTRAL_PLAN = access.central_plan(NS, REGIONS)
BOOT = "KAFKA_BOOTSTRAP_SERVERS"


def rows(acls: list[access.Acl], principal: str) -> set[tuple[int, str, int, int]]:
    return {(a.resource_type, a.name, a.pattern, a.operation) for a in acls if a.principal == principal}


def covers(acl: access.Acl, name: str) -> bool:
    return acl.name == name if acl.pattern == access.LITERAL else name.startswith(acl.name)


def names_of(region: str) -> list[str]:
    """Every resource that belongs to one region alone: its topics, groups, a transactional id, its link's."""
    own = [T.work(region), T.expanded(region), dead_letter_topic(T.work(region)), *T.mirror_internal(region).values()]
    return [*own, G.expander(region), G.runner(region), G.mirror(region), f"{G.expander(region)}.0"]


def mirror_rows(region: str, reads: list[str], writes: list[str]) -> set[tuple[int, str, int, int]]:
    topic, lit, pre = access.TOPIC, access.LITERAL, access.PREFIXED
    expected = {(topic, n, lit, op) for n in reads for op in (access.DESCRIBE, access.READ)}
    expected |= {(topic, n, lit, op) for n in writes for op in (access.DESCRIBE, access.WRITE)}
    ops = (access.DESCRIBE, access.READ, access.WRITE, access.DESCRIBE_CONFIGS)
    expected |= {(topic, f"{NS}.mirror.{region}.", pre, op) for op in ops}
    return expected | {(access.GROUP, f"{NS}.mirror.{region}", lit, access.READ)}


def test_the_central_cluster_knows_no_runner_only_the_submitter_the_recorder_and_each_link() -> None:
    assert {a.principal for a in CENTRAL_PLAN} == {"submitter", "recorder", *(f"mirror-{r}" for r in REGIONS)}
    plan = access.plan(NS, REGIONS)
    for service in (Principals.SUBMITTER, Principals.RECORDER):
        assert rows(CENTRAL_PLAN, service) == rows(plan, service)


@pytest.mark.parametrize("region", REGIONS)
def test_a_link_on_the_central_cluster_reads_the_jobs_and_writes_only_its_regions_results(region: str) -> None:
    mine = [a for a in CENTRAL_PLAN if a.principal == Principals.mirror(region)]
    reads = [f"{NS}.jobs.submitted"]
    writes = [f"{NS}.executions.completed", f"{NS}.jobs.expanded.{region}"]
    assert rows(mine, Principals.mirror(region)) == mirror_rows(region, reads, writes)
    # Spelled out: it forges no job, reads no result, touches no dead letter, nothing of another region.
    assert not [a for a in mine if a.name == T.jobs_submitted and a.operation == access.WRITE]
    assert not [a for a in mine if a.name == T.executions_completed and a.operation == access.READ]
    assert not [a for a in mine if ".dlq" in a.name]
    others = [n for r in REGIONS if r != region for n in names_of(r)]
    assert not [(a, n) for a in mine for n in others if covers(a, n)]


@pytest.mark.parametrize("region", REGIONS)
def test_a_regions_cluster_holds_only_its_runner_and_its_link(region: str) -> None:
    mine = access.regional_plan(NS, region)
    runner, link = Principals.runner(region), Principals.mirror(region)
    assert {a.principal for a in mine} == {runner, link}
    # Inverted: the link writes the jobs it brings in, reads the results it takes out.
    reads = [f"{NS}.executions.completed", f"{NS}.jobs.expanded.{region}"]
    assert rows(mine, link) == mirror_rows(region, reads, [f"{NS}.jobs.submitted"])
    assert rows(mine, runner) == rows(access.plan(NS, REGIONS), runner) == rows(access.plan(NS, [region]), runner)
    others = [n for r in REGIONS if r != region for n in names_of(r)]
    assert not [(a, n) for a in mine for n in others if covers(a, n)]


# --- the link's MirrorMaker configuration ---------------------------------------------------------------


def java_properties(text: str) -> dict[str, str]:
    """What java.util.Properties reads (enough of it): `#` comments, key=value, a backslash dropped before any
    other character. Refuses a key set twice, where the last line would silently win."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and key.strip() not in out, line
        out[key.strip()] = re.sub(r"\\(.)", r"\1", value.strip())
    return out


def link(tmp_path: Path, region: str = "us-east") -> MirrorLink:
    central = End(CENTRAL, "127.0.0.1:19092", Path("/central/secrets/kafka"))
    regional = End(region, "127.0.0.1:19102", Path(f"/{region}/secrets/kafka"))
    return MirrorLink(tmp_path / region, tmp_path / "cache", NS, region, central, regional)


# Names a topic regex must tell apart: every topic of every region, dead letters, look-alikes.
UNIVERSE = [
    *(n for r in REGIONS for n in (T.work(r), T.expanded(r), *T.mirror_internal(r).values())),
    *T.all(),
    *(dead_letter_topic(n) for n in [*T.all(), T.expanded("us-east")]),
    f"{NS}Xjobs.submitted",
    f"{NS}.jobsXsubmitted",
    f"{NS}.executionsXcompleted",
    f"{NS}.jobs.expanded.us-eastX",
    f"other.{NS}.jobs.submitted",
    f"{NS}.jobs.submitted.dlq",
    "heartbeats",
    "mm2-offset-syncs.us-east.internal",
]


def copied(regexes: str) -> set[str]:
    assert "\\" not in regexes  # nothing a .properties reader could eat
    return {n for n in UNIVERSE if any(re.fullmatch(rx, n) for rx in regexes.split(","))}


def test_a_link_copies_the_jobs_down_and_its_regions_results_up_under_the_same_names(tmp_path: Path) -> None:
    p = java_properties(link(tmp_path).properties())
    down, up = "central->us-east", "us-east->central"
    assert p["clusters"] == "central,us-east"
    assert p["replication.policy.class"] == "org.apache.kafka.connect.mirror.IdentityReplicationPolicy"
    assert p[f"{down}.enabled"] == p[f"{up}.enabled"] == "true"
    assert copied(p[f"{down}.topics"]) == {f"{NS}.jobs.submitted"}
    assert copied(p[f"{up}.topics"]) == {f"{NS}.executions.completed", f"{NS}.jobs.expanded.us-east"}
    assert not copied(p[f"{down}.topics"]) & copied(p[f"{up}.topics"])  # nothing loops back


def test_only_the_jobs_that_name_the_region_cross_to_it(tmp_path: Path) -> None:
    p = java_properties(link(tmp_path).properties())
    down = "central->us-east"
    [transform] = p[f"{down}.transforms"].split(",")
    assert p[f"{down}.transforms.{transform}.type"] == "org.apache.kafka.connect.transforms.Filter"
    predicate = p[f"{down}.transforms.{transform}.predicate"]
    assert predicate in p[f"{down}.predicates"].split(",")
    # Filter drops what matches; negated, it drops every record without the region's header.
    assert p[f"{down}.transforms.{transform}.negate"] == "true"
    kind = p[f"{down}.predicates.{predicate}.type"]
    assert kind == "org.apache.kafka.connect.transforms.predicates.HasHeaderKey"
    assert p[f"{down}.predicates.{predicate}.name"] == region_header("us-east") == "beacon.region.us-east"
    assert not [k for k in p if k.startswith(("us-east->central.transforms", "us-east->central.predicates"))]


STORAGE = {"configs": "config", "offsets": "offset", "status": "status"}  # Connect's words for its topics


def test_a_link_emits_no_bookkeeping_it_has_no_right_to_and_reads_committed_records_only(tmp_path: Path) -> None:
    p = java_properties(link(tmp_path).properties())
    for flag in ("emit.heartbeats", "emit.checkpoints", "emit.offset-syncs", "sync.group.offsets", "sync.topic.acls"):
        assert p[f"{flag}.enabled"] == "false", flag
    internal = T.mirror_internal("us-east")
    ends = ((CENTRAL, "/central/secrets/kafka", "/us-east/"), ("us-east", "/us-east/secrets/kafka", "/central/"))
    # A password is named by its file (Connect stores connector configs in a topic: no secret may be in them).
    assert p["config.providers.secrets.class"] == "org.apache.kafka.common.config.provider.DirectoryConfigProvider"
    assert set(p["config.providers.secrets.param.allowed.paths"].split(",")) == {e[1] for e in ends}
    for alias, folder, other in ends:
        assert p[f"{alias}.consumer.isolation.level"] == "read_committed"
        assert p[f"{alias}.group.id"] == G.mirror("us-east") == "beacon.mirror.us-east"
        storage = {kind: p[f"{alias}.{word}.storage.topic"] for kind, word in STORAGE.items()}
        assert storage == internal
        assert p[f"{alias}.security.protocol"] == "SASL_PLAINTEXT"
        jaas = p[f"{alias}.sasl.jaas.config"]
        assert 'username="mirror-us-east"' in jaas and f'password="${{secrets:{folder}:mirror-us-east}}";' in jaas
        assert other not in jaas


def test_a_link_is_started_once_both_directions_say_they_replicate(tmp_path: Path) -> None:
    line = (
        "[task-thread-MirrorSourceConnector-0] INFO org.apache.kafka.connect.mirror.MirrorSourceTask - "
        "task-thread-MirrorSourceConnector-0 replicating 6 topic-partitions central->us-east: [x-5, x-4]"
    )
    assert STARTED.findall(line) == ["central->us-east"]
    mm = link(tmp_path)
    assert not mm.started()  # no log yet
    mm.log.parent.mkdir(parents=True)
    mm.log.write_text(f"{line}\n{line}\n")
    assert not mm.started()  # one direction twice is still one
    mm.log.write_text(f"{line}\n{line.replace('central->us-east', 'us-east->central')}\n")
    assert mm.started()


# --- ports, folders, topics -----------------------------------------------------------------------------


def layout(cluster: KafkaCluster) -> set[int]:
    return {p for n in range(1, cluster.nodes + 1) for p in (cluster.broker_port(n), cluster.controller_port(n))}


def test_each_regions_cluster_gets_ports_of_its_own(tmp_path: Path) -> None:
    base = 19092
    given = regions.ports(base, REGIONS)
    assert given == {"us-east": base + 10, "eu-west": base + 20, "us-east-2": base + 30}
    taken = layout(KafkaCluster(tmp_path, 1, base_port=base)) | layout(KafkaCluster(tmp_path, 3, base_port=base))
    assert taken == set(range(base, base + 6))
    for port in given.values():
        mine = layout(KafkaCluster(tmp_path / "r", 1, base_port=port))
        assert not mine & taken, port
        taken |= mine


def test_a_links_bookkeeping_topics_are_compacted_with_one_configs_partition() -> None:
    specs = {s.name: s for s in regions.mirror_topics(NS, "eu-west", 3)}
    assert set(specs) == set(T.mirror_internal("eu-west").values())
    assert {s.config.get("cleanup.policy") for s in specs.values()} == {"compact"}
    assert specs[f"{NS}.mirror.eu-west.configs"].partitions == 1
    assert {s.replication_factor for s in specs.values()} == {3}


def test_a_regions_runner_is_pointed_at_its_own_folder_only(tmp_path: Path) -> None:
    home = tmp_path / "regions" / "eu-west"
    home.mkdir(parents=True)
    (home / "env").write_text("KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19112\n\nBEACON_REPLICATION_FACTOR=1\n")
    env = regions.region_env(home)
    assert env == {
        "BEACON_STATE_DIR": str(home),
        "BEACON_SECRETS_DIR": str(home / "secrets"),
        "BEACON_KEYS_DIR": str(home / "keys"),
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:19112",
        "BEACON_REPLICATION_FACTOR": "1",
    }
    s = Settings.from_env(env)
    assert (s.keys_dir, s.secrets_dir, s.kafka_bootstrap_servers) == (home / "keys", home / "secrets", env[BOOT])


def test_the_topology_marker(tmp_path: Path) -> None:
    assert not regions.is_up(tmp_path)
    (tmp_path / regions.MARKER).write_text("regions\n")
    assert regions.is_up(tmp_path)
    (tmp_path / regions.MARKER).write_text("single\n")
    assert not regions.is_up(tmp_path)


def test_a_topology_links_each_region_to_the_centre_with_each_ends_own_password_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {BOOT: "127.0.0.1:19092", "BEACON_TOPIC_NAMESPACE": "t1", "BEACON_STATE_DIR": str(state)}
    topo = regions.Topology(state, Settings.from_env(env), regions.ports(19092, REGIONS))
    for region, port in regions.ports(19092, REGIONS).items():
        r = topo[region]
        assert r.folder == state / "regions" / region and r.cluster.bootstrap == f"127.0.0.1:{port}"
        assert (r.link.namespace, r.link.region) == ("t1", region)
        assert (r.link.central.alias, r.link.central.bootstrap) == (CENTRAL, "127.0.0.1:19092")
        assert (r.link.regional.alias, r.link.regional.bootstrap) == (region, r.cluster.bootstrap)
        assert r.link.properties_file.is_relative_to(r.folder)
        # Each end's password file is that cluster's: the centre's secrets, or the region's own folder.
        assert r.link.central.secrets == credentials.location(state, "kafka")
        assert r.link.regional.secrets == credentials.location(r.folder, "kafka")
    assert len({topo[r].link.regional.secrets for r in REGIONS}) == len(REGIONS)
    assert not (state / "secrets").exists()  # describing the topology makes no password


# --- keys across trust domains --------------------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_exchange_shares_every_public_key_and_no_private_one(tmp_path: Path) -> None:
    centre, east, west = tmp_path / "central", tmp_path / "us-east", tmp_path / "eu-west"
    made = {
        centre: keys.ensure(centre, keys.bindings([])),
        east: keys.ensure(east, [("runner", "us-east")]),
        west: keys.ensure(west, [("runner", "eu-west")]),
    }
    private = {f: sorted((f / keys.PRIVATE).iterdir()) for f in made}
    keys.exchange([centre, east, west])
    every = {k.key_id: k.public for ks in made.values() for k in ks}
    for folder, mine in made.items():
        assert {k.key_id: k.public for k in keys.read_trusted(folder / keys.TRUSTED)} == every
        assert sorted((folder / keys.PRIVATE).iterdir()) == private[folder]  # none copied in, none moved
        assert len(private[folder]) == len(mine)
        assert "seed" not in (folder / keys.TRUSTED).read_text()
    # A region signs as its runner and as nothing else; the centre never as a runner.
    assert keys.signer(east, "runner", "us-east").key_id == made[east][0].key_id
    with pytest.raises(keys.KeysError):
        keys.signer(east, "submitter")
    with pytest.raises(keys.KeysError):
        keys.signer(centre, "runner", "us-east")


def test_a_revocation_anywhere_holds_everywhere_and_a_second_exchange_changes_nothing(tmp_path: Path) -> None:
    folders = [tmp_path / "central", tmp_path / "us-east", tmp_path / "eu-west"]
    keys.ensure(folders[0], keys.bindings([]))
    [east_key] = keys.ensure(folders[1], [("runner", "us-east")])
    keys.ensure(folders[2], [("runner", "eu-west")])
    keys.exchange(folders)
    at = datetime(2026, 6, 1, tzinfo=UTC)
    keys.revoke(folders[1], east_key.key_id, at=at)  # in the region, which the others still trust unrevoked
    keys.exchange(folders)
    for folder in folders:
        [entry] = [k for k in keys.read_trusted(folder / keys.TRUSTED) if k.key_id == east_key.key_id]
        assert entry.revoked_at == at, folder
    before = {f: (snapshot(f), (f / keys.TRUSTED).stat().st_ino) for f in folders}
    keys.exchange(list(reversed(folders)))
    assert {f: (snapshot(f), (f / keys.TRUSTED).stat().st_ino) for f in folders} == before
    assert json.loads((folders[2] / keys.TRUSTED).read_text())["keys"]  # still a trusted-keys file
