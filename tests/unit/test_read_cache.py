"""Issue 25: the reader's kept bodies (cache.py), the conditional answers made from them (conditional.py) and
the job versions they are kept under (versions.py), without a server or a database."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from beacon.reader import versions
from beacon.reader.cache import GZIP_FROM_BYTES, Body, Entry, Representations, entry_of, render
from beacon.reader.conditional import CACHE_CONTROL, accepts_gzip, not_modified, response

# Values whose JSON differs between serializers: small and large floats, time zones, control characters, text
# beyond ASCII, an integer past 64 bits.
TRICKY: dict[str, Any] = {
    "floats": [0.1, 1e-07, 1.2e-05, 0.2917, 1e16, 1e22, -0.0, 12345.6789],
    "times": [
        datetime(2026, 11, 27, 10, 0, tzinfo=UTC),
        datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=8))),
        datetime(2026, 11, 27, 10, 0),
    ],
    "ids": [uuid.UUID("12345678-1234-5678-1234-567812345678")],
    "text": '4 \x1b]52;c;Y3VybA==\x07 \u202etxt \u2028 我无法回答 \U0001f600 </script> "q" \\',
    "nested": {"none": None, "yes": True, "n": 2**70, "d": Decimal("1.50"), "list": [[], {}, [1, [2]]]},
}


def test_a_body_is_the_bytes_fastapi_would_send() -> None:
    app = FastAPI()

    @app.get("/x")
    async def x() -> dict[str, Any]:
        return TRICKY

    sent = TestClient(app).get("/x").content
    assert render(TRICKY) == sent
    assert b"1e-7" in sent and b'"2026-11-27T10:00:00Z"' in sent  # what FastAPI writes: Pydantic's JSON


def test_the_etag_is_the_hash_of_the_bytes_and_the_gzip_is_the_same_each_time() -> None:
    content = {"cells": [{"question_id": f"q{i}", "classification": "answered"} for i in range(200)]}
    first, again = entry_of("v1", content), entry_of("v1", content)
    assert first.identity.etag == '"' + hashlib.blake2b(render(content), digest_size=16).hexdigest() + '"'
    assert first.gzip is not None and again.gzip is not None
    assert first.gzip.data == again.gzip.data and first.gzip.etag == again.gzip.etag  # mtime=0: no timestamp
    assert gzip.decompress(first.gzip.data) == first.identity.data
    assert first.gzip.etag != first.identity.etag  # two representations, two strong validators
    assert first.size == len(first.identity.data) + len(first.gzip.data)
    other = entry_of("v1", {"cells": []})
    assert other.identity.etag != first.identity.etag
    assert len(other.identity.data) < GZIP_FROM_BYTES and other.gzip is None


# --- If-None-Match -----------------------------------------------------------------------------------

TAG = '"0123abcd"'


@pytest.mark.parametrize(
    "field",
    [
        ['"0123abcd"'],
        ['W/"0123abcd"'],  # If-None-Match compares weakly
        ['"other", "0123abcd"'],
        [' "other" ,W/"0123abcd" , '],  # optional whitespace, empty elements
        [',,"0123abcd",'],
        ['"other"', '"0123abcd"'],  # two field lines are one list
        ["*"],
        [" * "],
    ],
)
def test_if_none_match_that_names_the_tag(field: list[str]) -> None:
    assert not_modified(field, TAG)


@pytest.mark.parametrize(
    "field",
    [
        [],
        [""],
        ["   "],
        ['"other"'],
        ['"0123abc"'],
        ['"0123abcd0"'],
        ["0123abcd"],  # not quoted
        ['w/"0123abcd"'],  # W/ is case-sensitive
        ['W/ "0123abcd"'],
        ['"0123abcd'],  # unterminated
        ['"0123abcd"garbage'],
        ['"0123abcd" "other"'],  # no comma between them
        ['garbage, "0123abcd"'],  # one bad element: the whole field is ignored
        ['"0123abcd\x00"'],
        ['"a"b"0123abcd"'],
        ["*, " + TAG],  # `*` stands alone or not at all
        ["*", TAG],
        ['"' + "x" * 20_000 + '"'],
        ["\x00\xff\ufffd"],
        ['"0123abcd",' * 5_000 + "x"],
    ],
)
def test_if_none_match_that_does_not(field: list[str]) -> None:
    assert not not_modified(field, TAG)


def test_a_comma_may_be_part_of_an_entity_tag() -> None:
    assert not_modified(['"a,b"'], '"a,b"') and not not_modified(['"a,b"'], '"a"')


# --- Accept-Encoding ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "gzip_ok"),
    [
        (["gzip, deflate"], True),  # httpx's
        (["gzip, deflate, br, zstd"], True),  # a browser's
        (["GZip"], True),
        (["x-gzip"], True),
        (["*"], True),
        (["br", "gzip;q=0.5"], True),
        (["gzip;q=0.001"], True),
        (["gzip ; q=1.000"], True),
        ([], False),
        ([""], False),
        (["identity"], False),
        (["deflate, br"], False),
        (["gzip;q=0"], False),
        (["gzip;q=0.000"], False),
        (["*;q=0"], False),
        (["gzip;q=0, *"], False),  # named, refused: `*` does not override it
        (["gzip;q=abc"], False),  # a malformed weight is no weight
        (["gzip;q=1.5"], False),
        (["gzip;q=nan"], False),
        (["gzip;q=-1"], False),
        (["gzip;q=0.5000"], False),
        (["\x00gzip"], False),
    ],
)
def test_accept_encoding(field: list[str], gzip_ok: bool) -> None:
    assert accepts_gzip(field) is gzip_ok


# --- the response ------------------------------------------------------------------------------------

BIG = entry_of("v", {"cells": ["answered"] * 1000})


def answer(if_none_match: Sequence[str] = (), accept_encoding: Sequence[str] = ()) -> tuple[int, dict[str, str], bytes]:
    r = response(BIG, if_none_match, accept_encoding)
    return r.status_code, dict(r.headers), bytes(r.body)


def test_a_full_answer_names_its_validator_and_how_it_may_be_kept() -> None:
    status, headers, body = answer()
    assert (status, body) == (200, BIG.identity.data)
    assert headers["etag"] == BIG.identity.etag and headers["cache-control"] == CACHE_CONTROL == "private, no-cache"
    assert headers["content-type"] == "application/json" and headers["vary"] == "Accept-Encoding"
    assert "content-encoding" not in headers and headers["content-length"] == str(len(body))


def test_gzip_when_accepted() -> None:
    assert BIG.gzip is not None
    status, headers, body = answer(accept_encoding=["gzip, deflate"])
    assert (status, body, headers["content-encoding"]) == (200, BIG.gzip.data, "gzip")
    assert headers["etag"] == BIG.gzip.etag and gzip.decompress(body) == BIG.identity.data


def test_304_for_the_representation_the_client_holds() -> None:
    assert BIG.gzip is not None
    status, headers, body = answer([BIG.identity.etag])
    assert (status, body, headers["etag"]) == (304, b"", BIG.identity.etag)
    assert headers["cache-control"] == CACHE_CONTROL and "content-length" not in headers
    status, headers, body = answer([BIG.gzip.etag], ["gzip"])
    assert (status, body, headers["etag"]) == (304, b"", BIG.gzip.etag) and "content-encoding" not in headers
    # The identity's tag while asking for gzip: another representation, sent in full.
    status, headers, body = answer([BIG.identity.etag], ["gzip"])
    assert (status, body) == (200, BIG.gzip.data)
    status, _, body = answer(['"garbage"'])
    assert (status, body) == (200, BIG.identity.data)


# --- kept bodies -------------------------------------------------------------------------------------


def entry(depends: str, size: int) -> Entry:
    return Entry(depends, Body.of(b"x" * size), None)


def test_a_body_is_used_only_while_what_it_was_built_from_is_unchanged() -> None:
    kept = Representations()
    kept.put("matrix", entry("v1", 10))
    assert kept.get("matrix", "v1") is not None and kept.get("matrix", "v2") is None
    kept.put("matrix", entry("v2", 20))  # one per key: the newer replaces the older
    assert kept.get("matrix", "v1") is None and kept.get("matrix", "v2") is not None
    assert kept.size == (1, 20)


def test_bounded_by_bytes_and_entries_least_recently_used_out() -> None:
    kept = Representations(max_bytes=100, max_entries=3, max_entry_bytes=60)
    for key in "abc":
        kept.put(key, entry("v", 30))
    assert kept.get("a", "v") is not None  # a is now the most recently used
    kept.put("d", entry("v", 30))  # 120 bytes: b, the least recently used, goes
    assert [k for k in "abcd" if kept.get(k, "v")] == ["a", "c", "d"] and kept.size == (3, 90)
    kept.put("e", entry("v", 5))  # four entries: one too many
    assert kept.size[0] == 3
    kept.put("c", entry("v2", 61))  # too large to keep: served, not kept, and the old body of c is gone
    assert kept.get("c", "v") is None and kept.get("c", "v2") is None


def test_requests_together_wait_for_one_build() -> None:
    kept, builds = Representations(), []

    async def build() -> Entry:
        builds.append(1)
        await asyncio.sleep(0.01)
        return entry("v1", 10)

    async def main() -> list[Entry]:
        return await asyncio.gather(*(kept.get_or_build("matrix", "v1", build) for _ in range(5)))

    got = asyncio.run(main())
    assert len(builds) == 1 and all(e is got[0] for e in got)
    asyncio.run(kept.get_or_build("matrix", "v1", build))
    assert len(builds) == 1  # kept


def test_a_build_from_a_newer_snapshot_is_kept_under_what_it_was_built_from() -> None:
    kept = Representations()

    async def build() -> Entry:
        return entry("v2", 10)  # a row arrived between the version check and the build's snapshot

    got = asyncio.run(kept.get_or_build("matrix", "v1", build))
    assert got.depends == "v2" and kept.get("matrix", "v1") is None and kept.get("matrix", "v2") is got


def test_a_failed_build_reaches_every_waiter_and_keeps_nothing() -> None:
    kept, builds = Representations(), []

    async def build() -> Entry:
        builds.append(1)
        await asyncio.sleep(0.01)
        raise LookupError("no job 'x'")

    async def main() -> list[Any]:
        return await asyncio.gather(*(kept.get_or_build("k", "v", build) for _ in range(3)), return_exceptions=True)

    errors = asyncio.run(main())
    assert len(builds) == 1 and [str(e) for e in errors] == ["no job 'x'"] * 3
    assert kept.size == (0, 0)
    with pytest.raises(LookupError):
        asyncio.run(kept.get_or_build("k", "v", build))
    assert len(builds) == 2  # tried again, not remembered as failed


def test_a_client_that_goes_away_does_not_cancel_the_build_others_wait_for() -> None:
    kept = Representations()

    async def main() -> Entry:
        go = asyncio.Event()

        async def build() -> Entry:
            await go.wait()
            return entry("v", 10)

        first = asyncio.create_task(kept.get_or_build("k", "v", build))
        second = asyncio.create_task(kept.get_or_build("k", "v", build))
        await asyncio.sleep(0)
        first.cancel()
        go.set()
        return await second

    assert asyncio.run(main()).depends == "v" and kept.get("k", "v") is not None


# --- versions ----------------------------------------------------------------------------------------

TABLES = (16384, 16390, 16400)


def test_a_job_is_settled_when_every_cell_is_recorded_and_none_is_a_timeout() -> None:
    assert versions.version_of(TABLES, 72, 72, 0, 3).settled
    assert versions.version_of(TABLES, 72, 72, 0, 0).settled  # expansions may still come: they are counted
    assert not versions.version_of(TABLES, 72, 71, 0, 3).settled
    assert not versions.version_of(TABLES, 72, 72, 1, 3).settled  # a late result may still replace it
    # Each change a writer may make gives another version: an insert, a supersede, an expansion, a replay.
    now = versions.version_of(TABLES, 72, 70, 2, 2)
    later = [
        versions.version_of(TABLES, 72, 71, 2, 2),
        versions.version_of(TABLES, 72, 70, 1, 2),
        versions.version_of(TABLES, 72, 71, 1, 2),  # an insert and a supersede
        versions.version_of(TABLES, 72, 70, 2, 3),
        versions.version_of((1, 2, 3), 72, 70, 2, 2),
    ]
    assert all(v != now for v in later)


class FakeConnection:
    """Answers the two version statements from a dict of job → (expected, recorded, timeouts, picked)."""

    def __init__(self, jobs: dict[str, tuple[int, int, int, int]]) -> None:
        self.jobs, self.tables, self.statements = jobs, TABLES, []

    async def execute(self, statement: str, params: tuple[list[str]]) -> FakeConnection:
        (ids,) = params
        self.statements.append("settled" if statement == versions._SETTLED else "full")
        if statement == versions._SETTLED:
            self.rows = [(j, self.jobs[j][3], *self.tables) for j in ids]
        else:
            self.rows = [(j, *self.jobs[j], *self.tables) for j in ids if j in self.jobs]
        return self

    async def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows


def test_a_settled_job_is_not_counted_again_until_the_tables_are_swapped() -> None:
    conn = FakeConnection({"done": (72, 72, 0, 2), "running": (72, 10, 0, 3)})
    known = versions.Versions()

    def of(*ids: str) -> dict[str, versions.JobVersion]:
        return asyncio.run(known.of(conn, ids))  # type: ignore[arg-type]

    first = of("done", "running")
    assert conn.statements == ["full"] and first["done"].settled and not first["running"].settled
    conn.statements.clear()
    assert of("done", "running") == first and conn.statements == ["settled", "full"]
    conn.jobs["done"] = (72, 72, 0, 3)  # the third region's expansion, recorded late
    conn.statements.clear()
    assert of("done")["done"].regions_picked == 3 and conn.statements == ["settled"]
    conn.tables = (1, 2, 3)  # a replay swapped new tables in: counted again
    conn.statements.clear()
    assert of("done")["done"].tables == (1, 2, 3) and conn.statements == ["settled", "full"]
    assert of("nope") == {} and of("done", "done") == {"done": of("done")["done"]}


def test_remembered_settled_jobs_are_bounded() -> None:
    conn = FakeConnection({f"j{i}": (1, 1, 0, 1) for i in range(5)})
    known = versions.Versions(size=2)
    for i in range(5):
        asyncio.run(known.of(conn, [f"j{i}"]))  # type: ignore[arg-type]
    conn.statements.clear()
    asyncio.run(known.of(conn, ["j0", "j4"]))  # type: ignore[arg-type]
    assert conn.statements == ["settled", "full"]  # j4 remembered, j0 long gone
