"""The regional topology, for real: the session's Kafka as the central cluster (this module's own namespace,
database and keys), one KRaft cluster per region, one MirrorMaker 2 process per region's link, the recorder
centrally and each region's runner on its own cluster only, each region calling a model server of its own.
Every service, cluster and link is a real process, stopped or killed by its own PID; rows and model calls
are counted.

One topology for the whole module (starting it takes ~40 s): each case submits a job of its own, so they
share it, and leave every link and cluster running when they end (each heals what it breaks).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from beacon.deploy.local import credentials
from beacon.deploy.local.regions import Topology
from beacon.infra import keys
from beacon.infra.catalogues import DEFAULT
from beacon.infra.settings import Settings
from beacon.schemas.events import ExecutionCompleted
from beacon.schemas.topics import Principals, dead_letter_topic
from tests.faults.support import WINDOW, free_port_block, record_run, submit, wait_until, write_routing
from tests.harness import Services, count_rows
from tests.kafka_tools import produce, read_all
from tests.model_server import ModelServer
from tests.support import Infra, beacon, isolated

pytestmark = pytest.mark.faults

REGIONS = list(DEFAULT.regions)
CELLS = 72  # the seed's job: 8 questions × 3 models × 3 regions
PER_REGION = CELLS // len(REGIONS)
IN_FLIGHT = WINDOW * len(DEFAULT.models)  # a runner's calls in flight at once: each model's route has WINDOW


@dataclass
class Regional:
    settings: Settings  # the central cluster and database, as their admin
    topo: Topology
    services: Services
    servers: dict[str, ModelServer]  # each region's own model server: its calls are that region's

    def region(self, region: str) -> Settings:
        """The admin of `region`'s own cluster, in this module's namespace."""
        return self.topo[region].admin(self.settings.topic_namespace)

    def calls(self) -> int:
        return sum(s.calls for s in self.servers.values())

    def rows(self, job_id: str) -> dict[tuple[str, str], int]:
        """(region, status) → rows of the job."""
        with psycopg.connect(self.settings.database_url) as conn:
            found = conn.execute(
                "SELECT region, status, count(*) FROM executions WHERE job_id = %s GROUP BY 1, 2", (job_id,)
            ).fetchall()
        return {(region, status): n for region, status, n in found}

    def status(self, job_id: str) -> str:
        result = beacon(self.settings, "status", job_id, "--json")
        assert result.returncode == 0, result.stderr.decode()
        return json.loads(result.stdout)["status"]

    def wait_rows(self, job_id: str, expected: int, timeout: float = 90) -> None:
        def enough() -> bool:
            self.services.assert_alive()
            return count_rows(self.settings, job_id) >= expected

        wait_until(enough, timeout, f"{expected} rows of {job_id}")

    def settle(self, job_id: str, seconds: float = 3.0) -> int:
        """The job's rows once nothing has changed for `seconds` (a duplicate, if any could come, would by then)."""
        last, since = count_rows(self.settings, job_id), time.monotonic()
        while time.monotonic() - since < seconds:
            time.sleep(0.25)
            now = count_rows(self.settings, job_id)
            if now != last:
                last, since = now, time.monotonic()
        return last


@pytest.fixture(scope="module")
def regional(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Regional]:
    folder = tmp_path_factory.mktemp("regions")
    env = {
        "BEACON_RUNNER_CONCURRENCY": str(WINDOW),
        "BEACON_DEADLINE_SWEEP_SECONDS": "1",
        "BEACON_KEYS_DIR": str(folder / "central-keys"),  # this module's own trust domain, centrally too
    }
    # No regions: no runner has a principal or a topic on the central cluster.
    with isolated(infra, regions=[], **env) as settings:
        base = free_port_block(2 * len(REGIONS))
        topo = Topology(infra.state, settings, {r: base + 2 * i for i, r in enumerate(REGIONS)}, home=folder)
        servers = {r: ModelServer(delay_s=0.1) for r in REGIONS}
        services = Services(settings, folder)
        began = time.monotonic()
        try:
            topo.up()
            services.start("recorder", "recorder")
            for r in REGIONS:
                routing = write_routing(folder / f"routing-{r}.toml", servers[r], [r])
                services.start(f"runner-{r}", "runner", "--region", r, BEACON_ROUTING_FILE=str(routing), **topo.env(r))
            print(f"\nregional topology up in {time.monotonic() - began:.1f} s")
            yield Regional(settings, topo, services, servers)
        finally:
            services.stop_all()
            topo.stop()
            for server in servers.values():
                server.close()


def _first_call(server: ModelServer, since: int, timeout: float = 60) -> None:
    wait_until(lambda: server.calls > since, timeout, "the region's first model call")


def _rows_of(regional: Regional, job_id: str, region: str, status: str | None = None) -> int:
    return sum(n for (r, s), n in regional.rows(job_id).items() if r == region and status in (None, s))


# --- the seed's job ----------------------------------------------------------------------------------


def test_the_seed_job_on_the_regional_topology(regional: Regional) -> None:
    expected = submit(regional.settings, "regions-seed")
    assert expected == CELLS
    regional.wait_rows("regions-seed", CELLS)
    assert regional.settle("regions-seed") == CELLS
    assert regional.rows("regions-seed") == {(r, "completed"): PER_REGION for r in REGIONS}
    assert {r: s.calls for r, s in regional.servers.items()} == {r: PER_REGION for r in REGIONS}
    assert regional.status("regions-seed") == "completed"
    # Each region's cluster holds the job (its link brought it) and its own results, no other region's.
    for r in REGIONS:
        mine = regional.region(r)
        assert [rec.key for rec in read_all(mine, mine.topics.jobs_submitted)].count(b"regions-seed") == 1
        results = read_all(mine, mine.topics.executions_completed)
        assert {ExecutionCompleted.model_validate_json(rec.value).region for rec in results} == {r}
        assert len(results) == PER_REGION


# --- (a) a link cut mid-job, back before the deadline ------------------------------------------------


def test_a_link_cut_mid_job_heals_before_the_deadline(regional: Regional) -> None:
    far = "asia-pacific"
    server, link = regional.servers[far], regional.topo[far].link
    calls, far_calls = regional.calls(), server.calls
    server.delay_s = 1.0  # its cells stay in flight while the link is cut
    try:
        submit(regional.settings, "regions-cut")
        _first_call(server, far_calls)
        link.stop()  # cut off: its runner goes on, its results wait on its own cluster
        others = [r for r in REGIONS if r != far]
        wait_until(
            lambda: sum(_rows_of(regional, "regions-cut", r) for r in others) == 2 * PER_REGION,
            60,
            "the other regions' cells",
        )
        wait_until(lambda: server.calls - far_calls >= PER_REGION, 60, "the cut region's calls")
        time.sleep(1.5)  # its last answers are written to its own cluster
        crossed = _rows_of(regional, "regions-cut", far)
        assert crossed < PER_REGION  # some of its cells had yet to cross when the link went
        link.start()
        regional.wait_rows("regions-cut", CELLS)
        assert regional.settle("regions-cut") == CELLS
    finally:
        server.delay_s = 0.1
        link.start()
    assert regional.rows("regions-cut") == {(r, "completed"): PER_REGION for r in REGIONS}
    assert regional.status("regions-cut") == "completed"
    assert regional.calls() - calls == CELLS  # the cut cost no model call
    record_run(
        "regions: link cut, healed before the deadline",
        True,
        f"REGIONS | link cut | {crossed} of {far}'s {PER_REGION} cells crossed before the cut | rows {CELLS} | "
        f"calls {regional.calls() - calls}",
    )


# --- (b) a link back after the deadline: late answers supersede the timeouts ---------------------------


def test_late_answers_after_the_deadline_supersede_its_timeouts(regional: Regional) -> None:
    far = "asia-pacific"
    server, link = regional.servers[far], regional.topo[far].link
    calls, far_calls = regional.calls(), server.calls
    server.delay_s = 1.0
    try:
        submit(regional.settings, "regions-late", deadline_seconds=15)
        _first_call(server, far_calls)
        link.stop()
        wait_until(lambda: server.calls - far_calls >= PER_REGION, 60, "the cut region's calls")
        # The deadline passes with the region still cut off: its missing cells are recorded as timeouts.
        regional.wait_rows("regions-late", CELLS, timeout=60)
        timed_out = _rows_of(regional, "regions-late", far, "timeout")
        assert timed_out > 0
        assert regional.status("regions-late") == "partial"
        link.start()  # the region's real answers arrive, late
        wait_until(lambda: _rows_of(regional, "regions-late", far, "timeout") == 0, 60, "late answers recorded")
        assert regional.settle("regions-late") == CELLS
    finally:
        server.delay_s = 0.1
        link.start()
    assert regional.rows("regions-late") == {(r, "completed"): PER_REGION for r in REGIONS}
    assert regional.status("regions-late") == "completed"
    assert regional.calls() - calls == CELLS
    with psycopg.connect(regional.settings.database_url) as conn:
        # Each superseded row is its real result's, signed event and all (the read API checks one against the other).
        stale = conn.execute(
            "SELECT count(*) FROM executions WHERE job_id = 'regions-late' AND (event::jsonb)->>'status' <> status",
        ).fetchone()[0]
    assert stale == 0
    record_run(
        "regions: link healed after the deadline",
        True,
        f"REGIONS | late link | {timed_out} timeouts superseded by real answers | rows {CELLS} | calls {CELLS}",
    )


# --- (c) a region's cluster killed and restarted --------------------------------------------------------


def test_a_regional_cluster_killed_and_restarted(regional: Regional) -> None:
    region = "eu-west"
    cluster, server = regional.topo[region].cluster, regional.servers[region]
    calls, region_calls = regional.calls(), server.calls
    server.delay_s = 0.5
    try:
        submit(regional.settings, "regions-broker")
        _first_call(server, region_calls)
        cluster.kill_node(1)  # SIGKILL: its runner and its link lose their only broker mid-job
        time.sleep(3)
        cluster.start()
        regional.wait_rows("regions-broker", CELLS, timeout=180)
        assert regional.settle("regions-broker", 5) == CELLS
    finally:
        server.delay_s = 0.1
        cluster.start()
    assert regional.rows("regions-broker") == {(r, "completed"): PER_REGION for r in REGIONS}
    again = regional.calls() - calls - CELLS
    assert 0 <= again <= IN_FLIGHT  # a cell called twice only if it was in flight at the crash
    record_run(
        "regions: regional cluster killed",
        True,
        f"REGIONS | {region} Kafka SIGKILLed | rows {CELLS} | calls {CELLS} + {again} repeated (bound {IN_FLIGHT})",
    )


# --- (d) MirrorMaker killed and restarted -------------------------------------------------------------


def test_mirrormaker_killed_and_restarted_redelivers_and_counts_do_not_move(regional: Regional) -> None:
    region = "us-east"
    link, server = regional.topo[region].link, regional.servers[region]
    calls = regional.calls()
    server.delay_s = 0.3
    try:
        submit(regional.settings, "regions-mm2")
        # Kill it between copying results and recording how far it got (it records that every 2 s).
        wait_until(lambda: _rows_of(regional, "regions-mm2", region) >= 4, 60, "results crossing the link")
        link.kill()
        link.start()
        regional.wait_rows("regions-mm2", CELLS)
        assert regional.settle("regions-mm2") == CELLS
    finally:
        server.delay_s = 0.1
        link.start()
    assert regional.rows("regions-mm2") == {(r, "completed"): PER_REGION for r in REGIONS}
    assert regional.calls() - calls == CELLS
    central = regional.settings
    copies = [r for r in read_all(central, central.topics.executions_completed) if r.key.startswith(b"regions-mm2|")]
    assert len(copies) >= CELLS
    record_run(
        "regions: MirrorMaker killed",
        True,
        f"REGIONS | {region} link SIGKILLed | {len(copies) - CELLS} results copied twice | rows {CELLS} | "
        f"calls {CELLS}",
    )


# --- security across the links ----------------------------------------------------------------------


def test_a_region_receives_only_its_own_jobs(regional: Regional) -> None:
    submit(regional.settings, "regions-two", regions=["us-east", "eu-west"])
    regional.wait_rows("regions-two", 2 * PER_REGION)
    assert regional.settle("regions-two") == 2 * PER_REGION
    for r in REGIONS:
        mine = regional.region(r)
        keys_there = [rec.key for rec in read_all(mine, mine.topics.jobs_submitted)]
        assert (b"regions-two" in keys_there) == (r != "asia-pacific"), r


def test_an_event_forged_on_a_regional_cluster_is_refused_centrally(regional: Regional, tmp_path: Path) -> None:
    """Whoever holds a region's cluster can write to it; the centre acts only on what that region's key signed."""
    central, region = regional.settings, "us-east"
    mine = regional.region(region)
    [genuine] = [
        ExecutionCompleted.model_validate_json(r.value)
        for r in read_all(mine, mine.topics.executions_completed)
        if r.key == b"regions-seed|us-east|mistral-7b|math_basic"
    ]
    edited = genuine.model_copy(update={"answer": "5", "event_id": genuine.event_id.__class__(int=1)})
    # Another key of the same binding, in no trusted file; the region's own key claiming another region.
    keys.ensure(tmp_path, [("runner", region)])
    stranger = keys.signer(tmp_path, "runner", region).sign(edited)
    own = keys.signer(regional.topo[region].folder / "keys", "runner", region)
    as_eu = own.sign(
        edited.model_copy(
            update={"region": "eu-west", "producer": edited.producer.model_copy(update={"region": "eu-west"})}
        )
    )
    unsigned = edited.model_copy(update={"signature": None})
    forged = [(e.key.encode(), e.model_dump_json().encode()) for e in (stranger, as_eu, unsigned)]
    before = regional.rows("regions-seed")
    produce(mine, mine.topics.executions_completed, forged)
    dlq = dead_letter_topic(central.topics.executions_completed)

    def refusals() -> list[str]:
        return [
            dict(r.headers).get("beacon.error", b"").decode()
            for r in read_all(central, dlq)
            if r.value in {v for _, v in forged}
        ]

    wait_until(lambda: len(refusals()) == 3, 60, "the forged events dead-lettered centrally")
    reasons = sorted(refusals())
    assert [r.split(")")[0] for r in reasons] == ["refused (unknown_key", "refused (unsigned", "refused (wrong_region"]
    assert regional.rows("regions-seed") == before


def test_each_principal_may_do_only_its_own_work_across_the_links(regional: Regional) -> None:
    import asyncio

    central = regional.settings
    t = central.topics

    def client_options(state: Path, principal: str) -> dict[str, object]:
        return {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": principal,
            "sasl_plain_password": credentials.password(state, "kafka", principal),
        }

    async def may_write(servers: str, options: dict[str, object], topic: str) -> bool:
        producer = AIOKafkaProducer(bootstrap_servers=servers, request_timeout_ms=5000, **options)
        try:
            await producer.start()
            await asyncio.wait_for(producer.send_and_wait(topic, b"probe"), 10)
            return True
        except (TimeoutError, KafkaError):
            return False
        finally:
            await producer.stop()

    async def may_read(servers: str, options: dict[str, object], topic: str) -> bool:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=servers, group_id=None, **options)  # no group to refuse
        try:
            await consumer.start()
            await consumer.getmany(timeout_ms=3000)
            return True
        except KafkaError:
            return False
        finally:
            await consumer.stop()

    state, us = regional.topo.state, regional.topo["us-east"]
    mirror_central = client_options(state, Principals.mirror("us-east"))
    mirror_region = client_options(us.folder, Principals.mirror("us-east"))
    runner_region = client_options(us.folder, Principals.runner("us-east"))
    central_servers, region_servers = central.kafka_bootstrap_servers, us.cluster.bootstrap

    async def probe() -> dict[str, bool]:
        return {
            # What it must do (so a refusal below is the ACL's, not a broken client's) …
            "link reads jobs centrally": await may_read(central_servers, mirror_central, t.jobs_submitted),
            "link reads results on its region": await may_read(region_servers, mirror_region, t.executions_completed),
            # … and what it must not: the link writes only what comes back from its region, under its name.
            "link writes jobs centrally": await may_write(central_servers, mirror_central, t.jobs_submitted),
            "link writes another region's expansions": await may_write(
                central_servers, mirror_central, t.expanded("eu-west")
            ),
            "link reads the recorder's dead letters": await may_read(
                central_servers, mirror_central, dead_letter_topic(t.executions_completed)
            ),
            "link reads results centrally": await may_read(central_servers, mirror_central, t.executions_completed),
            "link writes its region's work": await may_write(region_servers, mirror_region, t.work("us-east")),
            "link writes results on its region": await may_write(region_servers, mirror_region, t.executions_completed),
            # The runner's password is its region's: the central cluster does not know it.
            "runner reaches the central cluster": await may_write(
                central_servers, runner_region, t.executions_completed
            ),
        }

    allowed = asyncio.run(probe())
    assert allowed == {
        "link reads jobs centrally": True,
        "link reads results on its region": True,
        "link writes jobs centrally": False,
        "link writes another region's expansions": False,
        "link reads the recorder's dead letters": False,
        "link reads results centrally": False,
        "link writes its region's work": False,
        "link writes results on its region": False,
        "runner reaches the central cluster": False,
    }


def test_no_link_stores_or_logs_a_password(regional: Regional) -> None:
    """Connect keeps its connectors' configs in a topic: the links' passwords must be named there, not held."""
    central = regional.settings
    for r in REGIONS:
        region = regional.topo[r]
        secrets = [
            credentials.password(regional.topo.state, "kafka", Principals.mirror(r)),
            credentials.password(region.folder, "kafka", Principals.mirror(r)),
        ]
        configs = central.topics.mirror_internal(r)["configs"]
        stored = [rec.value or b"" for where in (central, regional.region(r)) for rec in read_all(where, configs)]
        assert stored  # the connectors' configs are there …
        assert not [v for v in stored for pw in secrets if pw.encode() in v]  # … without the passwords
        written = region.link.log.read_bytes() + region.link.properties_file.read_bytes()
        assert not [pw for pw in secrets if pw.encode() in written]


# --- replay, after all of the above -------------------------------------------------------------------


def test_replay_on_the_central_cluster_rebuilds_identical_tables(regional: Regional) -> None:
    result = beacon(regional.settings, "replay", "recorder", timeout=300)
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode() + out
    print("\n" + out)
    assert "identical: the rebuilt tables match the old ones" in out
    for job_id in ("regions-seed", "regions-cut", "regions-late", "regions-broker", "regions-mm2"):
        assert regional.rows(job_id) == {(r, "completed"): PER_REGION for r in REGIONS}, job_id
