"""Issue 13: does FastStream cost the recorder's consume path anything? A standalone measurement, imported by
nothing: the same decode (project.rows_of) and the same commit-after-the-batch, on the project's own
aiokafka loop and inside a FastStream batch subscriber with manual acknowledgement.

  python -m bench.faststream_eval [--events 100000] [--rounds 3] [--batch 2000] [--bootstrap HOST:PORT]

Needs `faststream[kafka]` (not a project dependency: see README, Dependencies) and a Kafka broker
(KAFKA_BOOTSTRAP_SERVERS, else `.beacon/env`, else --bootstrap). It makes a fresh topic (6 partitions,
keyed like the real one) and produces the events once. Every run reads them all with a fresh consumer
group: each variant once untimed on 5 batches (first-use costs), then `--rounds` times each in a rotating
order (a b c, b c a, c a b, …: none always goes first). Then it deletes the topic. No database: decode +
commit is where a framework's overhead would show.

  (a) aiokafka: getmany(max_records=batch) → rows_of per partition → commit({tp: last + 1})  (the recorder)
  (b) FastStream: @broker.subscriber(batch=True, max_records=batch, ack_policy=AckPolicy.MANUAL,
      decoder=<pass-through>); the handler takes the raw records, groups them per partition → rows_of →
      `await msg.ack()` (FastStream commits the consumer's positions). The fair comparison.
  (c) as (b) with FastStream's default decoder: it json.loads every record's body before the handler
      runs, even when the handler never asks for the body (no content-type header: it tries JSON).

Each run is timed from its first batch to the commit of the batch that completes it, so group join and
client start-up are left out for all. Two rates per run: events per second of elapsed time, and events
per CPU-second of this process (time.process_time: the consumer client, the framework and the decode
run here, the broker does not). On a shared 2-core machine the elapsed time swings with other load, the
CPU time much less, so the CPU ratio is the one to read. Prints both per run, their medians, and the
median of the per-round ratios b/a and c/a. The events are ExecutionCompleted from bench/workload.py
(200–1,500-character answers, ~2 KB encoded); building one costs ~1 ms, so at most --distinct of them
are built and their bytes repeated up to --events.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import NewTopic
from aiokafka.structs import ConsumerRecord, TopicPartition

from beacon.infra import kafka
from beacon.infra.settings import Settings, state_dir
from beacon.recorder.project import rows_of
from beacon.schemas.events import encode
from bench.workload import events

PARTITIONS = 6


def settings_for(bootstrap: str | None) -> Settings:
    """As the Kafka admin of `make up`'s cluster (it makes and deletes its own topics)."""
    from beacon.deploy.local import __main__ as local

    env = dict(os.environ)
    if bootstrap:
        env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    s = Settings.from_env(env)
    return local.admin_settings(state_dir(), s.kafka_bootstrap_servers, s.replication_factor, **env)


def payloads(n: int, distinct: int) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs: `distinct` real events, their bytes repeated up to n."""
    made = [(e.key.encode(), encode(e)) for e in events(min(n, distinct), prefix="fseval")]
    return [made[i % len(made)] for i in range(n)]


async def make_topic(s: Settings, topic: str) -> None:
    admin = kafka.admin_client(s)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, s.replication_factor)])
    finally:
        await admin.close()


async def drop_topic(s: Settings, topic: str) -> None:
    admin = kafka.admin_client(s)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


async def produce(s: Settings, topic: str, pairs: list[tuple[bytes, bytes]]) -> None:
    producer = kafka.producer(s, linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    try:
        acks = [await producer.send(topic, value, key=key) for key, value in pairs]
        await asyncio.gather(*acks)
    finally:
        await producer.stop()


@dataclass(frozen=True)
class Rates:
    wall: float  # events per second of elapsed time: what a busy shared machine makes noisy
    cpu: float  # events per CPU-second of this process (consumer, framework, decode): the robust one


class Tally:
    """Events decoded so far, and the span from the first batch to the commit that completes the run."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.events = 0
        self.rows = 0
        self.began: float | None = None
        self.ended: float | None = None
        self.cpu_began = self.cpu_ended = 0.0
        self.done = asyncio.Event()

    def start(self) -> None:
        if self.began is None:
            self.began = time.perf_counter()
            self.cpu_began = time.process_time()

    def decoded(self, records: list[ConsumerRecord]) -> None:
        rows = rows_of(records)
        if rows.poison:
            raise RuntimeError(f"the workload held poison: {rows.poison[0][1]}")
        self.events += len(records)
        self.rows += len(rows.executions)

    def committed(self) -> None:
        if self.events >= self.n and self.ended is None:
            self.ended = time.perf_counter()
            self.cpu_ended = time.process_time()
            self.done.set()

    @property
    def rates(self) -> Rates:
        assert self.began is not None and self.ended is not None
        return Rates(self.events / (self.ended - self.began), self.events / (self.cpu_ended - self.cpu_began))


async def run_aiokafka(s: Settings, topic: str, n: int, batch: int, wait_ms: int) -> Rates:
    """(a) The recorder's pattern (services/recorder/main.py, without the database)."""
    tally = Tally(n)
    consumer = kafka.consumer(s, topic, group_id=f"fseval-a-{uuid.uuid4().hex[:8]}", max_poll_records=batch)
    await consumer.start()
    try:
        while not tally.done.is_set():
            got = await consumer.getmany(timeout_ms=wait_ms, max_records=batch)
            if not got:
                continue
            tally.start()
            offsets = {}
            for tp, records in got.items():
                tally.decoded(records)
                offsets[tp] = records[-1].offset + 1
            await consumer.commit(offsets)
            tally.committed()
    finally:
        await consumer.stop()
    return tally.rates


async def run_faststream(
    s: Settings, topic: str, n: int, batch: int, wait_ms: int, default_decoder: bool = False
) -> Rates:
    """(b), (c): the same work in a FastStream batch subscriber with manual acknowledgement."""
    from faststream import AckPolicy
    from faststream.kafka import KafkaBroker
    from faststream.kafka.annotations import KafkaMessage

    tally = Tally(n)
    # FastStream still makes its per-batch log calls (as it would in production), into a logger that
    # prints only warnings: its start, stop and partition-assignment lines stay out of the report.
    quiet = logging.getLogger("bench.faststream_eval.faststream")
    quiet.setLevel(logging.WARNING)
    from faststream.security import SASLScram512

    scram = SASLScram512(username=s.kafka_username or "", password=s.kafka_password or "")
    broker = KafkaBroker(s.kafka_bootstrap_servers, logger=quiet, security=scram)

    async def timed_parser(records: Any, parse: Any) -> Any:
        """FastStream's own parser, once the clock runs: as in (a), whose clock starts when getmany
        returns, the framework's work on the first batch (parsing, decoding) is counted too."""
        tally.start()
        return await parse(records)

    async def pass_through(msg: Any) -> Any:  # (b): rows_of decodes; nothing before it
        return msg.raw_message

    @broker.subscriber(
        topic,
        group_id=f"fseval-b-{uuid.uuid4().hex[:8]}",
        batch=True,
        max_records=batch,
        batch_timeout_ms=wait_ms,
        # The project's consumer settings (beacon/kafka.py); FastStream's defaults differ: ACK_FIRST
        # (auto-commit, before the handler runs) and auto_offset_reset="latest".
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_records=batch,
        parser=timed_parser,
        decoder=None if default_decoder else pass_through,
    )
    async def handle(msg: KafkaMessage) -> None:
        per_partition: dict[TopicPartition, list[ConsumerRecord]] = defaultdict(list)
        for record in msg.raw_message:
            per_partition[TopicPartition(record.topic, record.partition)].append(record)
        for records in per_partition.values():
            tally.decoded(records)
        await msg.ack()  # consumer.commit(): every assigned partition at its position
        tally.committed()

    await broker.start()
    try:
        await tally.done.wait()
    finally:
        await broker.stop()
    return tally.rates


VARIANTS: dict[str, tuple[str, Any, dict[str, Any]]] = {
    "a": ("aiokafka getmany + rows_of + commit", run_aiokafka, {}),
    "b": ("FastStream batch, pass-through decoder + rows_of + msg.ack()", run_faststream, {}),
    "c": ("FastStream batch, default decoder + rows_of + msg.ack()", run_faststream, {"default_decoder": True}),
}


async def main_async(args: argparse.Namespace) -> None:
    s = settings_for(args.bootstrap)
    topic = f"{s.topic_namespace}.bench.fseval.{uuid.uuid4().hex[:8]}"
    began = time.perf_counter()
    pairs = payloads(args.events, args.distinct)
    await make_topic(s, topic)
    try:
        await produce(s, topic, pairs)
        size = sum(len(v) for _, v in pairs) / len(pairs)
        print(
            f"{args.events:,} ExecutionCompleted ({size:,.0f} bytes on average, {args.distinct:,} distinct) on "
            f"{topic} ({PARTITIONS} partitions) in {time.perf_counter() - began:.1f} s; batch {args.batch}"
        )
        warm = min(args.events, 5 * args.batch)
        for _, runner, extra in VARIANTS.values():  # first-use costs (imports, pydantic, clients): not timed
            await runner(s, topic, warm, args.batch, args.wait_ms, **extra)
        results: dict[str, list[Rates]] = {v: [] for v in VARIANTS}
        order = list(VARIANTS)
        for r in range(args.rounds):
            for which in order[r % 3 :] + order[: r % 3]:
                label, runner, extra = VARIANTS[which]
                rates = await runner(s, topic, args.events, args.batch, args.wait_ms, **extra)
                results[which].append(rates)
                print(
                    f"  round {r + 1} ({which}) {label}: {rates.wall:,.0f} events/s, {rates.cpu:,.0f} per CPU-s",
                    flush=True,
                )
        for which, (label, _, _) in VARIANTS.items():
            wall = statistics.median(x.wall for x in results[which])
            cpu = statistics.median(x.cpu for x in results[which])
            print(f"({which}) {label}: median {wall:,.0f} events/s, {cpu:,.0f} events per CPU-second")
        for which in ("b", "c"):
            for kind in ("wall", "cpu"):
                ratios = [
                    getattr(x, kind) / getattr(a, kind) for a, x in zip(results["a"], results[which], strict=True)
                ]
                each = ", ".join(f"{x:.2f}" for x in ratios)
                print(f"{which}/a ({kind}) per round: {each}; median {statistics.median(ratios):.2f}")
    finally:
        await drop_topic(s, topic)


def kafka_answers(s: Settings) -> bool:
    from beacon.deploy.local.kafka import metadata_ok

    return metadata_ok(s.kafka_bootstrap_servers, kafka.security(s))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.faststream_eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--distinct", type=int, default=10_000, help="events built; their bytes are repeated")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each of (a), (b) and (c)")
    parser.add_argument("--batch", type=int, default=2000, help="max records per batch (the recorder's default)")
    parser.add_argument("--wait-ms", type=int, default=200, help="batch wait (the recorder's default)")
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS, .beacon/env)")
    args = parser.parse_args()
    if args.events < 1 or args.rounds < 1 or args.batch < 1:
        parser.error("--events, --rounds and --batch must be at least 1")
    try:
        import faststream.kafka  # noqa: F401
    except ImportError:
        raise SystemExit("needs FastStream: pip install 'faststream[kafka]' (into a venv of your own)") from None
    s = settings_for(args.bootstrap)
    if not kafka_answers(s):
        raise SystemExit(f"no Kafka answers at {s.kafka_bootstrap_servers}: start one (make up) or pass --bootstrap")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
