"""beacon.domain.signing: the canonical JSON a signature covers, the views that seal what a bundle may withhold,
the digest and Merkle root, and every reason a consumer refuses an event (beacon.infra.keys holds the keys:
tests/unit/test_keys.py)."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import rfc8785

from beacon.domain import results, signing
from beacon.domain.cells import cells_of
from beacon.domain.signing import Trust, canonical, commitment, digest, merkle_root, view, withheld
from beacon.infra import keys
from beacon.schemas.events import JobExpanded, ProducerInfo, parse_event
from bench.workload import events, jobs
from tests.signed import sign, signed, trust, unit_keys
from tests.support import a_cell

AT = datetime(2026, 6, 1, tzinfo=UTC)
RECORDER = ProducerInfo(service="recorder", instance="deadlines")
RESULT = events(1)[0]  # a completed result of us-east (bench/workload.py)
JOB = jobs(1)[0]
CELL = a_cell("j1")  # eu-west


def data(event: Any) -> dict[str, Any]:
    return event.model_dump(mode="json")


def a_timeout() -> Any:
    return results.timeout(JOB, cells_of(JOB)[0], AT, RECORDER)


def an_expansion() -> JobExpanded:
    producer = ProducerInfo(service="runner", region="eu-west", instance="r1")
    return JobExpanded(producer=producer, job_id="j1", region="eu-west", spec_sha256="a" * 64, cells=1)


def current() -> Trust:
    return trust().current()


def refusal(event: dict[str, Any], at: datetime = AT) -> str | None:
    refused = current().refusal(event, at)
    return None if refused is None else refused.reason


# --- canonical JSON: RFC 8785's bytes, whichever of orjson and rfc8785 makes them ------------------------


def real_values() -> list[Any]:
    sample = [*events(150), *jobs(3 * 72), CELL, an_expansion(), a_timeout()]
    dumped = [data(e) for e in sample]
    signed_ = [data(sign(e)) for e in sample[::10]]
    return [*dumped, *signed_, *(view(d) for d in signed_), *(withheld(d) for d in signed_)]


def test_canonical_is_rfc8785_for_real_events_their_signed_forms_and_views() -> None:
    values = real_values()
    assert len(values) > 150
    for value in values:
        assert canonical(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    "value",
    [
        1.0,
        1e-7,
        0.1,
        -0.0,
        1e21,
        1e20,
        5e-324,
        123456789.0,
        {"temperature": 1.0, "nested": [0.5, {"x": 2.0}]},
        '\x00\x01\x08\t\n\x0b\x0c\r\x1f\x7f\u2028\u2029"\\/',
        {"\x1f": "\x00", "a\nb": 1},
        {"é": 1, "z": 2, "\U0001f600": 3, "\uff61": 4},  # UTF-16 order: the emoji's surrogates before U+FF61
        {"a": "é中文😀"},
        2**53 - 1,
        -(2**53 - 1),
        [2**53 - 1, {"n": -(2**53 - 1)}],
        {"b": True, "a": None, "c": []},
        [],
        {},
        "",
    ],
    ids=repr,
)
def test_canonical_is_rfc8785_for_tricky_values(value: Any) -> None:
    assert canonical(value) == rfc8785.dumps(value)


def test_canonical_prints_floats_as_es6_does() -> None:
    assert canonical([1.0, 1e-7, 0.1, 1e21]) == b"[1,1e-7,0.1,1e+21]"
    assert canonical({"\uff61": 1, "\U0001f600": 2}) == '{"\U0001f600":2,"\uff61":1}'.encode()


@pytest.mark.parametrize("big", [2**53, -(2**53), 2**64, [1, {"n": 2**63}]], ids=repr)
def test_canonical_refuses_integers_past_2_to_the_53_as_rfc8785_does(big: Any) -> None:
    with pytest.raises(rfc8785.IntegerDomainError):
        rfc8785.dumps(big)
    with pytest.raises(rfc8785.IntegerDomainError):
        canonical(big)


def test_canonicals_fast_form_is_orjsons_and_the_same_for_float_free_values() -> None:
    value = {"b": [1, "é"], "a": {"d": None, "c": True}}
    assert canonical(value, exact=False) == orjson.dumps(value, option=orjson.OPT_SORT_KEYS) == rfc8785.dumps(value)
    assert canonical({"t": 1.0}, exact=False) == b'{"t":1.0}' != canonical({"t": 1.0})  # why it is only tried first


def test_an_event_whose_floats_orjson_prints_otherwise_still_verifies() -> None:
    """The signer signs the exact form; a verifier's first try (orjson's bytes) fails on `1.0`, its second does
    not."""
    warm = CELL.model_copy(update={"params": CELL.params.model_copy(update={"temperature": 1.0})})
    event = data(sign(warm))
    assert signing.message(event, exact=False) != signing.message(event)
    assert refusal(event) is None
    assert refusal({**event, "params": {**event["params"], "temperature": 1.5}}) == signing.BAD_SIGNATURE


# --- a signed event verifies; each refusal has its reason ---------------------------------------------------


@pytest.mark.parametrize(
    "event", [JOB, CELL, an_expansion(), RESULT, a_timeout()], ids=["job", "cell", "expansion", "result", "timeout"]
)
def test_a_signed_event_verifies_and_its_bytes_pass_the_trust_file(event: Any) -> None:
    assert refusal(data(sign(event))) is None
    assert trust().refusal(signed(event)) is None
    assert parse_event(signed(event)).signature is not None


def test_an_unsigned_event_is_refused_as_unsigned() -> None:
    refused = current().refusal(data(CELL), AT)
    assert refused is not None and refused.reason == signing.UNSIGNED
    assert str(refused) == "refused (unsigned): CellScheduled carries no signature"


def test_a_key_not_in_the_trusted_keys_is_unknown(tmp_path: Path) -> None:
    keys.ensure(tmp_path, [("runner", "eu-west")])
    stranger = keys.signer(tmp_path, "runner", "eu-west").sign(CELL)
    refused = current().refusal(data(stranger), AT)
    assert refused is not None and refused.reason == signing.UNKNOWN_KEY
    assert str(refused) == f"refused (unknown_key): key {stranger.signature.key_id!r} is not a trusted key"


def test_a_key_of_another_role_is_the_wrong_role() -> None:
    by_submitter = keys.signer(unit_keys(), "submitter").sign(CELL)
    refused = current().refusal(data(by_submitter), AT)
    assert refused is not None and refused.reason == signing.WRONG_ROLE
    assert str(refused).endswith("a submitter key; this needs a runner key")
    # and the recorder's own timeout signed by a runner:
    by_runner = keys.signer(unit_keys(), "runner", "us-east").sign(a_timeout())
    assert refusal(data(by_runner)) == signing.WRONG_ROLE


def test_a_us_east_runner_key_signing_an_eu_west_cell_is_the_wrong_region() -> None:
    forged = keys.signer(unit_keys(), "runner", "us-east").sign(CELL)
    refused = current().refusal(data(forged), AT)
    assert refused is not None and refused.reason == signing.WRONG_REGION
    assert str(refused).endswith("a runner of us-east key; this is 'eu-west''s")
    # The same holds of results and expansions (the region is the event's own, not its producer's).
    eu_result = next(e for e in events(72) if e.region == "eu-west")
    assert refusal(data(keys.signer(unit_keys(), "runner", "us-east").sign(eu_result))) == signing.WRONG_REGION
    assert refusal(data(keys.signer(unit_keys(), "runner", "us-east").sign(an_expansion()))) == signing.WRONG_REGION


def test_a_revoked_key_is_refused_from_its_revocation_on_but_not_before(tmp_path: Path) -> None:
    keys.ensure(tmp_path, [("runner", "eu-west")])
    event = data(keys.signer(tmp_path, "runner", "eu-west").sign(CELL))
    key_id = event["signature"]["key_id"]
    keys.revoke(tmp_path, key_id, at=AT)
    revoked = keys.TrustFile(tmp_path).current()
    assert revoked.refusal(event, AT - timedelta(microseconds=1)) is None
    at_once = revoked.refusal(event, AT)
    assert at_once is not None and at_once.reason == signing.REVOKED
    assert str(at_once) == f"refused (revoked_key): signed by {key_id}, revoked at {AT.isoformat()}"
    later = revoked.refusal(event, AT + timedelta(days=1))
    assert later is not None and later.reason == signing.REVOKED


def test_editing_one_character_of_the_answer_breaks_the_signature() -> None:
    event = data(sign(RESULT))
    assert refusal(event) is None
    edited = {**event, "answer": event["answer"][:-1] + ("x" if event["answer"][-1] != "x" else "y")}
    refused = current().refusal(edited, AT)
    assert refused is not None and refused.reason == signing.BAD_SIGNATURE
    assert str(refused) == (
        f"refused (bad_signature): the signature of {event['signature']['key_id']} does not cover this content"
    )
    # as does any other field, sealed or not
    assert refusal({**event, "status": "error"}) == signing.BAD_SIGNATURE
    receipt = {**event["receipt"], "answer_sha256": "0" * 64}
    assert refusal({**event, "receipt": receipt}) == signing.BAD_SIGNATURE
    job = data(sign(JOB))
    question = {**job["questions"][0], "prompts": {"en": "What is 2+3?"}}
    assert refusal({**job, "questions": [question, *job["questions"][1:]]}) == signing.BAD_SIGNATURE


def test_a_signature_value_that_is_not_base64_or_not_the_events_is_a_bad_signature() -> None:
    event = data(sign(CELL))
    other = data(sign(a_cell("j2")))
    assert refusal({**event, "signature": {**event["signature"], "value": "not base64!"}}) == signing.BAD_SIGNATURE
    assert refusal({**event, "signature": other["signature"]}) == signing.BAD_SIGNATURE


def with_salts(event: dict[str, Any], salts: dict[str, Any]) -> dict[str, Any]:
    return {**event, "signature": {**event["signature"], "salts": salts}}


@pytest.mark.parametrize(
    ("salts", "detail"),
    [
        ({}, "no salt for 'cell' in the signature block"),
        ({"cell": "ab" * 15}, "no salt for 'cell' in the signature block"),  # too short
        ({"cell": "ab" * 17}, "no salt for 'cell' in the signature block"),  # too long
        ({"cell": "zz" * 16}, "the salt for 'cell' is not hex"),
        ({"cell": 12}, "no salt for 'cell' in the signature block"),
    ],
    ids=["missing", "short", "long", "not-hex", "not-a-string"],
)
def test_malformed_salts_are_refused_as_malformed(salts: dict[str, Any], detail: str) -> None:
    event = data(sign(RESULT))
    refused = current().refusal(with_salts(event, salts), AT)
    assert refused is not None and refused.reason == signing.MALFORMED
    assert str(refused) == f"refused (malformed_signature): {detail}"


def test_a_jobs_salt_is_per_question_and_each_is_needed() -> None:
    job = data(sign(JOB))
    salts = job["signature"]["salts"]
    assert set(salts) == {q["id"] for q in job["questions"]}
    first = job["questions"][0]["id"]
    refused = current().refusal(with_salts(job, {k: v for k, v in salts.items() if k != first}), AT)
    assert refused is not None and refused.reason == signing.MALFORMED
    assert str(refused) == f"refused (malformed_signature): no salt for {first!r} in the signature block"


@pytest.mark.parametrize("block", ["a string", {"value": "x"}, {"key_id": 7}], ids=["not-a-block", "no-id", "int-id"])
def test_a_signature_block_without_a_key_id_is_malformed(block: Any) -> None:
    assert refusal({**data(CELL), "signature": block}) == signing.MALFORMED


def test_a_signed_event_carries_only_what_it_needs_in_its_block() -> None:
    cell = data(sign(CELL))["signature"]
    assert set(cell) == {"key_id", "value", "salts"} and cell["salts"] == {}  # nothing to withhold in a cell
    assert len(base64.b64decode(cell["value"])) == 64
    result = data(sign(RESULT))["signature"]
    assert set(result["salts"]) == {"cell"} and len(bytes.fromhex(result["salts"]["cell"])) == signing.SALT_BYTES


# --- withheld forms, digests and commitments ---------------------------------------------------------------


def test_a_withheld_result_keeps_its_digest_and_still_verifies_without_its_answer() -> None:
    full = data(sign(RESULT))
    hidden = withheld(full)
    assert digest(hidden) == digest(full)
    assert refusal(hidden) is None
    assert not {"answer", "answer_edits", "judgement"} & set(hidden)
    assert "evidence" not in hidden["classification"]
    assert not {"prompt_sha256", "answer_sha256"} & set(hidden["receipt"])
    assert "salts" not in hidden["signature"] and hidden["signature"]["value"] == full["signature"]["value"]
    assert RESULT.answer not in canonical(hidden).decode()
    assert withheld(hidden) == hidden  # withholding twice changes nothing


def test_a_withheld_result_that_still_shows_its_answer_is_malformed() -> None:
    full = data(sign(RESULT))
    hidden = withheld(full)
    assert refusal({**hidden, "answer": full["answer"]}) == signing.MALFORMED


def test_a_job_with_withheld_questions_keeps_its_digest_and_still_verifies() -> None:
    full = data(sign(JOB))
    first = full["questions"][0]["id"]
    hidden = signing.withhold_questions(full, [first])
    assert digest(hidden) == digest(full)
    assert refusal(hidden) is None
    assert "prompts" not in hidden["questions"][0] and "prompts" in hidden["questions"][1]
    assert first not in hidden["signature"]["salts"] and len(hidden["signature"]["salts"]) == len(full["questions"]) - 1
    assert digest(withheld(full)) == digest(full) and refusal(withheld(full)) is None  # every question withheld


def test_the_same_answer_under_two_salts_has_two_commitments_and_a_digest_alone_does_not_tell_it() -> None:
    one, two = "00" * 16, "ff" * 16
    assert commitment(one, "4") != commitment(two, "4")
    assert commitment(one, "4") == commitment(one, "4")
    assert commitment(one, "4") != commitment(one, "5")
    assert commitment(one, "4") == {"sha256": hashlib.sha256(bytes.fromhex(one) + b'"4"').hexdigest()}
    # Two signings of one result: two salts, two sealed views, two digests, both valid.
    first, second = data(sign(RESULT)), data(sign(RESULT))
    assert first["signature"]["salts"] != second["signature"]["salts"]
    assert view(first)["sealed"] != view(second)["sealed"]
    assert digest(first) != digest(second)
    assert refusal(first) is refusal(second) is None


def test_a_digest_is_of_the_view_with_the_signature_but_not_the_salts() -> None:
    full = data(sign(CELL))
    block = {k: v for k, v in full["signature"].items() if k != "salts"}
    expected = hashlib.sha256(rfc8785.dumps({**view(full), "signature": block})).hexdigest()
    assert digest(full) == expected


# --- the Merkle root -------------------------------------------------------------------------------------


def leaf(i: int) -> str:
    return hashlib.sha256(bytes([i])).hexdigest()


def h(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def test_merkle_root_of_known_small_trees() -> None:
    a, b, c = (bytes.fromhex(leaf(i)) for i in range(3))
    assert merkle_root([]) == hashlib.sha256(b"").hexdigest()
    assert merkle_root([leaf(0)]) == h(b"\x00", a).hex()
    ab = h(b"\x01", h(b"\x00", a), h(b"\x00", b))
    assert merkle_root([leaf(0), leaf(1)]) == ab.hex()
    assert merkle_root([leaf(0), leaf(1), leaf(2)]) == h(b"\x01", ab, h(b"\x00", c)).hex()  # the odd one carried
    four = [leaf(i) for i in range(4)]
    cd = h(b"\x01", h(b"\x00", c), h(b"\x00", bytes.fromhex(leaf(3))))
    assert merkle_root(four) == h(b"\x01", ab, cd).hex()


def test_merkle_root_depends_on_the_order_and_on_every_leaf() -> None:
    leaves = [leaf(i) for i in range(5)]
    root = merkle_root(leaves)
    assert merkle_root(list(reversed(leaves))) != root
    assert merkle_root([leaves[1], leaves[0], *leaves[2:]]) != root
    assert merkle_root(leaves[:-1]) != root
    assert merkle_root([*leaves[:-1], leaf(9)]) != root
    assert merkle_root([leaf(0)]) != leaf(0)  # a leaf is hashed with its 0x00 prefix: no leaf is a root
