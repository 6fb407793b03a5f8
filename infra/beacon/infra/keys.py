"""Signing keys on disk: who signs, and whom every consumer trusts (beacon.domain.signing says what a
signature is).

A keys folder (BEACON_KEYS_DIR; `make up` makes `.beacon/keys/`) holds:
- `trusted.json`: every public key with its binding (role, region for a runner) and its revocation time, if
  any. Public: every region gets the same file.
- `private/<role>[-<region>].<id>.key` (mode 600, folder 700): a private key. A region needs only its own.

Several keys of one role may be trusted at once, so keys rotate without downtime: generate a new one (the
services sign with the newest live key of their binding once restarted), keep the old one trusted until no
event it signed is still to be read, then revoke it or leave it. A revoked key signs nothing from its
revocation on: consumers refuse its events from then (a replay too), and `beacon verify` fails every result it
signed, whenever it was recorded, since a stolen key can sign with any date.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson
from nacl.signing import SigningKey
from pydantic import BaseModel

from beacon.domain import signing
from beacon.domain.signing import Trust, TrustedKey
from beacon.infra import logs, verifier_process, verifiers
from beacon.schemas.events import Signature

log = logs.get("beacon.infra.keys")

TRUSTED = "trusted.json"
PRIVATE = "private"
RELOAD_EVERY_S = 5.0
# A batch's signatures go to the verifier processes in chunks of this many, beside the consumer's own decoding.
CHECK_CHUNK = 64


class KeysError(ValueError):
    """A keys folder or file that cannot be used; the message says what to do."""


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _write_public(path: Path, data: bytes) -> None:
    """Atomically: a reader never sees half a trusted-keys file."""
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    tmp.chmod(0o644)
    tmp.replace(path)


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One writer of a keys folder at a time (make up, the tests' grants and `beacon keys` may overlap)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def read_trusted(path: Path) -> list[TrustedKey]:
    if not path.exists():
        raise KeysError(
            f"no trusted-keys file at {path}: run `make up` (it makes the local keys) or `beacon keys generate`, "
            "or point BEACON_KEYS_DIR at the folder that holds it"
        )
    try:
        data = json.loads(path.read_text())
        entries = data["keys"]
        return [TrustedKey.of_json(entry) for entry in entries]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise KeysError(f"{path} is not a trusted-keys file: {exc}") from None


def _save_trusted(folder: Path, keys: Iterable[TrustedKey]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    body = {"keys": [k.as_json() for k in keys]}
    _write_public(folder / TRUSTED, (json.dumps(body, indent=2) + "\n").encode())


def generate(folder: Path, role: str, region: str | None = None, at: datetime | None = None) -> TrustedKey:
    """A new key pair of `role` (and `region`, for a runner): its private key in private/ (mode 600), its
    public key added to trusted.json."""
    if role not in signing.ROLES:
        raise KeysError(f"role {role!r} is not one of {', '.join(signing.ROLES)}")
    if (role in signing.REGIONAL) != (region is not None):
        raise KeysError(f"a {role} key {'needs --region' if role in signing.REGIONAL else 'takes no --region'}")
    with _locked(folder):
        existing = _trusted_or_none(folder)
        key = _generate(folder, role, region, at)
        _save_trusted(folder, [*existing, key])
        return key


def _trusted_or_none(folder: Path) -> list[TrustedKey]:
    return read_trusted(folder / TRUSTED) if (folder / TRUSTED).exists() else []


def _private_file(folder: Path, role: str, region: str | None, key_id: str) -> Path:
    name = f"{role}-{region}" if region else role
    return folder / PRIVATE / f"{name}.{key_id.split(':')[1]}.key"


def _generate(folder: Path, role: str, region: str | None, at: datetime | None) -> TrustedKey:
    """A new key pair: its private key written; the caller adds its public key to trusted.json."""
    private = SigningKey.generate()
    public = bytes(private.verify_key)
    key = TrustedKey(
        key_id=signing.key_id_of(public),
        public=public,
        role=role,
        region=region,
        created_at=(at or datetime.now(UTC)).replace(microsecond=0),
    )
    record = {"key_id": key.key_id, "role": role, "region": region, "seed": signing.b64(bytes(private))}
    _write_private(_private_file(folder, role, region, key.key_id), json.dumps(record).encode())
    return key


def revoke(folder: Path, key_id: str, at: datetime | None = None) -> TrustedKey:
    with _locked(folder):
        return _revoke(folder, key_id, at)


def _revoke(folder: Path, key_id: str, at: datetime | None) -> TrustedKey:
    keys = read_trusted(folder / TRUSTED)
    match = [k for k in keys if k.key_id == key_id]
    if not match:
        raise KeysError(f"no key {key_id!r} in {folder / TRUSTED} (`beacon keys list` shows them)")
    when = at or datetime.now(UTC)
    revoked = TrustedKey(**{**match[0].__dict__, "revoked_at": match[0].revoked_at or when})
    _save_trusted(folder, [revoked if k.key_id == key_id else k for k in keys])
    return revoked


def bindings(regions: Iterable[str]) -> list[tuple[str, str | None]]:
    """Every service's binding, for these regions: what `make up` makes a key for."""
    return [("submitter", None), ("recorder", None), *(("runner", r) for r in regions)]


def ensure(folder: Path, bindings: Iterable[tuple[str, str | None]]) -> list[TrustedKey]:
    """A live key for every (role, region) that has none yet (what `make up` runs); returns the new ones."""
    with _locked(folder):
        existing = _trusted_or_none(folder)
        have = {(k.role, k.region) for k in existing if k.revoked_at is None and _private_path(folder, k) is not None}
        made = [_generate(folder, role, region, None) for role, region in bindings if (role, region) not in have]
        if made:  # one write of trusted.json for all of them
            _save_trusted(folder, [*existing, *made])
        return made


def exchange(folders: Iterable[Path]) -> None:
    """Make every folder's trusted.json the union of theirs (public keys only; a revocation anywhere holds
    everywhere): trust domains that each keep their own private keys, and trust one another's public ones."""
    folders = sorted(set(folders))
    union: dict[str, TrustedKey] = {}
    for folder in folders:
        with _locked(folder):
            for key in _trusted_or_none(folder):
                seen = union.get(key.key_id)
                if seen is None or (key.revoked_at and (seen.revoked_at is None or key.revoked_at < seen.revoked_at)):
                    union[key.key_id] = key
    for folder in folders:
        with _locked(folder):
            if {k.key_id: k for k in _trusted_or_none(folder)} != union:
                _save_trusted(folder, union.values())


def _private_path(folder: Path, key: TrustedKey) -> Path | None:
    path = _private_file(folder, key.role, key.region, key.key_id)
    return path if path.exists() else None


E = TypeVar("E", bound=BaseModel)


@dataclass(frozen=True)
class Signer:
    """Signs events as one key of one binding."""

    key_id: str
    key: SigningKey
    role: str
    region: str | None

    def sign(self, event: E) -> E:
        """The event with its signature (fresh salts for whatever a bundle may withhold)."""
        data = event.model_dump(mode="json", exclude={"signature"})
        salts = {name: os.urandom(signing.SALT_BYTES).hex() for name in signing.salt_names(data)}
        block = signing.sign(data, self.key, self.key_id, salts)["signature"]
        return event.model_copy(update={"signature": Signature(**block)})


def signer(folder: Path, role: str, region: str | None = None) -> Signer:
    """The newest live key of this binding that has its private key here."""
    keys = [
        k
        for k in read_trusted(folder / TRUSTED)
        if k.role == role and k.region == region and k.revoked_at is None and _private_path(folder, k)
    ]
    who = f"{role} of {region}" if region else role
    if not keys:
        hint = f"--role {role}" + (f" --region {region}" if region else "")
        raise KeysError(
            f"no live private key of the {who} in {folder}: run `make up`, or `beacon keys generate {hint}`"
        )
    newest = max(keys, key=lambda k: (k.created_at or datetime.min.replace(tzinfo=UTC), k.key_id))
    path = _private_path(folder, newest)
    assert path is not None
    try:
        record: dict[str, Any] = json.loads(path.read_text())
        seed = signing.unb64(record["seed"])
    except (ValueError, KeyError, OSError) as exc:
        raise KeysError(f"{path} is not a private key file: {exc}") from None
    key = SigningKey(seed)
    if signing.key_id_of(bytes(key.verify_key)) != newest.key_id:
        raise KeysError(f"{path} does not hold the private key of {newest.key_id}")
    return Signer(newest.key_id, key, role, region)


class TrustFile:
    """The trusted keys, read again when the file changes (checked at most every RELOAD_EVERY_S), so a
    revocation reaches running consumers without a restart."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / TRUSTED
        self.trust = Trust(read_trusted(self.path))
        self._stamp = self._mtime()
        self._checked = time.monotonic()

    def _mtime(self) -> tuple[int, int, int]:
        """What tells a rewrite (the file is replaced whole): a timestamp alone can miss one in the same tick."""
        try:
            st = self.path.stat()
        except OSError:
            return (0, 0, 0)
        return (st.st_mtime_ns, st.st_ino, st.st_size)

    def current(self) -> Trust:
        if time.monotonic() - self._checked > RELOAD_EVERY_S:
            self._checked = time.monotonic()
            stamp = self._mtime()
            if stamp != self._stamp:
                try:
                    self.trust = Trust(read_trusted(self.path))
                    self._stamp = stamp
                except KeysError:
                    pass  # a half-edited file: keep the last good one, try again next time
        return self.trust

    def refusal(self, raw: bytes, at: datetime | None = None) -> signing.Refusal | None:
        """Why the event in these bytes may not be acted on, or None."""
        checked = self.check(raw, at or datetime.now(UTC))
        return _verdict(checked) if isinstance(checked, signing.Pending) else checked

    def check(self, raw: bytes, at: datetime) -> signing.Refusal | signing.Pending:
        """`refusal` up to the Ed25519 arithmetic (signing.Trust.check)."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return signing.Refusal(signing.MALFORMED, "not JSON")
        if not isinstance(data, dict):
            return signing.Refusal(signing.MALFORMED, "not a JSON object")
        try:
            return self.current().check(data, at)
        except _HOSTILE as exc:
            return signing.Refusal(signing.MALFORMED, f"cannot be checked: {type(exc).__name__}")

    def checked(self, raws: Iterable[bytes], max_bytes: int, pool: verifiers.Pool | None = None) -> Checked:
        """Check a batch (Checked). Records over max_bytes are left to the caller, which refuses them unread."""
        checked = Checked(self, max_bytes, pool)
        checked.add(raws)
        checked.flush()
        return checked


# Shapes of hostile input that make checking raise: they are malformed events, never a consumer's crash.
_HOSTILE = (RecursionError, ValueError, TypeError, AttributeError)


def _verdict(pending: signing.Pending) -> signing.Refusal | None:
    try:
        return pending.verdict()
    except _HOSTILE as exc:
        return signing.Refusal(signing.MALFORMED, f"cannot be checked: {type(exc).__name__}")


class Verifier(Protocol):
    """What a consumer checks a record's bytes with: a TrustFile, or a batch it is checking (Checked)."""

    def refusal(self, raw: bytes, at: datetime | None = None) -> signing.Refusal | None: ...


class Checked:
    """A batch's verdicts, decided as its records are added: parsing and the key's checks here, the Ed25519
    verifications sent in chunks to a verifiers.Pool (when given one) while the consumer goes on decoding.
    Whatever the pool does not answer — none given, a process lost — is verified here when asked for."""

    def __init__(self, trust: TrustFile, max_bytes: int, pool: verifiers.Pool | None = None) -> None:
        self.trust = trust
        self.max_bytes = max_bytes
        self.pool = pool
        self._at = datetime.now(UTC)
        self._decided: dict[bytes, signing.Refusal | None] = {}
        self._pending: dict[bytes, signing.Pending] = {}
        self._chunk: list[tuple[bytes, signing.Pending]] = []
        self._added = 0
        self._first = 0  # index of the first record of the chunk being filled
        self._sent: deque[tuple[int, asyncio.Future[None]]] = deque()  # (index of its first record, its answer)

    def add(self, raws: Iterable[bytes]) -> None:
        for raw in raws:
            if not self._chunk:
                self._first = self._added
            self._added += 1
            if len(raw) > self.max_bytes or raw in self._decided or raw in self._pending:
                continue  # over max_bytes: left to the caller, which refuses it unread
            checked = self.trust.check(raw, self._at)
            if not isinstance(checked, signing.Pending):
                self._decided[raw] = checked
                continue
            self._pending[raw] = checked
            if len(checked.signature) == verifier_process.SIGNATURE_BYTES:
                self._chunk.append((raw, checked))
            if len(self._chunk) == CHECK_CHUNK:
                self.flush()

    def flush(self) -> None:
        """Send the chunk being filled to the pool."""
        chunk, self._chunk = self._chunk, []
        if chunk and self.pool is not None:
            self._sent.append((self._first, asyncio.ensure_future(self._verify(self.pool, chunk))))

    async def _verify(self, pool: verifiers.Pool, chunk: list[tuple[bytes, signing.Pending]]) -> None:
        try:
            good = await pool.verify([(bytes(p.verifier), p.signature, p.fast_message) for _, p in chunk])
        except (verifiers.Lost, OSError) as exc:
            log.warning("verifying_here", error=str(exc))
            return  # left pending: refusal() verifies them
        for (raw, _), ok in zip(chunk, good, strict=True):
            if ok:
                self._decided[raw] = None
                del self._pending[raw]
            # Not in its fast form: refusal() tries the exact RFC 8785 form, and says why if that fails too.

    async def ready(self, upto: int) -> None:
        """Wait until the pool has answered for every record before index `upto` (in the order added)."""
        while self._sent and self._sent[0][0] < upto:
            await self._sent.popleft()[1]

    def refusal(self, raw: bytes, at: datetime | None = None) -> signing.Refusal | None:
        if raw in self._decided:
            return self._decided[raw]
        pending = self._pending.pop(raw, None)
        if pending is None:  # not of this batch
            return self.trust.refusal(raw, at)
        self._decided[raw] = verdict = _verdict(pending)
        return verdict


@dataclass(frozen=True)
class ServiceKeys:
    """A service's side of signing: the key it signs with, and the keys it trusts."""

    signer: Signer
    trust: TrustFile


def of_service(folder: Path, role: str, region: str | None = None) -> ServiceKeys:
    """Read at start, so a service without its keys stops at once, saying what to do (KeysError)."""
    return ServiceKeys(signer(folder, role, region), TrustFile(folder))
