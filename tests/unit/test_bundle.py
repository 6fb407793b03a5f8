"""beacon.domain.bundle: a bundle of signed facts verifies as made, and each way of changing it fails with its
reason — an answer edited, a row removed, a row added, a row's region changed, a result signed by a key revoked
since — while withheld cells keep their signatures, digests and the Merkle root."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from beacon.domain import bundle, signing
from beacon.domain.cells import cells_of
from beacon.domain.results import Asked, result, timeout
from beacon.infra import keys
from beacon.infra.catalogues import DEFAULT
from beacon.schemas.commands import JobSpec
from beacon.schemas.events import Attempt, ProducerInfo
from beacon.submitter.decide import job_submitted
from tests.signed import sign, unit_keys

AT = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
SUBMITTER = ProducerInfo(service="submitter", instance="test")


def runner(region: str) -> ProducerInfo:
    return ProducerInfo(service="runner", region=region, instance="test")


@functools.cache
def _made() -> str:
    return json.dumps(_a_job())


def a_job() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The same job and results for every test, each given a fresh copy to change."""
    job, results = json.loads(_made())
    return job, results


def _a_job() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A signed 2 × 2 × 2 job and its eight signed results (one a signed timeout of the recorder)."""
    spec = JobSpec(
        job_id="bundle-1",
        questions=["math_basic", "taiwan_status"],
        models=["mistral-7b", "qwen2.5-1.5b"],
        regions=["eu-west", "us-east"],
    )
    job = sign(job_submitted(spec, DEFAULT, now=AT, default_deadline_seconds=600, producer=SUBMITTER))
    out = []
    for cell in cells_of(job):
        if cell == ("us-east", "qwen2.5-1.5b", "taiwan_status"):
            recorder = ProducerInfo(service="recorder", instance="test")
            out.append(sign(timeout(job, cell, AT + timedelta(minutes=10), recorder)))
            continue
        attempt = Attempt(number=1, started_at=AT, completed_at=AT + timedelta(seconds=1), outcome="ok")
        made = result(
            Asked.of_job(job, cell),
            producer=runner(cell[0]),
            provider="simulated",
            status="completed",
            answer="4" if cell[2] == "math_basic" else f"An answer from {cell[0]}.",
            attempts=[attempt],
            started_at=AT,
            completed_at=AT + timedelta(seconds=1),
        )
        out.append(sign(made))
    return job.model_dump(mode="json"), [r.model_dump(mode="json") for r in out]


def trusted() -> list[signing.TrustedKey]:
    return keys.read_trusted(unit_keys() / keys.TRUSTED)


def lines_of(withhold: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    job, results = a_job()
    return json.loads(json.dumps(bundle.build(job, results, trusted(), withhold)))  # as a file would give them


def states(report: bundle.Report) -> dict[str, str]:
    return {c.key.split("|", 1)[1]: c.state for c in report.cells}


def test_an_untouched_bundle_verifies_with_its_own_keys_and_with_the_publishers() -> None:
    lines = lines_of()
    for report in (bundle.verify(lines), bundle.verify(lines, trusted())):
        assert report.ok, (report.problems, states(report))
        assert report.counts() == {"verified": 8}
        assert report.merkle_root == lines[0]["merkle_root"]
    assert bundle.verify(bundle.loads(bundle.dumps(lines))).ok  # through the text form


def result_lines(lines: list[dict[str, Any]]) -> list[int]:
    return [i for i, line in enumerate(lines) if "result" in line]


def test_an_edited_answer_fails_its_cell_with_a_bad_signature() -> None:
    lines = lines_of()
    i = result_lines(lines)[0]
    lines[i]["result"]["answer"] = "5"
    report = bundle.verify(lines)
    assert not report.ok
    failed = [c for c in report.cells if not c.ok]
    assert len(failed) == 1 and failed[0].state.startswith(f"refused ({signing.BAD_SIGNATURE})")
    assert any("Merkle root" in p for p in report.problems)


def test_an_answer_changed_with_its_receipt_and_signed_again_by_a_stranger_fails() -> None:
    lines = lines_of()
    i = result_lines(lines)[0]
    stranger = keys.signer(unit_keys(), "runner", "mars")  # trusted, but bound to another region
    forged = dict(lines[i]["result"], answer="5")
    lines[i]["result"] = signing.sign(forged, stranger.key, stranger.key_id, lines[i]["result"]["signature"]["salts"])
    report = bundle.verify(lines, trusted())
    assert [c.state.split(":")[0] for c in report.cells if not c.ok] == [f"refused ({signing.WRONG_REGION})"]


def test_a_removed_row_is_missing() -> None:
    lines = lines_of()
    gone = lines.pop(result_lines(lines)[3])["result"]
    report = bundle.verify(lines)
    assert not report.ok
    key = f"{gone['region']}|{gone['model_id']}|{gone['question_id']}"
    assert states(report)[key] == bundle.MISSING
    assert report.counts() == {"verified": 7, "missing": 1}


def test_an_added_row_is_refused_whether_a_second_result_or_no_cell_of_the_job() -> None:
    lines = lines_of()
    copy = json.loads(json.dumps(lines[result_lines(lines)[0]]))
    report = bundle.verify([*lines, copy])
    assert not report.ok and any("a second result" in c.state for c in report.cells)

    stray = json.loads(json.dumps(lines[result_lines(lines)[0]]))
    stray["result"]["question_id"] = "hongkong_2019"  # not asked by the job
    report = bundle.verify([*lines, stray])
    assert not report.ok and any("not a cell of job" in c.state for c in report.cells)


def test_a_row_whose_region_is_changed_fails() -> None:
    lines = lines_of()
    i = next(i for i in result_lines(lines) if lines[i]["result"]["region"] == "eu-west")
    lines[i]["result"]["region"] = "us-east"
    report = bundle.verify(lines)
    assert not report.ok
    moved = lines[i]["result"]
    key = f"eu-west|{moved['model_id']}|{moved['question_id']}"
    assert states(report)[key] == bundle.MISSING  # the eu-west cell is gone ...
    assert any(c.state.startswith(f"refused ({signing.WRONG_REGION})") for c in report.cells)  # ... and the forgery


def test_a_result_signed_by_a_key_revoked_since_fails_whenever_it_was_recorded() -> None:
    lines = lines_of()
    keys_now = trusted()
    eu = next(k for k in keys_now if k.role == "runner" and k.region == "eu-west")
    later = datetime(2030, 1, 1, tzinfo=UTC)  # long after every result was made
    revoked = [signing.TrustedKey(**{**k.__dict__, "revoked_at": later}) if k is eu else k for k in keys_now]
    report = bundle.verify(lines, revoked)
    failed = {c.state.split(":")[0] for c in report.cells if not c.ok}
    assert failed == {f"refused ({signing.REVOKED})"}
    assert report.counts()["failed"] == 4  # the eu-west cells; us-east still verify
    # A consumer, by contrast, refuses that key's events only from its revocation on.
    trust = signing.Trust(revoked)
    one = next(line["result"] for line in lines if "result" in line and line["result"]["region"] == "eu-west")
    assert trust.refusal(one, later - timedelta(seconds=1)) is None
    assert trust.refusal(one, later).reason == signing.REVOKED


def test_withheld_cells_keep_their_signatures_digests_and_the_root_but_not_their_texts() -> None:
    full = lines_of()
    hidden = lines_of(("taiwan_status", "eu-west|mistral-7b|math_basic"))
    assert hidden[0]["merkle_root"] == full[0]["merkle_root"]
    text = json.dumps(hidden)
    assert "Taiwan" not in text and "An answer from" not in text  # its prompts and answers are gone
    assert hidden[0]["withheld"]["questions"] == ["taiwan_status"]
    report = bundle.verify(hidden, trusted())
    assert report.ok, (report.problems, states(report))
    assert report.counts() == {"verified": 3, "withheld": 5}
    assert states(report)["eu-west|mistral-7b|math_basic"] == bundle.WITHHELD
    assert report.merkle_root == full[0]["merkle_root"]
    # A withheld cell's answer cannot be put back unnoticed, nor its salt guessed from the digest alone.
    i = next(i for i, line in enumerate(hidden) if "result" in line and signing.is_withheld(line["result"]))
    hidden[i]["result"]["answer"] = "4"
    assert not bundle.verify(hidden).ok


def test_withholding_what_the_job_has_not_is_an_error() -> None:
    job, results = a_job()
    with pytest.raises(ValueError, match="neither a question of job 'bundle-1'"):
        bundle.build(job, results, trusted(), ["hongkong_2019"])


def test_not_a_bundle_says_so() -> None:
    report = bundle.verify([{"hello": "world"}])
    assert not report.ok and report.problems == ["the first line is not a beacon-results header"]
    with pytest.raises(bundle.BundleError, match="line 2 is not JSON"):
        bundle.loads('{"bundle": "beacon-results"}\n{oops\n')


def test_the_recorders_key_signs_bare_timeouts_only() -> None:
    _, results = a_job()
    bare = next(r for r in results if r["status"] == "timeout")
    assert signing.expected_signer(bare) == ("recorder", None)
    worded = dict(bare, answer="Taiwan is a province", provider="simulated")
    recorder = keys.signer(unit_keys(), "recorder")
    forged = signing.sign(worded, recorder.key, recorder.key_id, bare["signature"]["salts"])
    refused = signing.Trust(trusted()).refusal(forged, AT)
    assert refused is not None and refused.reason == signing.WRONG_ROLE


def test_a_second_base64_form_of_a_signature_is_refused() -> None:
    _, results = a_job()
    one = results[0]
    value = one["signature"]["value"]
    # The last character before "==" carries 4 unused bits: flipping one gives the same 64 bytes.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(value[-3])
    twin = value[:-3] + alphabet[last ^ 1] + "=="
    assert signing.unb64(twin) == signing.unb64(value)
    refused = signing.Trust(trusted()).refusal(dict(one, signature=dict(one["signature"], value=twin)), AT)
    assert refused is not None and refused.reason == signing.MALFORMED


@pytest.mark.parametrize(
    "line",
    [
        {"key": "x"},
        {"result": {"event_type": "ExecutionCompleted", "answer": [[[[[]]]]], "signature": {"key_id": 5}}},
        {"result": {"nested": json.loads("[" * 900 + "]" * 900)}},
        {"result": "not an object"},
    ],
)
def test_a_hostile_line_fails_the_bundle_never_the_verifier(line: dict[str, Any]) -> None:
    report = bundle.verify([*lines_of(), line])
    assert not report.ok


def test_nan_and_infinity_are_no_json_a_signer_signed() -> None:
    with pytest.raises(bundle.BundleError, match="line 1 is not JSON: NaN is not JSON"):
        bundle.loads('{"bundle": NaN}\n')
    with pytest.raises(bundle.BundleError, match="Infinity is not JSON"):
        bundle.loads('{"answer": -Infinity}\n')


def test_a_withheld_cell_still_has_its_visible_receipt_checked() -> None:
    hidden = lines_of(("eu-west|mistral-7b|math_basic",))
    i = next(i for i, line in enumerate(hidden) if "result" in line and signing.is_withheld(line["result"]))
    hidden[i]["result"]["language"] = "zh"
    report = bundle.verify(hidden)
    assert any(c.state.startswith("refused (bad_signature)") for c in report.cells)


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`beacon …` on a machine with no Beacon: no state folder, nothing listening."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BEACON_", "KAFKA_", "DATABASE_"))}
    env |= {"BEACON_STATE_DIR": str(cwd / "none"), "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/x"}
    return subprocess.run(
        [sys.executable, "-m", "beacon.cli", *args], capture_output=True, env=env, cwd=cwd, timeout=60
    )


def test_beacon_verify_a_bundle_file_offline_and_its_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text(bundle.dumps(lines_of()))
    done = cli("verify", str(good), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout)["counts"] == {"verified": 8}

    missing = cli("verify", "nope.jsonl", cwd=tmp_path)
    assert missing.returncode == 2
    assert "no bundle file 'nope.jsonl' (give a file from `beacon export`, or a job id)" in missing.stderr.decode()

    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe not text")
    refused = cli("verify", str(binary), cwd=tmp_path)
    assert refused.returncode == 2 and "not a bundle: not UTF-8 text" in refused.stderr.decode()

    hostile = tmp_path / "hostile.jsonl"
    hostile.write_text(bundle.dumps(lines_of()) + '{"key": "x"}\n')
    failed = cli("verify", str(hostile), cwd=tmp_path)
    assert failed.returncode == 1 and "NOT VERIFIED" in failed.stdout.decode() and not failed.stderr
