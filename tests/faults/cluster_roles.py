"""Which node of a Kafka cluster holds which role right now, asked of the cluster itself.

- group coordinator of a group id, transaction coordinator of a transactional id: FindCoordinator;
- leaders of a topic's partitions: Metadata;
- the active KRaft controller: DescribeQuorum (API 55), which aiokafka does not implement, so its
  version 0 is declared here with aiokafka's own protocol types. A broker forwards it to the active
  controller. (kafka-tools' MetadataQuorumCommand answers the same, but costs 84 jars and ~2.5 s of
  JVM start per question; this costs one round trip.)

And one action: `elect_preferred_leaders` (ElectLeaders, API 43, also not in aiokafka) gives every
partition back to its preferred replica, as Kafka's own auto-rebalance does minutes after a node returns.

Every question is sent to one live node, retried while the cluster says "not available yet".
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from aiokafka.conn import AIOKafkaConnection, create_conn
from aiokafka.errors import for_code
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.coordination import FindCoordinatorRequest
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.protocol.types import (
    Array,
    CompactArray,
    CompactString,
    Int8,
    Int16,
    Int32,
    Int64,
    Schema,
    String,
    TaggedFields,
)

from tests.support import admin_security

GROUP, TRANSACTION = 0, 1  # FindCoordinator key types


# --- DescribeQuorum v0 (KIP-595), flexible from v0 ---------------------------------------------------

_REPLICAS = CompactArray(("replica_id", Int32), ("log_end_offset", Int64), ("tags", TaggedFields))


class DescribeQuorumResponse_v0(Response):
    API_KEY = 55
    API_VERSION = 0
    SCHEMA = Schema(
        ("error_code", Int16),
        (
            "topics",
            CompactArray(
                ("topic_name", CompactString("utf-8")),
                (
                    "partitions",
                    CompactArray(
                        ("partition_index", Int32),
                        ("error_code", Int16),
                        ("leader_id", Int32),
                        ("leader_epoch", Int32),
                        ("high_watermark", Int64),
                        ("current_voters", _REPLICAS),
                        ("observers", _REPLICAS),
                        ("tags", TaggedFields),
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class DescribeQuorumRequest_v0(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 55
    API_VERSION = 0
    RESPONSE_TYPE = DescribeQuorumResponse_v0
    SCHEMA = Schema(
        (
            "topics",
            CompactArray(
                ("topic_name", CompactString("utf-8")),
                ("partitions", CompactArray(("partition_index", Int32), ("tags", TaggedFields))),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class DescribeQuorumRequest(Request[DescribeQuorumRequest_v0]):
    """The state of the metadata log's Raft quorum: __cluster_metadata, partition 0."""

    API_KEY = 55

    def build(self, request_struct_class: type[DescribeQuorumRequest_v0]) -> DescribeQuorumRequest_v0:
        return request_struct_class([("__cluster_metadata", [(0, {})], {})], {})


# --- ElectLeaders v1 (KIP-460): election type 0 = preferred replica -------------------------------------


class ElectLeadersResponse_v1(Response):
    API_KEY = 43
    API_VERSION = 1
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        (
            "replica_election_results",
            Array(
                ("topic", String("utf-8")),
                (
                    "partition_result",
                    Array(("partition_id", Int32), ("error_code", Int16), ("error_message", String("utf-8"))),
                ),
            ),
        ),
    )


class ElectLeadersRequest_v1(RequestStruct):
    API_KEY = 43
    API_VERSION = 1
    RESPONSE_TYPE = ElectLeadersResponse_v1
    SCHEMA = Schema(
        ("election_type", Int8),
        ("topic_partitions", Array(("topic", String("utf-8")), ("partition_id", Array(Int32)))),
        ("timeout_ms", Int32),
    )


class ElectLeadersRequest(Request[ElectLeadersRequest_v1]):
    """A preferred-replica election for every partition of every topic (topic_partitions null)."""

    API_KEY = 43

    def build(self, request_struct_class: type[ElectLeadersRequest_v1]) -> ElectLeadersRequest_v1:
        return request_struct_class(0, None, 30_000)


# --- asking ------------------------------------------------------------------------------------------

T = TypeVar("T")


class NotYet(Exception):
    """The cluster cannot say yet (a coordinator or a leader is being chosen): ask again."""


async def _ask(addresses: list[str], question: Callable[[AIOKafkaConnection], Awaitable[T]], wait_s: float) -> T:
    """`question` on a connection to the first node that answers, again until it answers or `wait_s` pass."""
    deadline = asyncio.get_running_loop().time() + wait_s
    last: Exception | None = None
    while True:
        for address in addresses:
            host, port = address.rsplit(":", 1)
            try:
                conn = await create_conn(host, int(port), request_timeout_ms=5000, **admin_security())
            except Exception as exc:  # refused, timed out: try the next node
                last = exc
                continue
            try:
                return await question(conn)
            except Exception as exc:
                last = exc
            finally:
                conn.close()
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"no node of {addresses} could answer within {wait_s:.0f} s: {last!r}")
        await asyncio.sleep(0.2)


def _run(addresses: list[str] | str, question: Callable[[AIOKafkaConnection], Awaitable[T]], wait_s: float) -> T:
    if isinstance(addresses, str):
        addresses = addresses.split(",")
    return asyncio.run(_ask(addresses, question, wait_s))


async def _coordinator(conn: AIOKafkaConnection, key: str, key_type: int) -> int:
    found = await conn.send(FindCoordinatorRequest(key, key_type))
    if found.error_code:
        raise NotYet(f"FindCoordinator({key!r}, type {key_type}): {for_code(found.error_code).__name__}")
    return found.coordinator_id


async def _leaders(conn: AIOKafkaConnection, topic: str) -> dict[int, int]:
    answer = (await conn.send(MetadataRequest([topic], allow_auto_topic_creation=False))).to_object()
    (found,) = answer["topics"]
    if found["error_code"] or not found["partitions"]:
        raise NotYet(f"metadata of {topic}: error {found['error_code']}, {len(found['partitions'])} partitions")
    return {p["partition"]: p["leader"] for p in found["partitions"]}


async def _controller(conn: AIOKafkaConnection) -> int:
    answer = (await conn.send(DescribeQuorumRequest())).to_object()
    partition = answer["topics"][0]["partitions"][0] if answer["topics"] else {}
    if answer["error_code"] or not partition or partition["error_code"] or partition["leader_id"] < 0:
        raise NotYet(f"DescribeQuorum: {answer}")
    return partition["leader_id"]


async def _every_topic(conn: AIOKafkaConnection) -> dict[str, list[dict]]:
    answer = (await conn.send(MetadataRequest(None, allow_auto_topic_creation=False))).to_object()
    return {t["topic"]: t["partitions"] for t in answer["topics"]}


def all_partitions(bootstrap: list[str] | str, wait_s: float = 30) -> dict[str, list[dict]]:
    """Every topic (Kafka's own included) → its partitions: partition, leader, replicas, isr."""
    return _run(bootstrap, _every_topic, wait_s)


def unbalanced_partitions(bootstrap: list[str] | str, wait_s: float = 30) -> list[str]:
    """Partitions not led by their preferred (first) replica, or with a replica out of sync: empty when
    the cluster has the layout a fresh one has."""
    return [
        f"{topic}-{p['partition']} (leader {p['leader']}, replicas {p['replicas']}, in sync {p['isr']})"
        for topic, partitions in all_partitions(bootstrap, wait_s).items()
        for p in partitions
        if p["leader"] != p["replicas"][0] or sorted(p["isr"]) != sorted(p["replicas"])
    ]


ELECTION_NOT_NEEDED = 84  # the preferred replica already leads


async def _elect(conn: AIOKafkaConnection) -> list[str]:
    answer = (await conn.send(ElectLeadersRequest())).to_object()
    if answer["error_code"]:
        raise NotYet(f"ElectLeaders: {for_code(answer['error_code']).__name__}")
    return [
        f"{result['topic']}-{p['partition_id']}: {for_code(p['error_code']).__name__}"
        for result in answer["replica_election_results"]
        for p in result["partition_result"]
        if p["error_code"] not in (0, ELECTION_NOT_NEEDED)
    ]


def elect_preferred_leaders(bootstrap: list[str] | str, wait_s: float = 30) -> list[str]:
    """Give every partition back to its preferred replica; returns the partitions that could not move
    (their preferred replica is not in sync yet)."""
    return _run(bootstrap, _elect, wait_s)


def group_coordinator(bootstrap: list[str] | str, group_id: str, wait_s: float = 30) -> int:
    return _run(bootstrap, lambda c: _coordinator(c, group_id, GROUP), wait_s)


def transaction_coordinator(bootstrap: list[str] | str, transactional_id: str, wait_s: float = 30) -> int:
    return _run(bootstrap, lambda c: _coordinator(c, transactional_id, TRANSACTION), wait_s)


def partition_leaders(bootstrap: list[str] | str, topic: str, wait_s: float = 30) -> dict[int, int]:
    """partition → the node leading it (-1: none)"""
    return _run(bootstrap, lambda c: _leaders(c, topic), wait_s)


def active_controller(bootstrap: list[str] | str, wait_s: float = 30) -> int:
    """The node id of the KRaft quorum's leader: the active controller."""
    return _run(bootstrap, _controller, wait_s)


# --- where Kafka puts a coordinator --------------------------------------------------------------------


def java_string_hash(text: str) -> int:
    """Java's String.hashCode (UTF-16 code units, 32-bit signed)."""
    h = 0
    raw = text.encode("utf-16-be")
    for i in range(0, len(raw), 2):
        h = (31 * h + int.from_bytes(raw[i : i + 2], "big")) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def coordinator_partition(key: str, partitions: int = 50) -> int:
    """The partition of __consumer_offsets (a group id) or __transaction_state (a transactional id) whose
    leader coordinates `key`: Kafka's Utils.abs(key.hashCode()) % partitions (50 by default, both)."""
    h = java_string_hash(key)
    return 0 if h == -(1 << 31) else abs(h) % partitions


# --- Beacon's roles ----------------------------------------------------------------------------------


def expander_transactional_id(namespace: str, region: str, runner_pid: int, host: str | None = None) -> str:
    """The transactional id of a runner's expander: f"{group}.{instance}" with the group
    f"{namespace}.expander.{region}" and the instance f"expander-{region}@{hostname}:{pid}"
    (services/runner/expander.py and beacon.infra.kafka.instance_id)."""
    return f"{namespace}.expander.{region}.expander-{region}@{host or socket.gethostname()}:{runner_pid}"


@dataclass
class Roles:
    """Who held what at one moment: each role's holder, by node."""

    runner_groups: dict[str, int] = field(default_factory=dict)  # region → its worker group's coordinator
    expander_transactions: dict[str, int] = field(default_factory=dict)  # region → its txn coordinator
    executions_leaders: dict[int, int] = field(default_factory=dict)  # partition → leader
    controller: int = -1

    def held_by(self, node: int) -> list[str]:
        held = [f"group coordinator of runner.{r}" for r, n in self.runner_groups.items() if n == node]
        held += [f"txn coordinator of expander.{r}" for r, n in self.expander_transactions.items() if n == node]
        led = sum(1 for n in self.executions_leaders.values() if n == node)
        if led:
            held.append(f"leader of {led}/{len(self.executions_leaders)} executions partitions")
        if self.controller == node:
            held.append("active controller")
        return held

    def holders(self, role: str) -> Counter[int]:
        """node → how much of `role` it holds ("busiest": every role counted, one per partition led)."""
        if role == "busiest":
            every = [*self.runner_groups.values(), *self.expander_transactions.values()]
            return Counter([*every, *self.executions_leaders.values(), self.controller])
        return Counter(
            {
                "group-coordinator": list(self.runner_groups.values()),
                "transaction-coordinator": list(self.expander_transactions.values()),
                "executions-leader": list(self.executions_leaders.values()),
                "controller": [self.controller],
            }[role]
        )

    def node_for(self, role: str) -> int:
        """The node to stop for `role`: the one holding most of it (ties: the lowest node id)."""
        counts = self.holders(role)
        return min((n for n in counts if n >= 0), key=lambda n: (-counts[n], n))

    def describe(self) -> str:
        nodes = sorted(n for n in self.holders("busiest") if n >= 0)
        return "; ".join(f"node {n}: {', '.join(self.held_by(n))}" for n in nodes)


def beacon_roles(bootstrap: str, namespace: str, runner_pids: dict[str, int], wait_s: float = 30) -> Roles:
    """The roles Beacon's runners and recorder depend on, from the cluster's metadata, in one go."""

    async def ask(conn: AIOKafkaConnection) -> Roles:
        return Roles(
            runner_groups={r: await _coordinator(conn, f"{namespace}.runner.{r}", GROUP) for r in runner_pids},
            expander_transactions={
                r: await _coordinator(conn, expander_transactional_id(namespace, r, pid), TRANSACTION)
                for r, pid in runner_pids.items()
            },
            executions_leaders=await _leaders(conn, f"{namespace}.executions.completed"),
            controller=await _controller(conn),
        )

    return _run(bootstrap, ask, wait_s)
