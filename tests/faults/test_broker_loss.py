"""Losing a Kafka broker, or PostgreSQL, mid-job: one deterministic case per worst moment (issue 11).

What a broker's loss does depends on what it held at that moment: the runners' group coordinator, an
expander's transaction coordinator, the leadership of the executions topic's partitions, the active KRaft
controller. Killing "node 2" tests whatever node 2 happened to hold, so it passes one time in three. Here
each case asks the cluster which node holds its role (cluster_roles.py) and kills that node:

- a private 3-node cluster (replication factor 3, min.insync.replicas 2), made whole again before each case;
- a model server answering in 300 ms behind every region, BEACON_RUNNER_CONCURRENCY=4, the 8 × 3 × 3 job;
- the fault once ~10 rows are recorded (or a third of the model calls made: cells must be in flight); then
  exactly 72 distinct rows, `beacon status` says completed, at most 72 + 3 regions × the window of model
  calls, every service still running, and a follow-up job submitted after the fault (the expanders' next
  transaction, the workers' next cells) recorded as well.

Where Kafka lets the test choose, the role is put whole on one node, a different one each run: the three
runner groups get a namespace whose group ids all hash to partitions of __consumer_offsets led by that node,
and the executions topic is created with that node as every partition's preferred leader.

The same for a broker stopped and started again (one node; one of three) and for PostgreSQL stopped 30 s.
BEACON_FAULT_REPEAT=N runs every case N times; each run prints one line, and pytest's closing summary
("fault runs") repeats them with the pass count per case.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from beacon.deploy.local import kafka as local_kafka
from beacon.deploy.local import postgres as local_postgres
from beacon.deploy.local.__main__ import admin_settings
from beacon.infra import kafka
from beacon.infra.catalogues import DEFAULT
from beacon.infra.settings import Settings, state_dir
from beacon.infra.topics import declared
from beacon.schemas.topics import dead_letter_topic
from tests.faults import cluster_roles
from tests.faults.support import WINDOW, free_port_block, private_kafka, record_run, submit, write_routing
from tests.harness import Services
from tests.kafka_tools import message_count, wait_for_quiet
from tests.model_server import ModelServer
from tests.support import Infra, admin_security, beacon, isolated

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

CELLS = 72  # 8 questions × 3 models × 3 regions
MAX_CALLS = CELLS + len(DEFAULT.regions) * WINDOW  # after a fault, at most one window per region is called again
MODEL_DELAY_S = 0.3
ROWS_BEFORE_FAULT = 10
RECOVERY_S = 150  # from the fault to the 72nd row
FOLLOW_UP = {"questions": ["math_basic"], "models": ["mistral-7b"], "temperature": 0.7}  # 3 cells, told apart
FOLLOW_UP_CELLS = len(DEFAULT.regions)

REPEAT = int(os.environ.get("BEACON_FAULT_REPEAT", "1"))
RUNS = [pytest.param(i, id=f"run{i}") for i in range(1, REPEAT + 1)]

ROLES = {
    "group-coordinator": "the runners' group coordinator",
    "transaction-coordinator": "an expander's transaction coordinator",
    "executions-leader": "the executions topic's partition leader",
    "controller": "the active KRaft controller",
}


# --- clusters ------------------------------------------------------------------------------------------


def heal(cluster: local_kafka.KafkaCluster, timeout: float = 120) -> None:
    """Every node running, every replica in sync, every partition led by its preferred replica: the layout
    of a fresh cluster (Kafka's own rebalance would take up to 5 minutes to give leaderships back)."""
    deadline = time.monotonic() + timeout
    cluster.start(timeout)
    while lagging := cluster_roles.unbalanced_partitions(cluster.bootstrap):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the cluster is not whole after {timeout:.0f} s: {lagging[:5]} …")
        cluster_roles.elect_preferred_leaders(cluster.bootstrap)
        time.sleep(0.5)


@pytest.fixture(scope="module")
def three_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_kafka.KafkaCluster]:
    cluster = private_kafka(tmp_path_factory.mktemp("three-nodes"), 3)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def one_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_kafka.KafkaCluster]:
    cluster = private_kafka(tmp_path_factory.mktemp("one-node"), 1)
    yield cluster
    cluster.stop()


def whole(cluster: local_kafka.KafkaCluster) -> Iterator[local_kafka.KafkaCluster]:
    """The module's cluster made whole for one case (rebuilt from nothing if it cannot be); afterwards the
    case's topics are deleted, so the cluster does not grow from case to case."""
    try:
        heal(cluster)
    except Exception as exc:
        print(f"\nrebuilding the {cluster.nodes}-node cluster: {exc}")
        cluster.stop()
        shutil.rmtree(cluster.home, ignore_errors=True)
        heal(cluster)
    before = set(topic_names(cluster.bootstrap))
    yield cluster
    try:
        asyncio.run(delete_topics(cluster.bootstrap, sorted(set(topic_names(cluster.bootstrap)) - before)))
    except Exception as exc:  # a cluster left broken is rebuilt by the next case
        print(f"\ncould not delete the case's topics: {exc!r}")


@pytest.fixture
def cluster3(three_nodes: local_kafka.KafkaCluster) -> Iterator[local_kafka.KafkaCluster]:
    yield from whole(three_nodes)


@pytest.fixture
def cluster1(one_node: local_kafka.KafkaCluster) -> Iterator[local_kafka.KafkaCluster]:
    yield from whole(one_node)


def topic_names(bootstrap: str) -> list[str]:
    return list(cluster_roles.all_partitions(bootstrap))


async def delete_topics(bootstrap: str, topics: list[str]) -> None:
    if not topics:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **admin_security())
    await admin.start()
    try:
        await admin.delete_topics(topics)
    finally:
        await admin.close()


@pytest.fixture
def slow_model() -> Iterator[ModelServer]:
    server = ModelServer(delay_s=MODEL_DELAY_S)
    yield server
    server.close()


@pytest.fixture
def private_postgres(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Infra]:
    """A PostgreSQL server of our own on a free port: stopping the session's server would break every
    other test (and every other developer's run) using it. Yields the Infra to make databases on."""
    monkeypatch.setenv("BEACON_PG_PORT", str(free_port_block(1)))
    (tmp_path / "pg-state").mkdir()
    (tmp_path / "pg-state" / "secrets").symlink_to(state_dir() / "secrets")  # the session's role passwords
    cluster = local_postgres.PostgresCluster(tmp_path / "pg-state")
    cluster.start()
    try:
        yield Infra(kafka="", admin_db_url=local_postgres.admin_url(tmp_path / "pg-state", "postgres"))
    finally:
        cluster.stop()
        cluster.remove_outside()


# --- one case: a job, a fault, and everything checked after it -----------------------------------------


class CaseFailed(AssertionError):
    pass


@dataclass
class Case:
    name: str
    run: int
    settings: Settings
    stack: Services
    model: ModelServer
    job_id: str
    began: float = field(default_factory=time.monotonic)
    facts: dict[str, str] = field(default_factory=dict)

    def rows(self, job_id: str | None = None) -> int | None:
        try:
            with psycopg.connect(self.settings.database_url, connect_timeout=3) as conn:
                query = "SELECT count(*) FROM executions WHERE job_id = %s"
                return conn.execute(query, (job_id or self.job_id,)).fetchone()[0]
        except psycopg.OperationalError:
            return None  # the database is the fault

    def distinct(self) -> int:
        with psycopg.connect(self.settings.database_url) as conn:
            return conn.execute(
                "SELECT count(DISTINCT (region, model_id, coalesce(question_id, ''))) FROM executions "
                "WHERE job_id = %s",
                (self.job_id,),
            ).fetchone()[0]

    def calls(self, temperature: float = 0.1) -> int:
        """Model calls of the main job (temperature 0.1) or of the follow-up job (0.7)."""
        return sum(1 for body in list(self.model.requests) if body.get("temperature") == temperature)

    def check_alive(self, when: str, job_id: str | None = None, expected: int = CELLS) -> None:
        for name, proc in self.stack.procs.items():
            if proc.poll() is not None:
                rows = self.rows(job_id)
                raise CaseFailed(
                    f"service {name} exited with code {proc.returncode} {when}; "
                    f"{'?' if rows is None else rows} of {expected} rows of {job_id or self.job_id} recorded. "
                    f"Last lines of its log:\n{log_tail(self.stack, name)}"
                )

    def wait_rows(self, expected: int, timeout: float, when: str, job_id: str | None = None) -> float:
        """Wait until `expected` rows (of the main job, or of `job_id`); returns the seconds it took."""
        began = time.monotonic()
        while (self.rows(job_id) or 0) < expected:
            self.check_alive(when, job_id, expected)
            if time.monotonic() - began > timeout:
                logs = "\n".join(f"--- {name}\n{log_tail(self.stack, name, 12)}" for name in self.stack.procs)
                raise CaseFailed(
                    f"{self.rows(job_id)} of {expected} rows of {job_id or self.job_id} after {timeout:.0f} s {when}; "
                    f"every service is still running. Last lines of their logs:\n{logs}"
                )
            time.sleep(0.1)
        return time.monotonic() - began

    def wait_for_the_moment(self, job_id: str | None = None, temperature: float = 0.1) -> None:
        """Until ~10 rows are recorded, or a third of the model calls made (rows lag behind calls, and the
        whole job takes the model two seconds): the fault must find cells in flight."""
        began = time.monotonic()
        while (self.rows(job_id) or 0) < ROWS_BEFORE_FAULT and self.calls(temperature) < CELLS // 3:
            self.check_alive("before the fault", job_id)
            if time.monotonic() - began > 120:
                raise CaseFailed(
                    f"{self.rows(job_id)} rows, {self.calls(temperature)} model calls 120 s after submitting"
                )
            time.sleep(0.05)

    def check_job(self, max_calls: int) -> None:
        """The main job, once its 72nd row is in: no more rows coming, each cell once, completed, calls bounded."""
        # Duplicates, if any could slip in, are recorded once every stage has consumed everything (lag 0).
        wait_for_quiet(self.settings, self.stack.regions())
        found, distinct, calls = self.rows(), self.distinct(), self.calls()
        self.facts["rows"] = f"{found} ({distinct} distinct)"
        self.facts["model calls"] = f"{calls} (≤ {max_calls})"
        assert found == CELLS and distinct == CELLS, f"{found} rows, {distinct} distinct, for {CELLS} cells"
        status = self.status()
        self.facts["status"] = status
        assert status == "completed", f"beacon status says {status}"
        assert calls <= max_calls, f"{calls} model calls for {CELLS} cells; at most {max_calls} expected"

    def status(self, job_id: str | None = None) -> str:
        result = beacon(self.settings, "status", job_id or self.job_id, "--json")
        return json.loads(result.stdout)["status"] if result.returncode == 0 else f"error: {result.stderr[-300:]!r}"

    def line(self, outcome: str) -> str:
        facts = " | ".join(f"{k} {v}" for k, v in self.facts.items())
        took = time.monotonic() - self.began
        return f"FAULT RUN | {self.name} | run {self.run}/{REPEAT} | {facts} | case {took:.0f} s | {outcome}"


def log_tail(stack: Services, name: str, lines: int = 25) -> str:
    """The log's last lines: JSON lines shortened to what matters (tracebacks kept whole), a line repeated
    in a row (a library retrying) shown once with its count."""
    out: list[str] = []
    repeats = 0
    for raw in stack.log(name).splitlines()[-4 * lines :]:
        try:
            entry = json.loads(raw)
            keep = {k: v for k, v in entry.items() if k not in ("timestamp", "logger", "region")}
            exception = keep.pop("exception", None)
            text = json.dumps(keep)[:500] + (f"\n{exception}" if exception else "")
        except ValueError:
            text = raw[:500]
        if out and text == out[-1]:
            repeats += 1
            continue
        if repeats:
            out[-1] += f"  (×{repeats + 1})"
            repeats = 0
        out.append(text)
    if repeats:
        out[-1] += f"  (×{repeats + 1})"
    return "\n".join(out[-lines:])


def through_fault(
    case: Case,
    fault: Callable[[], str],
    max_calls: int = MAX_CALLS,
    between: Callable[[], str] | None = None,
    second_fault: Callable[[], str] | None = None,
) -> None:
    """Submit the job, strike at the moment (~10 rows), check everything; `between` the jobs, then a
    follow-up job (3 cells; or, with `second_fault`, a whole second job with that fault at its own
    moment), checked too. One line for the run, whatever happens."""
    passed, outcome = False, "FAIL"
    try:
        assert submit(case.settings, case.job_id) == CELLS
        case.wait_for_the_moment()
        rows, calls = case.rows(), case.calls()
        case.facts["fault at"] = f"{rows} rows, {calls} calls"
        case.facts["fault"] = fault()
        assert calls < CELLS, f"every model call had started before the fault ({rows} rows): nothing was in flight"
        when = f"after: {case.facts['fault']}"
        case.facts["72 rows"] = f"{case.wait_rows(CELLS, RECOVERY_S, when):.1f} s after the fault"
        case.check_job(max_calls)

        if between is not None:
            case.facts["between the jobs"] = between()
        follow_up, submitted = f"{case.job_id}-after", time.monotonic()
        spec, cells = (FOLLOW_UP, FOLLOW_UP_CELLS) if second_fault is None else ({"temperature": 0.7}, CELLS)
        assert submit(case.settings, follow_up, **spec) == cells
        if second_fault is not None:
            case.wait_for_the_moment(follow_up, temperature=0.7)
            case.facts["then at"] = f"{case.rows(follow_up)} rows of the next job"
            case.facts["then"] = second_fault()
            when = f"after: {case.facts['then']}"
        case.wait_rows(cells, RECOVERY_S, f"for a job submitted {when}", job_id=follow_up)
        took = time.monotonic() - submitted  # from `beacon submit` starting to the last row
        wait_for_quiet(case.settings, case.stack.regions())  # extra rows, if any could come, are in
        follow_rows = case.rows(follow_up)
        case.facts["next job"] = f"{follow_rows}/{cells} rows in {took:.1f} s, {case.calls(0.7)} calls"
        assert follow_rows == cells, f"{follow_rows} rows for the {cells} cells of the next job"
        assert case.status(follow_up) == "completed", f"the next job is {case.status(follow_up)}"
        assert case.calls(0.7) <= max_calls, f"{case.calls(0.7)} model calls for the next job's {cells} cells"
        case.check_alive("at the end")
        passed, outcome = True, "PASS"
    except AssertionError as exc:
        outcome = f"FAIL: {str(exc).splitlines()[0][:300]}"
        raise
    except Exception as exc:
        outcome = f"ERROR: {exc!r}"[:300]
        raise
    finally:
        record_run(case.name, passed, case.line(outcome))


def stack_with_model(
    settings: Settings, stack_factory: Callable[..., Services], model: ModelServer, folder: Path
) -> Services:
    routing = write_routing(folder / "routing.toml", model, list(DEFAULT.regions))
    return stack_factory(settings, routing)


def runner_pids(stack: Services) -> dict[str, int]:
    return {region: stack.procs[f"runner-{region}"].pid for region in DEFAULT.regions}


# --- the cases -----------------------------------------------------------------------------------------


def namespace_with_runner_groups_on(cluster: local_kafka.KafkaCluster, node: int) -> str:
    """A topic namespace whose three runner groups are all coordinated by `node`: losing it then takes
    every region's group coordinator at once, not one region's by luck."""
    leaders = cluster_roles.partition_leaders(cluster.bootstrap, "__consumer_offsets")
    for _ in range(10_000):
        namespace = f"test-{uuid.uuid4().hex[:10]}"
        groups = [f"{namespace}.runner.{region}" for region in DEFAULT.regions]
        if all(leaders[cluster_roles.coordinator_partition(g, len(leaders))] == node for g in groups):
            return namespace
    raise RuntimeError(f"no namespace puts every runner group on node {node}")


def namespace_with_executions_led_by(cluster: local_kafka.KafkaCluster, node: int) -> str:
    """A fresh namespace whose executions topic is created (before `isolated` grants and creates the rest)
    as the services would create it, except that `node` is the preferred leader of every partition: losing
    it then moves every partition's leadership at once."""
    namespace = f"test-{uuid.uuid4().hex[:10]}"
    settings = admin_settings(state_dir(), cluster.bootstrap, 3, BEACON_TOPIC_NAMESPACE=namespace)
    spec = next(t for t in declared(settings) if t.name == settings.topics.executions_completed)
    others = [n for n in (1, 2, 3) if n != node]
    assignment = {p: [node, *(others if p % 2 else others[::-1])] for p in range(spec.partitions)}

    async def create() -> None:
        admin = kafka.admin_client(settings)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(spec.name, -1, -1, assignment, spec.config)])
        finally:
            await admin.close()

    asyncio.run(create())
    return namespace


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("role", list(ROLES))
def test_sigkill_the_broker_holding(
    role: str,
    run: int,
    cluster3: local_kafka.KafkaCluster,
    infra: Infra,
    slow_model: ModelServer,
    stack_factory: Callable[..., Services],
    tmp_path: Path,
) -> None:
    """SIGKILL the node that holds `role` (asked of the cluster), never brought back. The runners' group
    coordinator and the executions topic's leadership are put whole on one node (a different one each
    run) so that its loss takes all of that role at once; an expander's transactional id contains its pid,
    so there the node coordinating most expanders is taken, and the line says which."""
    target = (run - 1) % 3 + 1
    env = {"BEACON_REPLICATION_FACTOR": "3", "BEACON_RUNNER_CONCURRENCY": str(WINDOW)}
    if role == "group-coordinator":
        env["BEACON_TOPIC_NAMESPACE"] = namespace_with_runner_groups_on(cluster3, target)
    elif role == "executions-leader":
        env["BEACON_TOPIC_NAMESPACE"] = namespace_with_executions_led_by(cluster3, target)
    with isolated(infra, kafka=cluster3.bootstrap, BEACON_DEADLINE_SWEEP_SECONDS="1", **env) as settings:
        stack = stack_with_model(settings, stack_factory, slow_model, tmp_path)
        # Who holds what, asked before the job starts: roles move only when a node fails or comes back.
        roles = cluster_roles.beacon_roles(cluster3.bootstrap, settings.topic_namespace, runner_pids(stack))
        node = roles.node_for(role)
        if role in ("group-coordinator", "executions-leader"):
            held = dict(roles.holders(role))
            assert set(held) == {target}, f"meant {role} all on node {target}; the cluster says {held}"
        case = Case(f"SIGKILL {ROLES[role]}", run, settings, stack, slow_model, f"kill-{role}")

        def kill() -> str:
            cluster3.kill_node(node)
            return f"SIGKILL node {node} ({', '.join(roles.held_by(node))})"

        through_fault(case, kill)
        assert cluster3.running_nodes() == sorted({1, 2, 3} - {node})  # finished without bringing it back


@pytest.mark.parametrize("run", RUNS)
def test_stop_and_restart_one_of_three_brokers(
    run: int,
    cluster3: local_kafka.KafkaCluster,
    infra: Infra,
    slow_model: ModelServer,
    stack_factory: Callable[..., Services],
    tmp_path: Path,
) -> None:
    """Stop (SIGTERM) the node holding the most roles mid-job: the job finishes on two nodes. Start the
    node again; then, mid-way through a second job, give it back its leaderships (a preferred-replica
    election, as Kafka's auto-rebalance does minutes after a node returns): both jobs exact."""
    env = {"BEACON_REPLICATION_FACTOR": "3", "BEACON_RUNNER_CONCURRENCY": str(WINDOW)}
    with isolated(infra, kafka=cluster3.bootstrap, BEACON_DEADLINE_SWEEP_SECONDS="1", **env) as settings:
        stack = stack_with_model(settings, stack_factory, slow_model, tmp_path)
        roles = cluster_roles.beacon_roles(cluster3.bootstrap, settings.topic_namespace, runner_pids(stack))
        node = roles.node_for("busiest")
        case = Case("stop and restart 1 of 3 brokers", run, settings, stack, slow_model, "restart-one-of-three")

        def stop() -> str:
            began = time.monotonic()
            cluster3.stop_node(node)
            return f"stopped node {node} ({', '.join(roles.held_by(node))}) in {time.monotonic() - began:.1f} s"

        def start_again() -> str:
            began = time.monotonic()
            cluster3.start()
            return f"node {node} started again, ready in {time.monotonic() - began:.1f} s"

        def hand_back() -> str:
            stuck = cluster_roles.elect_preferred_leaders(cluster3.bootstrap)
            return f"leaderships handed back to node {node}" + (f" but not {stuck[:3]}" if stuck else "")

        through_fault(case, stop, between=start_again, second_fault=hand_back)


@pytest.mark.parametrize("run", RUNS)
def test_stop_and_restart_the_only_broker(
    run: int,
    cluster1: local_kafka.KafkaCluster,
    infra: Infra,
    slow_model: ModelServer,
    stack_factory: Callable[..., Services],
    tmp_path: Path,
) -> None:
    """A single-node cluster stopped (SIGTERM) and started again 5 s later, mid-job."""
    with isolated(
        infra, kafka=cluster1.bootstrap, BEACON_RUNNER_CONCURRENCY=str(WINDOW), BEACON_DEADLINE_SWEEP_SECONDS="1"
    ) as settings:
        stack = stack_with_model(settings, stack_factory, slow_model, tmp_path)
        case = Case("stop and restart the only broker", run, settings, stack, slow_model, "restart-only-broker")

        def stop_and_start() -> str:
            began = time.monotonic()
            cluster1.stop()
            time.sleep(5)
            cluster1.start()
            return f"stopped the broker, back {time.monotonic() - began:.1f} s after the stop began"

        through_fault(case, stop_and_start)


@pytest.mark.parametrize("run", RUNS)
def test_postgres_stopped_30_s_mid_job(
    run: int,
    infra: Infra,
    private_postgres: Infra,
    slow_model: ModelServer,
    stack_factory: Callable[..., Services],
    tmp_path: Path,
) -> None:
    """PostgreSQL (a private server) stopped for 30 s mid-job: results wait in Kafka, the recorder waits for
    the database (never skips or dead-letters), the runners never notice."""
    cluster = local_postgres.PostgresCluster(tmp_path / "pg-state")
    with isolated(
        Infra(kafka=infra.kafka, admin_db_url=private_postgres.admin_db_url),
        BEACON_RUNNER_CONCURRENCY=str(WINDOW),
        BEACON_DEADLINE_SWEEP_SECONDS="1",
    ) as settings:
        stack = stack_with_model(settings, stack_factory, slow_model, tmp_path)
        case = Case("PostgreSQL stopped 30 s", run, settings, stack, slow_model, "postgres-30s")

        def outage() -> str:
            cluster.stop()
            down = time.monotonic()
            while time.monotonic() - down < 30:
                case.check_alive("while PostgreSQL was down")
                time.sleep(0.5)
            cluster.start()
            return "PostgreSQL stopped 30 s"

        # The runners never touch the database: not one model call is repeated.
        through_fault(case, outage, max_calls=CELLS)
        assert re.search(r"database_unavailable", stack.log("recorder")), "the recorder never noticed the outage"
        executions_dlq = dead_letter_topic(settings.topics.executions_completed)
        assert message_count(settings, executions_dlq) == 0
