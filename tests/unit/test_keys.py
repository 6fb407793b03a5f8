"""beacon.infra.keys: the keys folder (private keys mode 600 in a 700 folder, trusted.json), rotation with
several live keys of one binding, revocation, the errors that say what to run, and a TrustFile that sees a
revocation without a restart. Each test has a keys folder of its own (tmp_path)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from beacon.domain import signing
from beacon.infra import keys, verifiers
from beacon.infra.keys import KeysError, TrustFile
from tests.support import a_cell

T0 = datetime(2026, 6, 1, tzinfo=UTC)
CELL = a_cell("j1")  # eu-west


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def trusted(folder: Path) -> list[dict]:
    return json.loads((folder / keys.TRUSTED).read_text())["keys"]


def test_generate_writes_the_private_key_mode_600_in_a_700_folder_and_the_public_one_to_trusted_json(
    tmp_path: Path,
) -> None:
    key = keys.generate(tmp_path, "runner", "eu-west", at=T0)
    [private] = (tmp_path / keys.PRIVATE).iterdir()
    assert private.name == f"runner-eu-west.{key.key_id.split(':')[1]}.key"
    assert mode(private) == 0o600 and mode(tmp_path / keys.PRIVATE) == 0o700
    assert mode(tmp_path / keys.TRUSTED) == 0o644  # public: every region gets the same file
    [entry] = trusted(tmp_path)
    assert entry == {
        "key_id": key.key_id,
        "algorithm": "ed25519",
        "public_key": signing.b64(key.public),
        "role": "runner",
        "region": "eu-west",
        "created_at": T0.isoformat(),
        "revoked_at": None,
    }
    assert key.key_id == signing.key_id_of(key.public)
    assert "seed" not in (tmp_path / keys.TRUSTED).read_text()
    # The private key is the public one's, and signs what the trust file accepts.
    signer = keys.signer(tmp_path, "runner", "eu-west")
    assert signer.key_id == key.key_id and bytes(signer.key.verify_key) == key.public
    assert TrustFile(tmp_path).current().refusal(signer.sign(CELL).model_dump(mode="json"), T0) is None


def test_generate_keeps_a_private_folder_700_even_if_it_was_opened_up(tmp_path: Path) -> None:
    (tmp_path / keys.PRIVATE).mkdir(mode=0o755)
    (tmp_path / keys.PRIVATE).chmod(0o755)
    keys.generate(tmp_path, "submitter")
    assert mode(tmp_path / keys.PRIVATE) == 0o700


@pytest.mark.parametrize(
    ("role", "region", "message"),
    [
        ("runner", None, "a runner key needs --region"),
        ("submitter", "eu-west", "a submitter key takes no --region"),
        ("reader", None, "role 'reader' is not one of submitter, runner, recorder"),
    ],
)
def test_generate_refuses_a_binding_that_is_not_one(
    tmp_path: Path, role: str, region: str | None, message: str
) -> None:
    with pytest.raises(KeysError) as refused:
        keys.generate(tmp_path, role, region)
    assert str(refused.value) == message
    assert not (tmp_path / keys.TRUSTED).exists()


def test_ensure_makes_one_live_key_per_binding_once(tmp_path: Path) -> None:
    made = keys.ensure(tmp_path, keys.bindings(["us-east", "eu-west"]))
    assert {(k.role, k.region) for k in made} == {
        ("submitter", None),
        ("recorder", None),
        ("runner", "us-east"),
        ("runner", "eu-west"),
    }
    assert keys.ensure(tmp_path, keys.bindings(["us-east", "eu-west"])) == []
    [eu] = [k for k in made if k.region == "eu-west"]
    keys.revoke(tmp_path, eu.key_id)
    [again] = keys.ensure(tmp_path, keys.bindings(["us-east", "eu-west"]))  # a revoked key is no live one
    assert (again.role, again.region) == ("runner", "eu-west") and again.key_id != eu.key_id


def test_several_keys_of_one_role_are_trusted_at_once_and_the_signer_is_the_newest_live_one(tmp_path: Path) -> None:
    old = keys.generate(tmp_path, "runner", "eu-west", at=T0)
    new = keys.generate(tmp_path, "runner", "eu-west", at=T0 + timedelta(days=30))
    older = keys.generate(tmp_path, "runner", "eu-west", at=T0 - timedelta(days=30))  # made last, dated first
    assert keys.signer(tmp_path, "runner", "eu-west").key_id == new.key_id
    trust = TrustFile(tmp_path).current()
    assert set(trust.keys) == {old.key_id, new.key_id, older.key_id}
    # What any of them signed verifies (rotation without downtime): sign with each.
    for key in (old, new, older):
        event = sign_with(tmp_path, key.key_id).model_dump(mode="json")
        assert event["signature"]["key_id"] == key.key_id
        assert trust.refusal(event, T0) is None


def sign_with(folder: Path, key_id: str):
    """CELL signed with this key (its private file read as keys.signer reads it)."""
    from nacl.signing import SigningKey

    [path] = (folder / keys.PRIVATE).glob(f"*.{key_id.split(':')[1]}.key")
    seed = signing.unb64(json.loads(path.read_text())["seed"])
    return keys.Signer(key_id, SigningKey(seed), "runner", "eu-west").sign(CELL)


def test_revoke_marks_the_key_and_the_signer_falls_back_to_the_newest_live_one(tmp_path: Path) -> None:
    old = keys.generate(tmp_path, "recorder", at=T0)
    new = keys.generate(tmp_path, "recorder", at=T0 + timedelta(days=1))
    revoked = keys.revoke(tmp_path, new.key_id, at=T0 + timedelta(days=2))
    assert revoked.revoked_at == T0 + timedelta(days=2) and revoked.key_id == new.key_id
    by_id = {e["key_id"]: e for e in trusted(tmp_path)}
    assert by_id[new.key_id]["revoked_at"] == (T0 + timedelta(days=2)).isoformat()
    assert by_id[old.key_id]["revoked_at"] is None
    assert keys.signer(tmp_path, "recorder").key_id == old.key_id
    again = keys.revoke(tmp_path, new.key_id, at=T0 + timedelta(days=9))  # the first revocation stands
    assert again.revoked_at == T0 + timedelta(days=2)
    with pytest.raises(KeysError) as refused:
        keys.revoke(tmp_path, "ed25519:" + "0" * 16)
    assert str(refused.value) == (
        f"no key 'ed25519:{'0' * 16}' in {tmp_path / keys.TRUSTED} (`beacon keys list` shows them)"
    )


def test_a_missing_trusted_keys_file_says_what_to_run(tmp_path: Path) -> None:
    for attempt in (lambda: TrustFile(tmp_path), lambda: keys.signer(tmp_path, "submitter")):
        with pytest.raises(KeysError) as refused:
            attempt()
        message = str(refused.value)
        assert message.startswith(f"no trusted-keys file at {tmp_path / keys.TRUSTED}: ")
        assert "run `make up`" in message and "`beacon keys generate`" in message and "BEACON_KEYS_DIR" in message


def test_a_missing_private_key_says_what_to_run(tmp_path: Path) -> None:
    keys.generate(tmp_path, "runner", "eu-west")
    for path in (tmp_path / keys.PRIVATE).iterdir():
        path.unlink()  # a region's folder holds only its own private key: here, none
    with pytest.raises(KeysError) as refused:
        keys.signer(tmp_path, "runner", "eu-west")
    assert str(refused.value) == (
        f"no live private key of the runner of eu-west in {tmp_path}: run `make up`, or "
        "`beacon keys generate --role runner --region eu-west`"
    )
    with pytest.raises(KeysError) as other:
        keys.signer(tmp_path, "submitter")
    assert str(other.value).endswith("run `make up`, or `beacon keys generate --role submitter`")
    with pytest.raises(KeysError):
        keys.of_service(tmp_path, "runner", "eu-west")  # a service without its key stops at start


def test_a_revoked_only_key_is_no_signer(tmp_path: Path) -> None:
    key = keys.generate(tmp_path, "submitter")
    keys.revoke(tmp_path, key.key_id)
    with pytest.raises(KeysError, match="no live private key of the submitter"):
        keys.signer(tmp_path, "submitter")


def test_a_private_key_file_that_is_not_one_is_a_keys_error(tmp_path: Path) -> None:
    key = keys.generate(tmp_path, "submitter")
    [path] = (tmp_path / keys.PRIVATE).iterdir()
    path.write_text("{}")
    with pytest.raises(KeysError) as refused:
        keys.signer(tmp_path, "submitter")
    assert str(refused.value).startswith(f"{path} is not a private key file")
    other = keys.generate(tmp_path / "other", "submitter")
    [elsewhere] = (tmp_path / "other" / keys.PRIVATE).iterdir()
    path.write_bytes(elsewhere.read_bytes())  # another key's seed under this key's name
    with pytest.raises(KeysError) as mismatch:
        keys.signer(tmp_path, "submitter")
    assert str(mismatch.value) == f"{path} does not hold the private key of {key.key_id}"
    assert other.key_id != key.key_id


def test_a_trusted_keys_file_that_is_not_one_is_a_keys_error(tmp_path: Path) -> None:
    (tmp_path / keys.TRUSTED).write_text('{"keys": [{"key_id": "x"}]}')
    with pytest.raises(KeysError) as refused:
        TrustFile(tmp_path)
    assert str(refused.value).startswith(f"{tmp_path / keys.TRUSTED} is not a trusted-keys file: ")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"algorithm": "rsa"}, "algorithm 'rsa': only ed25519 is known"),
        ({"key_id": "ed25519:" + "0" * 16}, "is not the id of its public key"),
        ({"role": "reader"}, "role 'reader' is not one of submitter, runner, recorder"),
        ({"region": None}, "a runner key needs region"),
        ({"revoked_at": "2026-06-01T00:00:00"}, "revoked_at needs a time zone"),
    ],
)
def test_a_trusted_key_entry_is_checked(tmp_path: Path, change: dict, message: str) -> None:
    keys.generate(tmp_path, "runner", "eu-west")
    [entry] = trusted(tmp_path)
    with pytest.raises(ValueError, match=message):
        signing.TrustedKey.of_json({**entry, **change})


def test_a_trust_file_sees_a_revocation_without_a_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys, "RELOAD_EVERY_S", 0)
    keys.generate(tmp_path, "runner", "eu-west")
    signer = keys.signer(tmp_path, "runner", "eu-west")
    raw = signer.sign(CELL).model_dump_json().encode()
    written_earlier = time.time() - 60
    os.utime(tmp_path / keys.TRUSTED, (written_earlier, written_earlier))  # as if made a minute ago
    trust = TrustFile(tmp_path)
    assert trust.refusal(raw) is None
    keys.revoke(tmp_path, signer.key_id, at=datetime.now(UTC) - timedelta(seconds=1))
    refused = trust.refusal(raw)
    assert refused is not None and refused.reason == signing.REVOKED


def test_a_trust_file_keeps_its_last_good_keys_while_the_file_is_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keys, "RELOAD_EVERY_S", 0)
    keys.generate(tmp_path, "runner", "eu-west")
    raw = keys.signer(tmp_path, "runner", "eu-west").sign(CELL).model_dump_json().encode()
    trust = TrustFile(tmp_path)
    (tmp_path / keys.TRUSTED).write_text('{"keys": [')
    os.utime(tmp_path / keys.TRUSTED, (time.time() + 5, time.time() + 5))
    assert trust.refusal(raw) is None


def test_without_reloading_a_trust_file_keeps_what_it_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys, "RELOAD_EVERY_S", 3600)
    keys.generate(tmp_path, "runner", "eu-west")
    signer = keys.signer(tmp_path, "runner", "eu-west")
    trust = TrustFile(tmp_path)
    keys.revoke(tmp_path, signer.key_id, at=datetime.now(UTC) - timedelta(seconds=1))
    assert trust.refusal(signer.sign(CELL).model_dump_json().encode()) is None  # checked again within the hour


def test_the_trust_file_refuses_bytes_that_are_no_json_object(tmp_path: Path) -> None:
    keys.generate(tmp_path, "submitter")
    trust = TrustFile(tmp_path)
    assert str(trust.refusal(b"{not json")) == "refused (malformed_signature): not JSON"
    assert str(trust.refusal(b"[]")) == "refused (malformed_signature): not a JSON object"


def a_mixed_batch(folder: Path) -> tuple[list[bytes], int]:
    """Good results over two chunks, with an unsigned one, one of another region, one changed after signing,
    one that is no JSON and one over max_bytes (1000) among them; and the index of the other region's."""
    keys.ensure(folder, [("runner", "eu-west"), ("runner", "us-east")])
    good = [keys.signer(folder, "runner", "eu-west").sign(a_cell(f"j{i}")) for i in range(keys.CHECK_CHUNK + 5)]
    raws = [g.model_dump_json().encode() for g in good]
    raws[3] = CELL.model_dump_json().encode()  # unsigned
    second = keys.CHECK_CHUNK + 2  # in the second chunk
    raws[second] = keys.signer(folder, "runner", "us-east").sign(CELL).model_dump_json().encode()  # wrong region
    raws[1] = raws[1].replace(b'"j1"', b'"jX"')  # signed, then changed: only the Ed25519 check can tell
    raws.append(b"{not json")
    raws.append(b"x" * 2000)  # over max_bytes: left to the caller, answered as the trust file would
    return raws, second


def assert_verdicts_of_a_mixed_batch(checked: keys.Checked, trust: TrustFile, raws: list[bytes], second: int) -> None:
    verdicts = [checked.refusal(raw) for raw in raws]
    assert verdicts == [trust.refusal(raw) for raw in raws]
    assert [i for i, v in enumerate(verdicts) if v is not None] == [1, 3, second, len(raws) - 2, len(raws) - 1]
    assert [verdicts[i].reason for i in (1, 3, second, len(raws) - 2)] == [  # type: ignore[union-attr]
        signing.BAD_SIGNATURE,
        signing.UNSIGNED,
        signing.WRONG_REGION,
        signing.MALFORMED,
    ]
    outside = keys.signer(trust.path.parent, "runner", "us-east").sign(a_cell("x")).model_dump_json().encode()
    assert checked.refusal(outside) == trust.refusal(outside) and checked.refusal(outside) is not None


def test_a_batch_checked_without_verifier_processes_gives_each_record_the_trust_files_verdict(tmp_path: Path) -> None:
    raws, second = a_mixed_batch(tmp_path)
    trust = TrustFile(tmp_path)
    assert_verdicts_of_a_mixed_batch(trust.checked(raws, max_bytes=1000), trust, raws, second)


def test_a_batch_checked_in_verifier_processes_gives_each_record_the_trust_files_verdict(tmp_path: Path) -> None:
    raws, second = a_mixed_batch(tmp_path)
    trust = TrustFile(tmp_path)

    async def check() -> tuple[keys.Checked, int]:
        async with verifiers.Pool() as pool:
            checked = trust.checked(raws, max_bytes=1000, pool=pool)
            await checked.ready(len(raws))
            return checked, len(checked._pending)

    checked, left = asyncio.run(check())
    assert left == 1  # only the one changed after signing: the processes said no, so it is checked here, exactly
    assert_verdicts_of_a_mixed_batch(checked, trust, raws, second)


def test_a_batch_whose_verifier_processes_are_killed_is_verified_here(tmp_path: Path) -> None:
    raws, second = a_mixed_batch(tmp_path)
    trust = TrustFile(tmp_path)

    async def check() -> tuple[keys.Checked, list[int], list[int]]:
        async with verifiers.Pool() as pool:
            await pool.verify([])  # started
            killed = pool.pids
            for pid in killed:
                os.kill(pid, signal.SIGKILL)
            checked = trust.checked(raws, max_bytes=1000, pool=pool)
            await checked.ready(len(raws))  # the chunks are lost: no exception, the records stay pending
            assert len(checked._pending) > keys.CHECK_CHUNK
            await pool.verify([])  # the lost processes are started again
            return checked, killed, pool.pids

    checked, killed, restarted = asyncio.run(check())
    assert len(restarted) == verifiers.PROCESSES and not set(restarted) & set(killed)
    assert_verdicts_of_a_mixed_batch(checked, trust, raws, second)


@pytest.mark.parametrize(
    "hostile",
    [
        {"event_type": "CellScheduled", "signature": {"key_id": "k", "value": "v"}, "region": {"id": ["x"]}},
        {"event_type": "ExecutionCompleted", "signature": {"key_id": "k", "salts": "not a table"}, "status": []},
        {"event_type": "JobSubmitted", "signature": {"key_id": "k"}, "questions": [1, None, {"id": []}]},
    ],
    ids=["region-id-a-list", "salts-a-string", "questions-of-anything"],
)
def test_a_hostile_shape_is_refused_never_raised(tmp_path: Path, hostile: dict) -> None:
    key = keys.generate(tmp_path, "runner", "eu-west")
    event = {**hostile, "signature": {**hostile["signature"], "key_id": key.key_id}}
    refused = TrustFile(tmp_path).refusal(json.dumps(event).encode())
    assert refused is not None
