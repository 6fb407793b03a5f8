"""Kafka clients configured the one way Beacon uses them.

Producers are idempotent with acks=all, so a retried send never writes twice and an acknowledged
event survives a broker loss. Consumers never auto-commit: each service commits an offset only after
the effect of the message is durable (invariant 2), and starts from the earliest offset when its group
is new, so a job submitted before a runner first started is not skipped.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import errors as kafka_errors
from aiokafka.structs import ConsumerRecord, OffsetAndTimestamp, TopicPartition
from pydantic import BaseModel, ValidationError

from beacon.infra import logs, metrics
from beacon.infra.keys import Verifier
from beacon.infra.settings import Settings
from beacon.schemas.events import parse_event
from beacon.schemas.topics import dead_letter_topic

if TYPE_CHECKING:
    from aiokafka.admin import AIOKafkaAdminClient

log = logs.get("beacon.infra.kafka")

# Larger than any valid event; bigger messages are dead-lettered, not parsed.
MAX_EVENT_BYTES = 1_000_000
# How much a consumer that reads in bulk (the recorder, a replay) fetches at once: per partition, and per fetch
# from a broker (which bounds what it holds). With the client's 1 MiB per partition the recorder ran out of
# records every few batches and waited ~100 ms for the next fetch; with 8 MiB it never waited (bench.run).
BULK_FETCH = {"max_partition_fetch_bytes": 8 * 1024 * 1024, "fetch_max_bytes": 32 * 1024 * 1024}
# The beacon.error header of a dead letter is cut at this many characters.
MAX_ERROR_HEADER_CHARS = 4000


def instance_id(service: str) -> str:
    return f"{service}@{socket.gethostname()}:{os.getpid()}"


def security(settings: Settings) -> dict[str, object]:
    """How every client of Beacon's authenticates: SASL/SCRAM-SHA-512 as the settings' principal (over loopback
    or a private network; put TLS in front for the open internet), or PLAINTEXT when the settings say so."""
    if settings.kafka_security == "plaintext":
        return {"security_protocol": "PLAINTEXT"}
    return {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        # aiokafka refuses a None user for SASL; an empty one is then refused by the broker, with the hint below.
        "sasl_plain_username": settings.kafka_username or "",
        "sasl_plain_password": settings.kafka_password or "",
    }


def credentials_problem(settings: Settings, exc: BaseException) -> str | None:
    """What to do about an authentication or authorization failure, naming the setting; None for others."""
    who = settings.kafka_username or "(no principal)"
    if isinstance(exc, kafka_errors.SaslAuthenticationFailed | kafka_errors.AuthenticationFailedError):
        return (
            f"Kafka at {settings.kafka_bootstrap_servers} refused the password of principal {who}, read from "
            f"{settings.kafka_credentials_from}. Check that setting (`make up` writes each service's password to "
            f"{settings.secrets_dir}/kafka/)."
        )
    if isinstance(exc, FATAL) and "Authorization" in type(exc).__name__:
        return (
            f"Kafka principal {who} is not allowed to do this ({describe(exc)}); each service may touch only its "
            "own topics, groups and transactional ids (README, Security model). Run it as the right service."
        )
    return None


async def authenticate(settings: Settings) -> None:
    """Log in once to a bootstrap server, so a refused password fails the service at start, with
    credentials_problem's message, instead of being retried for ever: aiokafka's clients wrap a refused
    login in a connection error, which Beacon waits out like any other (is_transient)."""
    if settings.kafka_security == "plaintext":
        log.warning("kafka_plaintext", note="BEACON_KAFKA_SECURITY=plaintext: no authentication, no authorization")
        return
    from aiokafka.conn import create_conn

    last: Exception | None = None
    for address in settings.kafka_bootstrap_servers.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            conn = await create_conn(host, int(port), request_timeout_ms=5000, **security(settings))
        except kafka_errors.SaslAuthenticationFailed:
            raise
        except Exception as exc:  # that server is away: try the next; none answering is transient
            last = exc
            continue
        conn.close()
        return
    raise kafka_errors.KafkaConnectionError(f"no bootstrap server answered: {last}")


def producer(settings: Settings, **overrides: object) -> AIOKafkaProducer:
    options: dict[str, object] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        **security(settings),
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 5,
        "max_request_size": MAX_EVENT_BYTES * 2,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def consumer(settings: Settings, *topics: str, group_id: str, **overrides: object) -> AIOKafkaConsumer:
    options: dict[str, object] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        **security(settings),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


# --- transient and fatal failures ------------------------------------------------------------------

# Failures no retry can mend: a principal without rights, a transactional id taken over by a newer
# instance, a broker too old. Anything else a Kafka client raises — a node not ready, a connection
# lost, a leader or coordinator moving, a request timing out, a rebalance — passes once the cluster
# settles: the service waits and goes on, it never exits for it.
FATAL = (
    kafka_errors.ProducerFenced,
    kafka_errors.TransactionalIdAuthorizationFailed,
    kafka_errors.TopicAuthorizationFailedError,
    kafka_errors.GroupAuthorizationFailedError,
    kafka_errors.ClusterAuthorizationFailedError,
    kafka_errors.SaslAuthenticationFailed,
    kafka_errors.AuthenticationFailedError,
    kafka_errors.UnsupportedVersionError,
    kafka_errors.IncompatibleBrokerVersion,
    kafka_errors.InvalidTopicError,
    kafka_errors.KafkaConfigurationError,
)


async def reachable(settings: Settings) -> None:
    """Raises unless the cluster answers a metadata request within 3 s (a readiness check)."""
    admin = admin_client(settings, request_timeout_ms=3000)
    try:
        await admin.start()
        await admin.list_topics()
    finally:
        await admin.close()


def admin_client(settings: Settings, **overrides: object) -> AIOKafkaAdminClient:
    from aiokafka.admin import AIOKafkaAdminClient

    return AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, **security(settings), **overrides)


def is_transient(exc: BaseException) -> bool:
    """Whether waiting and trying again can succeed: every Kafka error but the FATAL ones, and the
    connection and timeout errors of the network below."""
    if isinstance(exc, FATAL):
        return False
    return isinstance(exc, kafka_errors.KafkaError | ConnectionError | TimeoutError)


def describe(exc: BaseException) -> str:
    """One line naming the error once (aiokafka's messages already start with the class name)."""
    text, name = str(exc).strip(), type(exc).__name__
    return (text if name in text[:80] else f"{name}: {text}")[:300]


class Backoff:
    """Exponential backoff with full jitter, starting over once things have gone well for a while."""

    def __init__(self, first: float = 0.2, most: float = 10.0, rand: Callable[[], float] = random.random) -> None:
        self.first, self.most, self.rand = first, most, rand
        self.attempt = 0

    def next(self) -> float:
        self.attempt += 1
        return self.first + self.rand() * min(self.most, self.first * 2**self.attempt)

    def reset(self) -> None:
        self.attempt = 0


T = TypeVar("T")


async def retrying(
    what: str,
    op: Callable[[], Awaitable[T]],
    *,
    give_up_after_s: float | None = None,
    on_wait: Callable[[str, float], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """`op()` until it succeeds, waiting out transient Kafka failures; fatal ones, and transient ones past
    `give_up_after_s`, are raised. `on_wait(error, seconds)` says what is being waited for."""
    backoff = Backoff()
    began = time.monotonic()
    while True:
        try:
            return await op()
        except Exception as exc:
            if not is_transient(exc):
                raise
            wait = backoff.next()
            if give_up_after_s is not None and time.monotonic() - began + wait > give_up_after_s:
                raise
            if on_wait is not None:
                on_wait(describe(exc), wait)
            else:
                log.warning("kafka_unavailable", waiting_for=what, error=describe(exc), retry_in_s=round(wait, 2))
            await sleep(wait)


async def supervised(name: str, run: Callable[[], Awaitable[None]], healthy_after_s: float = 60.0) -> None:
    """Run a consumer loop; when a transient Kafka failure escapes it, start it again, fresh, after a
    backoff. Every loop commits offsets only after its effects are durable, so a restart here is as safe
    as a process restart (its uncommitted records are delivered again) — without the process exiting.
    A fatal failure is logged and raised: the process ends, and is safe to start again once it is mended."""
    backoff = Backoff(first=0.5, most=15.0)
    while True:
        began = time.monotonic()
        try:
            await run()
            return
        except Exception as exc:
            if not is_transient(exc):
                log.error("kafka_fatal", component=name, error=describe(exc))
                raise
            if time.monotonic() - began > healthy_after_s:
                backoff.reset()
            wait = backoff.next()
            metrics.KAFKA_RESTARTS.labels(name).inc()
            log.warning("kafka_unavailable_restarting", component=name, error=describe(exc), retry_in_s=round(wait, 2))
            await asyncio.sleep(wait)


SEND_PATIENCE_S = 300.0


async def send(producer: AIOKafkaProducer, topic: str, value: bytes, key: bytes | None = None, **kw: object) -> None:
    """send_and_wait, waiting out transient failures: an event whose effect already happened (a model
    was called) is not dropped for a broker that is briefly away. A retried send may write the event
    twice; consumers are idempotent, so that is harmless. Past SEND_PATIENCE_S the failure is raised, for
    the supervisor to start the component again with a fresh producer."""
    await retrying(
        f"send to {topic}",
        lambda: producer.send_and_wait(topic, value, key=key, **kw),
        give_up_after_s=SEND_PATIENCE_S,
    )


async def dead_letter(
    producer: AIOKafkaProducer, record: ConsumerRecord, error: str, consumer: str, in_transaction: bool = False
) -> None:
    """Park a message that can never be processed, with its original bytes and where it came from.
    Inside a transaction it becomes visible when the caller commits, together with the offsets; there a
    failed send is not retried (the transaction is aborted and the batch consumed again)."""
    headers = [
        ("beacon.error", error[:MAX_ERROR_HEADER_CHARS].encode()),
        ("beacon.consumer", consumer.encode()),
        ("beacon.source.topic", record.topic.encode()),
        ("beacon.source.partition", str(record.partition).encode()),
        ("beacon.source.offset", str(record.offset).encode()),
    ]
    if in_transaction:
        await producer.send_and_wait(dead_letter_topic(record.topic), record.value, key=record.key, headers=headers)
    else:
        await send(producer, dead_letter_topic(record.topic), record.value or b"", key=record.key, headers=headers)
    metrics.DEAD_LETTERS.labels(record.topic).inc()
    log.warning(
        "dead_lettered", topic=record.topic, partition=record.partition, offset=record.offset, error=error[:300]
    )


E = TypeVar("E", bound=BaseModel)


class Poison(ValueError):
    """A message that no retry can make valid: it goes to the dead-letter topic."""


def read_event(record: ConsumerRecord, *accepted: type[E], trust: Verifier) -> E:
    """Decode one record into one of the accepted event types, signed by a trusted key of the binding that
    may make it (beacon.domain.signing), or raise Poison saying why not."""
    size = len(record.value or b"")
    if size > MAX_EVENT_BYTES:
        raise Poison(f"message of {size} bytes exceeds the {MAX_EVENT_BYTES}-byte limit")
    try:
        event = parse_event(record.value or b"")
    except ValidationError as exc:
        raise Poison(f"not a valid event: {exc}") from None
    if not isinstance(event, accepted):
        raise Poison(f"{event.event_type} does not belong on {record.topic}")
    refused = trust.refusal(record.value or b"")
    if refused is not None:
        raise Poison(str(refused))
    return event


# --- reading a topic from a position to its current end (replays, catch-ups, tools) ----------------


async def partitions(
    consumer: AIOKafkaConsumer, topics: list[str], wait_s: float = 30.0, *, existing_only: bool = False
) -> list[TopicPartition]:
    """Every partition of `topics`. A topic created a moment ago (by another service) may not be in the
    brokers' metadata yet: ask again until it is, rather than act as if it had no partitions. With
    `existing_only`, topics the cluster does not have at all are left out instead (a dead-letter topic
    nobody has made yet holds nothing)."""
    if existing_only:
        existing = await consumer.topics()
        topics = [t for t in topics if t in existing]
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        await consumer._client.force_metadata_update()
        found = {t: sorted(consumer.partitions_for_topic(t) or []) for t in topics}
        missing = [t for t, parts in found.items() if not parts]
        if not missing:
            return [TopicPartition(t, p) for t, parts in found.items() for p in parts]
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"topics {missing} have no partitions in the cluster's metadata after {wait_s:.0f} s")
        await asyncio.sleep(0.2)


async def read_until(
    consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]
) -> AsyncIterator[list[ConsumerRecord]]:
    """Yield batches until every partition's position reaches its end offset."""
    while pending := unfinished({tp: await consumer.position(tp) for tp in ends}, ends):
        batch = await consumer.getmany(*pending, timeout_ms=500)
        records = [r for recs in batch.values() for r in recs]
        if records:
            yield records


def unfinished(positions: dict[TopicPartition, int], ends: dict[TopicPartition, int]) -> list[TopicPartition]:
    """The partitions whose position is short of its end offset. Positions, not record offsets, decide:
    transaction markers take offsets too, so the last record's offset + 1 may still be short of the end."""
    return [tp for tp, end in ends.items() if positions[tp] < end]


def start_offsets(
    found: dict[TopicPartition, OffsetAndTimestamp | None], ends: dict[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """Where to start each partition, from offsets_for_times: at the first record at or after the time,
    or at the end where there is none (every record there is older)."""
    return {tp: end if (hit := found.get(tp)) is None else hit.offset for tp, end in ends.items()}


class TopicReader:
    """Reading topics outside any consumer group (replays, catch-ups, tools): the one way Beacon does it.

    A consumer of no group, assigned every partition of `topics` (a topic created a moment ago is waited
    for, see `partitions`; with `existing_only`, topics the cluster lacks are left out), placed at the
    beginning — or, with `since`, at the first record at or after that time (at the end of a partition
    with none). `to_end()` yields batches up to the end offsets of the moment it is called, then stops;
    call it again to read what arrived meanwhile. Keyword arguments override the consumer's options
    (fetch_max_wait_ms, isolation_level, ...).

        async with kafka.TopicReader(settings, [topic]) as reader:
            async for records in reader.to_end():
                ...
    """

    def __init__(
        self,
        settings: Settings,
        topics: Iterable[str],
        *,
        since: datetime | None = None,
        existing_only: bool = False,
        pattern: str | None = None,
        **overrides: object,
    ) -> None:
        self.settings = settings
        self.topics = list(topics)
        self.pattern = pattern
        self.since = since
        self.existing_only = existing_only
        self.overrides = overrides
        self.consumer: AIOKafkaConsumer | None = None
        self.assigned: list[TopicPartition] = []

    async def start(self) -> None:
        """Assign and place the partitions; on failure the consumer is stopped and the error raised."""
        self.consumer = reader = consumer(self.settings, group_id=None, **self.overrides)
        try:
            await reader.start()
            if self.pattern is not None:
                found = sorted(t for t in await reader.topics() if re.match(self.pattern, t))
                self.topics += [t for t in found if t not in self.topics]
            self.assigned = await partitions(reader, self.topics, existing_only=self.existing_only)
            if not self.assigned:
                return
            reader.assign(self.assigned)
            if self.since is None:
                starts = await reader.beginning_offsets(self.assigned)
            else:
                at = int(self.since.timestamp() * 1000)
                # The end offsets first: a record written between the two calls is then before the end
                # taken (so read), where the other order would start past it and never read it.
                ends = await reader.end_offsets(self.assigned)
                found = await reader.offsets_for_times(dict.fromkeys(self.assigned, at))
                starts = start_offsets(found, ends)
            # Explicit offsets, not seek_to_beginning/seek_to_end: aiokafka (0.14) applies the reset that
            # assign() began (to the earliest offset) over a seek_to_* made before that reset finished.
            for tp, offset in starts.items():
                reader.seek(tp, offset)
        except BaseException:
            await self.stop()
            raise

    async def end_offsets(self) -> dict[TopicPartition, int]:
        """The end offset of every assigned partition, now."""
        if self.consumer is None:
            raise RuntimeError("TopicReader used before start()")
        return await self.consumer.end_offsets(self.assigned) if self.assigned else {}

    async def to_end(self) -> AsyncIterator[list[ConsumerRecord]]:
        """Batches of records, up to the end offsets of the moment it is called."""
        ends = await self.end_offsets()
        if ends:
            assert self.consumer is not None
            async for records in read_until(self.consumer, ends):
                yield records

    async def stop(self) -> None:
        if self.consumer is not None:
            reader, self.consumer = self.consumer, None
            await reader.stop()

    async def __aenter__(self) -> TopicReader:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
