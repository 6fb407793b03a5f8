"""The submitter's effects, in order: make sure the jobs topic exists, claim the job id in `submissions`
(atomic, so a resubmission never makes a second job), then JobSubmitted on the jobs topic, keyed by job_id,
acknowledged by all replicas. The decisions are decide.py's (pure); the producer and the database connections
come from bootstrap.py.

The HTTP service checks the schema and creates missing topics once, at its start; `beacon submit` does neither
(an extra connection and an admin client, for every job): a missing table or topic is reported where it is
met, before anything is registered (NotMigrated, MissingTopic)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Protocol, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka import errors as kafka_errors
from aiokafka.protocol.metadata import MetadataRequest
from psycopg import AsyncConnection
from psycopg import errors as pg_errors
from psycopg.types.json import Jsonb

from beacon.infra import db, kafka, logs, tokens
from beacon.infra.keys import Signer
from beacon.infra.settings import Settings
from beacon.infra.tokens import Token
from beacon.schemas.commands import JobSpec
from beacon.schemas.events import JobSubmitted, ProducerInfo, encode, now
from beacon.schemas.topics import region_header
from beacon.submitter import quota
from beacon.submitter.decide import job_submitted, legacy_spec_sha256, registered

log = logs.get("beacon.submitter")


@dataclass(frozen=True)
class Submitted:
    job_id: str
    expected_executions: int
    already_submitted: bool = False

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {"job_id": self.job_id, "expected_executions": self.expected_executions}
        if self.already_submitted:
            out["already_submitted"] = True
        return out


T = TypeVar("T")


class NotMigrated(RuntimeError):
    """The registry's table (or a column of it) is missing: `beacon migrate` has not run on this database."""


class MissingTopic(RuntimeError):
    """The jobs topic does not exist, so no job can be emitted; nothing was registered."""


class Connections(Protocol):
    """Where the registry's connections come from (bootstrap.py): a pool for the HTTP service, one connection for
    `beacon submit`. A `connection()` block is one transaction: committed when it ends, rolled back on error."""

    async def open(self) -> None: ...

    def connection(self) -> AbstractAsyncContextManager[AsyncConnection[Any]]: ...

    async def close(self) -> None: ...


class Publisher:
    """Holds one producer and the database connections for the life of the HTTP service; the CLI uses it for
    a single job. `checks_at_start`: check the schema and create missing topics in start() (the HTTP
    service, which starts once); without, neither is done (`beacon submit`, which starts for every job)."""

    def __init__(
        self,
        settings: Settings,
        new_producer: Callable[[], AIOKafkaProducer],
        new_connections: Callable[[], Connections],
        new_signer: Callable[[], Signer],
        kafka_wait_s: float = 10.0,
        on_wait: Callable[[str, float], None] | None = None,
        checks_at_start: bool = True,
    ) -> None:
        self.settings = settings
        self.new_producer = new_producer
        self.new_connections = new_connections
        self.new_signer = new_signer  # the submitter's key: runners and the recorder act only on jobs it signed
        self.signer: Signer | None = None  # read in start(): no key, no start (keys.KeysError says what to do)
        # How long to wait out an unavailable broker (a node restarting, a leader moving) before giving up;
        # on_wait(error, seconds) tells the person waiting what for.
        self.kafka_wait_s = kafka_wait_s
        self.on_wait = on_wait
        self.checks_at_start = checks_at_start
        self.topic = settings.topics.jobs_submitted
        self.producer: AIOKafkaProducer | None = None  # made in start(): aiokafka needs the running loop
        self.connections: Connections | None = None
        self.info = ProducerInfo(service="submitter", instance=kafka.instance_id("submitter"))

    async def start(self) -> None:
        self.signer = self.new_signer()
        if self.checks_at_start:
            db.require_current(self.settings.database_url)  # `beacon migrate` (make up) made the registry table
        self.connections = self.new_connections()
        await self.connections.open()  # first: a stopped or refusing server is said at once, not after Kafka's wait
        await self._waiting("Kafka", self._start_kafka)

    async def _start_kafka(self) -> None:
        if self.checks_at_start:
            from beacon.infra import topics  # the admin client: `beacon submit` never loads it

            await topics.ensure(self.settings)  # logs in first, so a refused password is said as such
        producer = self.new_producer()
        try:
            try:
                with nullcontext() if self.checks_at_start else _bootstrap_unlogged():
                    await producer.start()
            except kafka_errors.KafkaConnectionError:
                # aiokafka reports a refused password as an unreachable cluster (and it would be waited out):
                # only now, on failure, log in once more to tell which (SaslAuthenticationFailed is fatal).
                if not self.checks_at_start:
                    await kafka.authenticate(self.settings)
                raise
            await self._require_topic(producer)
        except BaseException:
            await producer.stop()
            raise
        self.producer = producer

    async def _require_topic(self, producer: AIOKafkaProducer) -> None:
        """Ask for the jobs topic's metadata once, before any job id is claimed: a send to a missing topic
        would wait out the producer's whole request timeout, after the claim. The answer primes the producer,
        whose send then needs no metadata request of its own, so this costs no extra round trip."""
        client = producer.client
        node = client.get_random_node()
        if node is None:
            raise kafka_errors.NodeNotReadyError("no broker known after bootstrap")
        answer = await client.send(node, MetadataRequest([self.topic], allow_auto_topic_creation=False))
        # Each topic's entry starts (error_code, name, …) in every version of the response.
        codes = {entry[1]: entry[0] for entry in answer.topics}
        error = kafka_errors.for_code(codes.get(self.topic, kafka_errors.UnknownTopicOrPartitionError.errno))
        if error is kafka_errors.UnknownTopicOrPartitionError:
            raise MissingTopic(
                f"Kafka at {self.settings.kafka_bootstrap_servers} has no topic {self.topic}, so no job can be "
                f"submitted; nothing was registered. `make up` creates the topics of namespace "
                f"{self.settings.topic_namespace!r} (on a cluster of yours, `python -m beacon.deploy.local init`); "
                "if that is not your namespace, set BEACON_TOPIC_NAMESPACE"
            )
        if error is kafka_errors.TopicAuthorizationFailedError:  # fatal, and named by kafka.credentials_problem
            raise error(
                f"topic {self.topic}: namespace {self.settings.topic_namespace!r} grants this principal nothing "
                "(`make up` grants it)"
            )
        if error is not kafka_errors.NoError:  # a leader being elected passes: waited out
            raise error(f"metadata of topic {self.topic}")
        client.cluster.update_metadata(answer)

    async def _waiting(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        return await kafka.retrying(what, op, give_up_after_s=self.kafka_wait_s, on_wait=self.on_wait)

    async def stop(self) -> None:
        """Also after a start() that failed half-way: whatever was opened is closed."""
        if self.producer is not None:
            await self.producer.stop()
        if self.connections is not None:
            await self.connections.close()

    async def token(self, token: str) -> Token | None:
        """The live API token `token` is, or None (unknown or revoked)."""
        assert self.connections is not None, "Publisher.start() first"
        async with self.connections.connection() as conn:
            return await tokens.lookup(conn, token)

    async def register(
        self, event: JobSubmitted, token: Token | None = None, legacy_sha256: str | None = None
    ) -> tuple[JobSubmitted, bool]:
        """Claim the job id in the database (atomic: no check-then-insert). Returns the event to emit and
        whether the id was already registered with the same spec; raises JobConflict otherwise (decide.py).
        A new job submitted with `token` is charged to its daily quota in the same transaction: over it,
        OverQuota is raised and the claim is undone with the rest (a repeat is not charged again)."""
        assert self.connections is not None, "Publisher.start() first"
        async with self.connections.connection() as conn:  # one transaction: committed when the block ends
            claimed = await (
                await conn.execute(
                    "INSERT INTO submissions (job_id, spec_sha256, event, token_id) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT DO NOTHING RETURNING job_id",
                    (
                        event.job_id,
                        event.spec_sha256,
                        Jsonb(event.model_dump(mode="json")),
                        token.token_id if token else None,
                    ),
                )
            ).fetchone()
            if claimed:
                if token is not None:
                    await _charge(conn, token, event.expected_executions)
                return registered(event, None)
            row = await (
                await conn.execute("SELECT spec_sha256, event FROM submissions WHERE job_id = %s", (event.job_id,))
            ).fetchone()
        assert row is not None  # claimed by someone else, and rows are never deleted
        return registered(event, row[0], row[1], legacy_sha256)

    async def submit(self, spec: JobSpec, token: Token | None = None) -> Submitted:
        """Register and emit one job; with `token` (an HTTP caller), within the token's quotas."""
        assert self.signer is not None, "Publisher.start() first"
        fresh: JobSubmitted = self.signer.sign(
            job_submitted(
                spec,
                self.settings.catalogue,
                now=now(),
                default_deadline_seconds=self.settings.default_deadline_seconds,
                producer=self.info,
            )
        )
        if token is not None and (over := quota.per_job(token, fresh.expected_executions)):
            raise over
        legacy = legacy_spec_sha256(spec, self.settings.catalogue) if spec.job_id else None
        try:
            event, repeat = await self.register(fresh, token, legacy)
        except (pg_errors.UndefinedTable, pg_errors.UndefinedColumn) as exc:
            # Never migrated, or by an older Beacon: the statement failed, so its transaction (and with it the
            # claim) was rolled back, and nothing is emitted.
            said = str(exc).strip().splitlines()[0]
            raise NotMigrated(
                "the database has no Beacon schema (or an old one): run `beacon migrate` (make up does); "
                f"PostgreSQL at {db.redact(self.settings.database_url)} said: {said}"
            ) from exc
        if event.signature is None:  # registered before jobs were signed: sign the original now
            event = self.signer.sign(event)
        assert self.producer is not None, "Publisher.start() first"
        # A repeat re-sends the original event: harmless downstream (the regions have expanded it already,
        # or will once), and it heals a crash between registering the id and emitting the event.
        producer = self.producer
        # One header per region of the job: a region's own cluster receives only its jobs (the MirrorMaker link
        # filters on it); signed or not, a header decides nothing else (the event itself names its regions).
        headers = [(region_header(r.id), b"") for r in event.regions]
        await self._waiting(
            "Kafka", lambda: producer.send_and_wait(self.topic, encode(event), key=event.key.encode(), headers=headers)
        )
        log.info("job_submitted", job_id=event.job_id, expected_executions=event.expected_executions, repeat=repeat)
        return Submitted(event.job_id, event.expected_executions, already_submitted=repeat)


async def _charge(conn: Any, token: Token, cells: int) -> None:
    """Add `cells` to the token's count for today (UTC) unless that passes its daily quota (OverQuota then;
    the caller's transaction is rolled back). The upsert locks the day's row, so concurrent submissions of
    one token are counted one after the other and can never pass the quota together."""
    at = now()
    day = at.astimezone(UTC).date()
    if over := quota.per_day(token, cells, 0, at):  # more than a whole day's quota
        raise over
    charged = await (
        await conn.execute(
            "INSERT INTO api_token_usage (token_id, day, cells) VALUES (%s, %s, %s)"
            " ON CONFLICT (token_id, day) DO UPDATE SET cells = api_token_usage.cells + EXCLUDED.cells"
            " WHERE api_token_usage.cells + EXCLUDED.cells <= %s RETURNING cells",
            (token.token_id, day, cells, token.cells_per_day),
        )
    ).fetchone()
    if charged is None:
        used = await (
            await conn.execute(
                "SELECT cells FROM api_token_usage WHERE token_id = %s AND day = %s", (token.token_id, day)
            )
        ).fetchone()
        raise quota.per_day(token, cells, int(used[0]) if used else 0, at) or RuntimeError("quota: inconsistent")


async def submit_with(publisher: Publisher, spec: JobSpec) -> Submitted:
    """One job through a publisher of its own (`beacon submit`, the demo): start, submit, stop."""
    try:
        await publisher.start()
        return await publisher.submit(spec)
    finally:
        await publisher.stop()


@contextmanager
def _bootstrap_unlogged() -> Iterator[None]:
    """aiokafka logs a failed bootstrap at ERROR and then raises; what is raised is what the person is told
    (waiting for Kafka, or the refused password), so the log line would only say it once more."""
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
