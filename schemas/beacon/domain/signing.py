"""Pure: what a signed event is, and how anyone checks one (no I/O; the key files are beacon.infra.keys').

A signature is Ed25519 over the RFC 8785 canonical JSON of the event's *view*: the event without its
`signature` member, where the parts a published bundle may withhold are replaced by a salted commitment:

- ExecutionCompleted: `answer`, `answer_edits`, `judgement`, `classification.evidence` and the receipt's
  `prompt_sha256` and `answer_sha256` become one `sealed: {"sha256": …}` member (salt `salts["cell"]`);
- JobSubmitted: each question's `prompts` become that question's `sealed` member (salt `salts[<id>]`).

The salts (16 random bytes each, hex) travel in the signature block, outside what is signed. A full event
opens every commitment; a withheld one is its view (signature included, salts left out): its signature still
verifies, yet a short answer such as "4" cannot be guessed from a digest without the salt. Other events'
views are the event without its signature.

The signature is carried in the event body, not in Kafka headers: a fact is then self-contained wherever it
is copied (the database's rows, an exported bundle, a dead letter sent back, a mirrored topic), and the one
canonical form is that of the event itself.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import rfc8785
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

ROLES = ("submitter", "runner", "recorder")
REGIONAL = {"runner"}  # roles whose keys belong to one region
SALT_BYTES = 16

# Why an event is refused (the dead letter's reason, `refused (<reason>): …`).
UNSIGNED = "unsigned"
UNKNOWN_KEY = "unknown_key"
WRONG_ROLE = "wrong_role"
WRONG_REGION = "wrong_region"
REVOKED = "revoked_key"
BAD_SIGNATURE = "bad_signature"
MALFORMED = "malformed_signature"

_RESULT_SEALED = ("answer", "answer_edits", "judgement", "tokens", "attempts")
_RESULT_SEALED_INSIDE = (("classification", "evidence"), ("receipt", "prompt_sha256"), ("receipt", "answer_sha256"))


# --- canonical JSON -------------------------------------------------------------------------------


def _orjson_is_rfc8785(value: Any) -> bool:
    """orjson's sorted, compact output is RFC 8785's for every value but floats (ES6 prints 1.0 as 1), integers
    past 2^53 (not exact in I-JSON) and non-ASCII keys (RFC 8785 sorts by UTF-16 units)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            for key in item:
                if not key.isascii():
                    return False
            stack.extend(item.values())
        elif kind is list or kind is tuple:
            stack.extend(item)
        elif kind is float or (kind is int and not -(2**53) < item < 2**53):
            return False
    return True


def canonical(value: Any, exact: bool = True) -> bytes:
    """RFC 8785 (JSON Canonicalization Scheme) bytes of a JSON value. `exact=False` skips the look for floats and
    the like: orjson's bytes, which are RFC 8785's for every event Beacon makes; a verifier tries them first and
    the exact form only when they do not verify (both encode the value injectively, so either verifying proves
    the signer signed this very value)."""
    if not exact or _orjson_is_rfc8785(value):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return rfc8785.dumps(value)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def commitment(salt_hex: str, value: Any, exact: bool = True) -> dict[str, str]:
    """A salted commitment to a JSON value: it binds the value, and without the salt says nothing of it."""
    return {"sha256": sha256_hex(bytes.fromhex(salt_hex) + canonical(value, exact))}


# --- views ------------------------------------------------------------------------------------------


class Malformed(ValueError):
    """Not a signable event: a sealed part both shown and withheld, or a salt missing."""


def _salts(event: Mapping[str, Any]) -> Mapping[str, Any]:
    block = event.get("signature")
    salts = block.get("salts") if isinstance(block, dict) else None
    return salts if isinstance(salts, dict) else {}


def _salt(salts: Mapping[str, Any], name: str) -> str:
    salt = salts.get(name)
    if not isinstance(salt, str) or len(salt) != 2 * SALT_BYTES:
        raise Malformed(f"no salt for {name!r} in the signature block")
    try:
        bytes.fromhex(salt)
    except ValueError:
        raise Malformed(f"the salt for {name!r} is not hex") from None
    return salt


def is_withheld(part: Mapping[str, Any]) -> bool:
    return "sealed" in part


def _result_view(event: dict[str, Any], salts: Mapping[str, Any], exact: bool) -> dict[str, Any]:
    if is_withheld(event):
        if any(name in event for name in _RESULT_SEALED):
            raise Malformed("a withheld result that still shows its answer")
        return event
    hidden: dict[str, Any] = {name: event.pop(name, None) for name in _RESULT_SEALED}
    for parent, name in _RESULT_SEALED_INSIDE:
        inner = event.get(parent)
        if isinstance(inner, dict):
            inner = dict(inner)
            hidden[f"{parent}.{name}"] = inner.pop(name, None)
            event[parent] = inner
    event["sealed"] = commitment(_salt(salts, "cell"), hidden, exact)
    return event


def _job_view(event: dict[str, Any], salts: Mapping[str, Any]) -> dict[str, Any]:
    questions = event.get("questions")
    if not isinstance(questions, list):
        return event
    sealed = []
    for question in questions:
        if not isinstance(question, dict):
            sealed.append(question)
            continue
        if is_withheld(question):
            if "prompts" in question:
                raise Malformed(f"question {question.get('id')!r} is withheld but still shows its prompts")
            sealed.append(question)
            continue
        sealed.append(_sealed_question(question, salts))
    event["questions"] = sealed
    return event


def _sealed_question(question: Mapping[str, Any], salts: Mapping[str, Any]) -> dict[str, Any]:
    """A question with its prompts replaced by their commitment."""
    q = dict(question)
    q["sealed"] = commitment(_salt(salts, str(q.get("id"))), q.pop("prompts", None))
    return q


def view(event: Mapping[str, Any], exact: bool = True) -> dict[str, Any]:
    """What is signed of an event (a JSON object), full or withheld alike. Raises Malformed."""
    out = {k: v for k, v in event.items() if k != "signature"}
    kind = out.get("event_type")
    if kind == "ExecutionCompleted":
        return _result_view(out, _salts(event), exact)
    if kind == "JobSubmitted":
        return _job_view(out, _salts(event))
    return out


def withheld(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event as a bundle shows a withheld cell: its view and its signature, without the salts."""
    out = view(event)
    block = event.get("signature")
    if isinstance(block, dict):
        out["signature"] = {k: v for k, v in block.items() if k != "salts"}
    return out


def withhold_questions(job: Mapping[str, Any], question_ids: Iterable[str]) -> dict[str, Any]:
    """A JobSubmitted with the prompts of these questions sealed (and their salts left out)."""
    hide = set(question_ids)
    out = dict(job)
    salts = _salts(job)
    questions = []
    for question in job.get("questions", []):
        if question.get("id") in hide and not is_withheld(question):
            questions.append(_sealed_question(question, salts))
        else:
            questions.append(question)
    out["questions"] = questions
    block = dict(job.get("signature") or {})
    if "salts" in block:
        block["salts"] = {k: v for k, v in block["salts"].items() if k not in hide}
    out["signature"] = block
    return out


def message(event: Mapping[str, Any], exact: bool = True) -> bytes:
    """The bytes a signature covers (`exact=False`: canonical's fast form, for verifiers to try first)."""
    return canonical(view(event, exact), exact)


def digest(event: Mapping[str, Any]) -> str:
    """A signed event's content-derived id: SHA-256 of its view with its signature (not its salts), the same
    for the full event and its withheld form."""
    block = event.get("signature") or {}
    signed = view(event) | {"signature": {k: v for k, v in block.items() if k != "salts"}}
    return sha256_hex(canonical(signed))


def merkle_root(leaves: list[str]) -> str:
    """Merkle tree root (RFC 6962's shape: 0x00 before a leaf, 0x01 before two children, an odd last node
    carried up) over hex digests, in the order given."""
    if not leaves:
        return sha256_hex(b"")
    level = [hashlib.sha256(b"\x00" + bytes.fromhex(leaf)).digest() for leaf in leaves]
    while len(level) > 1:
        up = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            up.append(level[-1])
        level = up
    return level[0].hex()


# --- keys, signing and verifying ----------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def key_id_of(public: bytes) -> str:
    return "ed25519:" + sha256_hex(public)[:16]


@dataclass(frozen=True)
class TrustedKey:
    """A public key and what it may sign: events of `role` (of `region`, for a runner), until `revoked_at`."""

    key_id: str
    public: bytes
    role: str
    region: str | None = None
    created_at: datetime | None = None
    revoked_at: datetime | None = None

    def binding(self) -> str:
        return f"{self.role} of {self.region}" if self.region else self.role

    def revoked_by(self, at: datetime) -> bool:
        return self.revoked_at is not None and at >= self.revoked_at

    def as_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "algorithm": "ed25519",
            "public_key": b64(self.public),
            "role": self.role,
            "region": self.region,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }

    @classmethod
    def of_json(cls, data: Mapping[str, Any]) -> TrustedKey:
        """From a trusted-keys entry; raises ValueError saying what is wrong."""
        if data.get("algorithm", "ed25519") != "ed25519":
            raise ValueError(f"algorithm {data.get('algorithm')!r}: only ed25519 is known")
        public = unb64(str(data["public_key"]))
        if len(public) != 32:
            raise ValueError("public_key is not 32 bytes")
        key = cls(
            key_id=str(data["key_id"]),
            public=public,
            role=str(data["role"]),
            region=data.get("region"),
            created_at=datetime.fromisoformat(data["created_at"]) if data.get("created_at") else None,
            revoked_at=datetime.fromisoformat(data["revoked_at"]) if data.get("revoked_at") else None,
        )
        if key.key_id != key_id_of(public):
            raise ValueError(f"key_id {key.key_id} is not the id of its public key ({key_id_of(public)})")
        if key.role not in ROLES:
            raise ValueError(f"role {key.role!r} is not one of {', '.join(ROLES)}")
        if (key.role in REGIONAL) != (key.region is not None):
            raise ValueError(f"a {key.role} key {'needs' if key.role in REGIONAL else 'has no'} region")
        if key.revoked_at is not None and key.revoked_at.tzinfo is None:
            raise ValueError("revoked_at needs a time zone")
        return key


def sign(event: Mapping[str, Any], key: SigningKey, key_id: str, salts: Mapping[str, str]) -> dict[str, Any]:
    """The event (a JSON object without a signature) with its signature block."""
    block: dict[str, Any] = {"key_id": key_id}
    if salts:
        block["salts"] = dict(salts)
    unsigned = {k: v for k, v in event.items() if k != "signature"} | {"signature": block}
    block["value"] = b64(key.sign(message(unsigned)).signature)
    return unsigned


def salt_names(event: Mapping[str, Any]) -> list[str]:
    """Which salts an event's view needs."""
    kind = event.get("event_type")
    if kind == "ExecutionCompleted":
        return ["cell"]
    if kind == "JobSubmitted":
        return [str(q["id"]) for q in event.get("questions", [])]
    return []


def expected_signer(event: Mapping[str, Any]) -> tuple[str, str | None]:
    """(role, region) of the key that may sign this event: the submitter its jobs; a region's runner that
    region's expansions, cells and results; the recorder the timeouts of its deadline clock."""
    kind = event.get("event_type")
    if kind == "JobSubmitted":
        return "submitter", None
    if kind == "CellScheduled":
        region = event.get("region")
        return "runner", region.get("id") if isinstance(region, dict) else None
    if kind == "ExecutionCompleted" and is_bare_timeout(event):
        return "recorder", None
    return "runner", event.get("region") if isinstance(event.get("region"), str) else None


def is_bare_timeout(event: Mapping[str, Any]) -> bool:
    """A result as the recorder's deadline clock makes it (beacon.domain.results.timeout): the recorder's key signs
    these and nothing else — no answer, no model's words."""
    producer = event.get("producer")
    classification = event.get("classification")
    return (
        event.get("status") == "timeout"
        and isinstance(producer, dict)
        and producer.get("service") == "recorder"
        and event.get("provider") == "deadline"
        and event.get("answer") is None
        and event.get("answer_edits") is None
        and event.get("judgement") is None
        and isinstance(classification, dict)
        and classification.get("label") == "error"
    )


@dataclass(frozen=True)
class Refusal:
    reason: str
    detail: str

    def __str__(self) -> str:
        return f"refused ({self.reason}): {self.detail}"


class Trust:
    """The trusted keys (by id), each bound to a role and region: who may sign what."""

    def __init__(self, keys: Iterable[TrustedKey]) -> None:
        self.keys = {k.key_id: k for k in keys}
        self._verifiers = {k.key_id: VerifyKey(k.public) for k in self.keys.values()}

    def refusal(self, event: Mapping[str, Any], at: datetime) -> Refusal | None:
        """Why this event may not be acted on at `at`, or None: it is signed, by a trusted key of the right role
        and region, not revoked by then, and the signature covers exactly this content."""
        checked = self.check(event, at)
        return checked if isinstance(checked, Refusal) else checked.verdict()

    def check(self, event: Mapping[str, Any], at: datetime) -> Refusal | Pending:
        """Everything but the Ed25519 arithmetic: a Refusal, or the Pending verification of the signature. A
        consumer runs the Pending ones on threads (libsodium frees the GIL), beside its own decoding."""
        block = event.get("signature")
        if block is None:
            return Refusal(UNSIGNED, f"{event.get('event_type')} carries no signature")
        if not isinstance(block, dict) or not isinstance(block.get("key_id"), str):
            return Refusal(MALFORMED, "the signature block has no key_id")
        key = self.keys.get(block["key_id"])
        if key is None:
            return Refusal(UNKNOWN_KEY, f"key {block['key_id'][:60]!r} is not a trusted key")
        role, region = expected_signer(event)
        if key.role != role:
            return Refusal(WRONG_ROLE, f"signed by {key.key_id}, a {key.binding()} key; this needs a {role} key")
        if key.region != region and role in REGIONAL:
            return Refusal(WRONG_REGION, f"signed by {key.key_id}, a {key.binding()} key; this is {region!r}'s")
        if key.revoked_by(at):
            assert key.revoked_at is not None
            return Refusal(REVOKED, f"signed by {key.key_id}, revoked at {key.revoked_at.isoformat()}")
        try:
            signature = unb64(str(block.get("value", "")))
            if b64(signature) != block.get("value"):  # one encoding per signature: no second digest of one fact
                return Refusal(MALFORMED, "the signature is not in its one base64 form")
            return Pending(self._verifiers[key.key_id], key.key_id, event, signature, message(event, exact=False))
        except Malformed as exc:
            return Refusal(MALFORMED, str(exc))
        except (ValueError, TypeError):
            return Refusal(BAD_SIGNATURE, f"the signature of {key.key_id} does not cover this content")


@dataclass(frozen=True)
class Pending:
    """A signature whose key, role, region and form passed: only the Ed25519 verification is left."""

    verifier: VerifyKey
    key_id: str
    event: Mapping[str, Any]
    signature: bytes
    fast_message: bytes  # canonical's fast form, tried first; the exact RFC 8785 form only if it fails

    def verdict(self) -> Refusal | None:
        try:
            try:
                self.verifier.verify(self.fast_message, self.signature)
            except BadSignatureError:
                self.verifier.verify(message(self.event), self.signature)
        except Malformed as exc:
            return Refusal(MALFORMED, str(exc))
        except (BadSignatureError, ValueError, TypeError):
            return Refusal(BAD_SIGNATURE, f"the signature of {self.key_id} does not cover this content")
        return None
