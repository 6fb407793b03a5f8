"""Who may do what on Kafka: every service's principal (a SCRAM-SHA-512 credential) and its ACLs, made with
the admin principal. `plan` is the policy, as data; `grant` applies it to one topic namespace.

Each principal gets only its own topics, consumer groups and transactional-id prefix:
- submitter: write jobs.submitted;
- runner-<region>: read jobs.submitted (in its region's expander group), read and write its own region's
  work and expansion topics (and their groups, and its transactional ids `<ns>.expander.<region>.*`), write
  executions.completed and the dead-letter topics of what it reads;
- recorder: read every projected topic in its group (`<ns>.recorder*`), write executions.completed (the
  deadline's timeouts) and the dead-letter topics of what it reads.
Nobody but admin (a super user) may create or delete topics, alter configs, or touch another's group. The
topics themselves are created here, by admin, so no service needs the right to create one.

aiokafka's admin client has no call for SCRAM credentials or for several ACLs at once, so the two Kafka
requests are spelled out here from the protocol (AlterUserScramCredentials v0, CreateAcls v1).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka.conn import create_conn
from aiokafka.errors import for_code
from aiokafka.protocol.admin import CreateAclsRequest_v1
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import CompactArray, CompactBytes, CompactString, Int8, Int16, Int32, Schema, TaggedFields

from beacon.infra import topics as topic_specs
from beacon.infra.settings import Settings
from beacon.schemas.topics import Groups, Principals, Topics, dead_letter_topic

# Kafka's protocol codes (org.apache.kafka.common.acl / resource).
TOPIC, GROUP, TRANSACTIONAL_ID = 2, 3, 5
READ, WRITE, DESCRIBE, DESCRIBE_CONFIGS = 3, 4, 8, 10
LITERAL, PREFIXED = 3, 4
ALLOW = 3
SCRAM_SHA_512, SCRAM_ITERATIONS = 2, 4096


class AccessError(RuntimeError):
    pass


@dataclass(frozen=True)
class Acl:
    principal: str
    resource_type: int
    name: str
    pattern: int
    operation: int


def _topic(principal: str, name: str, *operations: int, pattern: int = LITERAL) -> list[Acl]:
    return [Acl(principal, TOPIC, name, pattern, op) for op in (DESCRIBE, *operations)]


def _submitter(namespace: str) -> list[Acl]:
    return _topic(Principals.SUBMITTER, Topics(namespace).jobs_submitted, WRITE)


def _recorder(namespace: str, regions: Iterable[str]) -> list[Acl]:
    t, g, rec = Topics(namespace), Groups(namespace), Principals.RECORDER
    acls = _topic(rec, t.jobs_submitted, READ) + _topic(rec, t.executions_completed, READ, WRITE)
    acls += _topic(rec, f"{namespace}.jobs.expanded.", READ, pattern=PREFIXED)  # every region's, by pattern
    acls += [a for name in t.all() for a in _topic(rec, dead_letter_topic(name), WRITE)]
    acls += [Acl(rec, GROUP, g.recorder, PREFIXED, READ)]  # its group, and a second one for a re-projection
    acls += [a for region in regions for a in _topic(rec, dead_letter_topic(t.expanded(region)), WRITE)]
    return acls


def _runner(namespace: str, region: str) -> list[Acl]:
    t, g, run = Topics(namespace), Groups(namespace), Principals.runner(region)
    acls = _topic(run, t.jobs_submitted, READ) + _topic(run, t.executions_completed, WRITE)
    acls += _topic(run, t.work(region), READ, WRITE) + _topic(run, t.expanded(region), READ, WRITE)
    for read in (t.jobs_submitted, t.work(region)):
        acls += _topic(run, dead_letter_topic(read), WRITE)
    acls += [Acl(run, GROUP, g.expander(region), LITERAL, READ), Acl(run, GROUP, g.runner(region), LITERAL, READ)]
    # The expander's transactional ids are `<its group>.<instance>`: the trailing dot keeps region
    # us-east out of us-east-2's.
    acls += [Acl(run, TRANSACTIONAL_ID, f"{g.expander(region)}.", PREFIXED, op) for op in (WRITE, DESCRIBE)]
    return acls


def _mirror(namespace: str, region: str, reads: list[str], writes: list[str]) -> list[Acl]:
    """One end of a region's link: read what leaves this cluster, write what arrives, and the link's own
    bookkeeping (Connect's storage topics, made by admin; its worker group)."""
    t, who = Topics(namespace), Principals.mirror(region)
    acls = [a for name in reads for a in _topic(who, name, READ)]
    acls += [a for name in writes for a in _topic(who, name, WRITE)]
    acls += _topic(who, t.mirror_prefix(region), READ, WRITE, DESCRIBE_CONFIGS, pattern=PREFIXED)
    return [*acls, Acl(who, GROUP, Groups(namespace).mirror(region), LITERAL, READ)]


def plan(namespace: str, regions: Iterable[str]) -> list[Acl]:
    """Every ACL of every service principal for one namespace and these regions, on one cluster for all."""
    regions = list(regions)
    return _submitter(namespace) + _recorder(namespace, regions) + [a for r in regions for a in _runner(namespace, r)]


def central_plan(namespace: str, regions: Iterable[str]) -> list[Acl]:
    """The central cluster of the regional topology: submitter and recorder, and each region's link, which
    may read the jobs and write that region's results and expansions. No runner has a principal here."""
    t, regions = Topics(namespace), list(regions)
    acls = _submitter(namespace) + _recorder(namespace, regions)
    return acls + [a for r in regions for a in _mirror(namespace, r, t.to_region(), t.from_region(r))]


def regional_plan(namespace: str, region: str) -> list[Acl]:
    """A region's own cluster: its runner, and its link, which may write the jobs and read the results."""
    t = Topics(namespace)
    return _runner(namespace, region) + _mirror(namespace, region, t.from_region(region), t.to_region())


def principals(regions: Iterable[str]) -> list[str]:
    return [Principals.SUBMITTER, Principals.RECORDER, *(Principals.runner(r) for r in regions)]


# --- the two requests ------------------------------------------------------------------------------


class _ScramResponse(Response):
    API_KEY = 51
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "results",
            CompactArray(
                ("user", CompactString("utf-8")),
                ("error_code", Int16),
                ("error_message", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _ScramRequestV0(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 51
    API_VERSION = 0
    RESPONSE_TYPE = _ScramResponse
    SCHEMA = Schema(
        ("deletions", CompactArray(("name", CompactString("utf-8")), ("mechanism", Int8), ("tags", TaggedFields))),
        (
            "upsertions",
            CompactArray(
                ("name", CompactString("utf-8")),
                ("mechanism", Int8),
                ("iterations", Int32),
                ("salt", CompactBytes),
                ("salted_password", CompactBytes),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _UpsertScram(Request[_ScramRequestV0]):
    API_KEY = 51

    def __init__(self, passwords: dict[str, str]) -> None:
        self.passwords = passwords

    def build(self, request_struct_class: type[_ScramRequestV0]) -> _ScramRequestV0:
        upsertions = []
        for name, password in self.passwords.items():
            salt = os.urandom(32)
            salted = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, SCRAM_ITERATIONS)
            upsertions.append((name, SCRAM_SHA_512, SCRAM_ITERATIONS, salt, salted, {}))
        return request_struct_class([], upsertions, {})


class _CreateAcls(Request[CreateAclsRequest_v1]):
    API_KEY = 30

    def __init__(self, acls: list[Acl]) -> None:
        self.acls = acls

    def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> CreateAclsRequest_v1:
        rows = [(a.resource_type, a.name, a.pattern, f"User:{a.principal}", "*", a.operation, ALLOW) for a in self.acls]
        return request_struct_class(rows)


async def _send(admin: Settings, request: Request) -> object:
    from beacon.infra import kafka

    host, port = admin.kafka_bootstrap_servers.split(",")[0].rsplit(":", 1)
    conn = await create_conn(host, int(port), request_timeout_ms=15000, **kafka.security(admin))
    try:
        return await conn.send(request)
    finally:
        conn.close()


def grant(
    admin: Settings,
    passwords: dict[str, str],
    regions: Iterable[str],
    acls: list[Acl] | None = None,
    topics: Iterable[topic_specs.TopicSpec] | None = None,
) -> None:
    """Give every principal its password (idempotent: the same password salted anew), its ACLs for the
    admin settings' namespace (`plan`'s, unless given), and create the namespace's topics (those declared for
    the regions, unless given)."""
    regions = list(regions)

    async def apply() -> None:
        answer = await _send(admin, _UpsertScram(passwords))
        for user, code, message, _ in answer.results:  # type: ignore[attr-defined]
            if code:
                raise AccessError(f"Kafka refused the SCRAM credential of {user}: {for_code(code).__name__} {message}")
        answer = await _send(admin, _CreateAcls(plan(admin.topic_namespace, regions) if acls is None else acls))
        for code, message in answer.creation_responses:  # type: ignore[attr-defined]
            if code:
                raise AccessError(f"Kafka refused an ACL: {for_code(code).__name__} {message}")
        await topic_specs.ensure(admin, regions=regions, specs=topics)

    asyncio.run(apply())
