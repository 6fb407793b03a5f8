"""`beacon dlq list` / `beacon dlq replay` on hostile dead letters: missing, null, repeated, non-UTF-8 and
non-numeric headers, escape sequences in the bytes, a forged source topic. Nothing raises, '?' stands for
what cannot be read, nothing reaches the terminal raw, and replay sends each message once, and only to
the topic its dead-letter topic belongs to."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from beacon.infra import dlq, kafka, topics
from beacon.infra.settings import Settings
from beacon.schemas.topics import dead_letter_topic
from tests.kafka_tools import read_all
from tests.support import Infra, beacon, isolated, service_env

pytestmark = pytest.mark.pipeline

CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def headers(source: str, partition: bytes | None, offset: bytes | None, **extra: bytes | None) -> list:
    out = [("beacon.source.topic", source.encode()), ("beacon.consumer", b"test.recorder")]
    if partition is not None:
        out.append(("beacon.source.partition", partition))
    if offset is not None:
        out.append(("beacon.source.offset", offset))
    return out + [(k.replace("_", "."), v) for k, v in extra.items()]


def letters(source: str) -> list[tuple[str, bytes, list]]:
    """(name, value, headers) of the dead letters the test parks."""
    return [
        ("good", b"not json 1", headers(source, b"0", b"5", beacon_error=b"not a valid event: x\nline 2")),
        ("same-source", b"not json 1", headers(source, b"0", b"5", beacon_error=b"parked by a second consumer")),
        ("garbage-partition", b"not json 2", headers(source, b"abc", None, beacon_error=b"e")),
        ("superscript-two", b"not json 3", headers(source, "\u00b2".encode(), b"-1", beacon_error=b"e")),
        ("null-and-binary", b"not json 4", [("beacon.consumer", None), ("beacon.error", b"\xff\xfe\x1b[31mred")]),
        ("no-headers", "\x1b]52;c;ZXZpbA==\x07 \x9b31m \u202e".encode(), []),
        ("forged-source", b"not json 5", headers("evil-topic", b"0", b"9", beacon_error=b"e")),
        ("repeated", b"not json 6", [*headers(source, b"1", b"7"), ("beacon.source.partition", b"x")]),
    ]


async def _park(settings: Settings, topic: str, parked: list[tuple[str, bytes, list]]) -> None:
    await topics.ensure(settings)
    producer = kafka.producer(settings)
    await producer.start()
    try:
        for _, value, hdrs in parked:
            await producer.send_and_wait(dead_letter_topic(topic), value, key=b"k", headers=hdrs)
    finally:
        await producer.stop()


async def _topic_names(settings: Settings) -> set[str]:
    admin = kafka.admin_client(settings)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def parked(infra: Infra) -> Iterator[tuple[Settings, str]]:
    """A namespace of its own (no services read it), with the hostile dead letters parked."""
    with isolated(infra) as settings:
        source = settings.topics.executions_completed
        asyncio.run(_park(settings, source, letters(source)))
        yield settings, source


def test_list_shows_every_letter_with_question_marks_and_nothing_raw(parked: tuple[Settings, str]) -> None:
    settings, source = parked
    result = beacon(settings, "dlq", "list")
    assert result.returncode == 0, result.stderr.decode()
    text = result.stdout.decode()
    assert not CONTROL.search(text), text
    assert text.count(" from ") == len(letters(source))
    assert f"from {source}[?]@?" in text  # garbage partition, missing offset
    assert "from ?[?]@?  by ?" in text  # no headers at all
    assert "\\x1b]52;c;ZXZpbA==\\x07" in text  # the bytes, escaped
    assert "\\ufffd\\ufffd\\x1b[31mred" in text or "��\\x1b[31mred" in text  # not UTF-8: replaced, then escaped


def test_list_json_is_one_valid_array(parked: tuple[Settings, str]) -> None:
    settings, source = parked
    result = beacon(settings, "dlq", "list", "--json")
    assert result.returncode == 0, result.stderr.decode()
    assert not CONTROL.search(result.stdout.decode())
    rows = json.loads(result.stdout)
    assert len(rows) == len(letters(source))
    by_preview = {r["preview"]: r for r in rows}
    assert by_preview["not json 2"]["source"] == f"{source}[?]@?"
    assert by_preview["not json 3"]["source"] == f"{source}[?]@?"
    assert by_preview["not json 4"]["consumer"] == "?"
    assert by_preview["not json 6"]["source"] == f"{source}[1]@7"  # the first of repeated headers counts
    assert by_preview["\x1b]52;c;ZXZpbA==\x07 \x9b31m \u202e"]["source"] == "?[?]@?"


def test_replay_sends_each_message_once_and_only_to_its_own_topic(parked: tuple[Settings, str]) -> None:
    settings, source = parked
    dry = beacon(settings, "dlq", "replay", "--dry-run")
    assert dry.returncode == 0, dry.stderr.decode()
    parked_count = len(letters(source))
    assert f"would re-send {parked_count - 1} message(s)" in dry.stdout.decode()
    assert "1 dead letter(s) were copies of a message already re-sent" in dry.stdout.decode()
    assert read_all(settings, source) == []  # a dry run sends nothing

    sent = beacon(settings, "dlq", "replay")
    assert sent.returncode == 0, sent.stderr.decode()
    out = sent.stdout.decode()
    assert not CONTROL.search(out)
    assert f"re-sent {parked_count - 1} message(s)" in out
    assert "its header says evil-topic" in out
    replayed = read_all(settings, source)
    assert len(replayed) == parked_count - 1
    assert all(dict(r.headers)["beacon.replayed-from"].startswith(dead_letter_topic(source).encode()) for r in replayed)
    assert "evil-topic" not in asyncio.run(_topic_names(settings))

    again = beacon(settings, "dlq", "replay", "--dry-run")
    assert "would re-send 0 message(s)" in again.stdout.decode()


@pytest.mark.parametrize(
    "raw_headers",
    [
        None,
        [],
        [("beacon.source.partition", None), ("beacon.source.offset", b"\x00")],
        [("beacon.source.partition", b"9" * 400), ("beacon.source.offset", b" 12 ")],
        [("just-a-name",), (None, b"x"), ("beacon.error", "not bytes")],
        [("beacon.error", b"x" * 1_000_000)],
    ],
)
def test_a_dead_letter_of_any_headers_never_raises(raw_headers: object) -> None:
    record = SimpleNamespace(topic="t.dlq", partition=0, offset=3, key=None, value=None, headers=raw_headers)
    letter = dlq.DeadLetter.of(record)  # type: ignore[arg-type]
    assert letter.as_json()["source"] in ("?[?]@?", "?[?]@12")
    assert len(letter.error) <= dlq.MAX_HEADER_CHARS
    assert letter.target == "t"


def test_list_and_replay_stream() -> None:
    """They yield letters as they read them; neither builds a list of every dead letter."""
    assert inspect.isasyncgenfunction(dlq.list_all) and inspect.isasyncgenfunction(dlq.replay)


PEAK_RSS = """
import resource, sys
from beacon.cli import main
try:
    main(sys.argv[1:])
finally:
    print("peak-rss-kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def peak_rss_mb(settings: Settings, *args: str) -> float:
    result = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *args], capture_output=True, env=service_env(settings), timeout=120
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    [kb] = re.findall(rb"peak-rss-kb (\d+)", result.stderr)
    return int(kb) / 1024


async def _park_big(settings: Settings, topic: str, count: int, size: int) -> None:
    await topics.ensure(settings)
    producer = kafka.producer(settings)
    await producer.start()
    try:
        for i in range(count):
            hdrs = [("beacon.source.partition", b"0"), ("beacon.source.offset", str(i).encode())]
            await producer.send(dead_letter_topic(topic), os.urandom(size), headers=hdrs)
        await producer.flush()
    finally:
        await producer.stop()


def test_listing_many_large_dead_letters_does_not_hold_them_in_memory(infra: Infra) -> None:
    """60 MB of dead letters: the listing's peak memory stays near that of listing none (it held them all
    before issue 9: measured 127 MB against 53 MB for 75 MB of letters)."""
    with isolated(infra) as settings:
        asyncio.run(topics.ensure(settings))
        empty = peak_rss_mb(settings, "dlq", "list")
        asyncio.run(_park_big(settings, settings.topics.executions_completed, 120, 512 * 1024))
        loaded = peak_rss_mb(settings, "dlq", "list")
    assert loaded - empty < 30, (empty, loaded)


def test_listing_before_any_topic_exists_finds_none(infra: Infra) -> None:
    with isolated(infra) as settings:
        result = beacon(settings, "dlq", "list")
        as_json = beacon(settings, "dlq", "list", "--json")
    assert result.returncode == 0 and result.stdout.decode() == "no dead letters\n"
    assert json.loads(as_json.stdout) == []
