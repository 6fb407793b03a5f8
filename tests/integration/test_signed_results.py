"""Issue 22 on the real Kafka and PostgreSQL: every fact is signed by the service that made it, a forged one is
dead-lettered with its reason while the real one lands, and a job's results leave as a bundle that verifies
on a machine with no Beacon server, and fails when anything in it is changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from beacon.domain import signing
from beacon.infra import keys
from beacon.infra.settings import Settings
from beacon.schemas.topics import dead_letter_topic
from tests.harness import Services, wait_for_rows
from tests.integration.test_only_cells_of_jobs import forged, submit, wait_for_dead_letters
from tests.kafka_tools import produce
from tests.signed import sign
from tests.support import beacon

pytestmark = pytest.mark.pipeline


def test_forged_results_are_refused_by_their_signature_and_the_real_one_lands(
    settings: Settings, pipeline: Services, tmp_path: Path
) -> None:
    topic = settings.topics.executions_completed
    marker = uuid.uuid4().hex[:10]
    job_id = f"forged-{marker}"
    own = settings.keys_dir
    stranger = tmp_path / "stranger-keys"  # a key pair nobody trusts
    keys.generate(stranger, "runner", "eu-west")

    def with_answer(text: str):  # the job's one real cell: eu-west, mistral-7b, math_basic
        return forged(job_id, answer=f"{marker} {text}")

    edited = sign(with_answer("edited after signing"), own)
    edited_bytes = edited.model_dump_json().replace("edited after signing", "edited after signing!").encode()
    lies = {
        "unsigned": with_answer("unsigned").model_dump_json().encode(),
        "us-east key": keys.signer(own, "runner", "us-east").sign(with_answer("us-east key")).model_dump_json(),
        "submitter key": keys.signer(own, "submitter").sign(with_answer("submitter key")).model_dump_json(),
        "stranger key": keys.signer(stranger, "runner", "eu-west").sign(with_answer("stranger key")).model_dump_json(),
        "edited": edited_bytes,
    }
    key = with_answer("x").key.encode()
    produce(settings, topic, [(key, v if isinstance(v, bytes) else v.encode()) for v in lies.values()])
    submit(settings, job_id)
    assert wait_for_rows(settings, pipeline, job_id, 1) == 1
    found = wait_for_dead_letters(settings, topic, marker, len(lies), timeout=30)
    assert {answer.split(" ", 1)[1]: reason.split(":")[0] for answer, reason in found.items()} == {
        "unsigned": f"refused ({signing.UNSIGNED})",
        "us-east key": f"refused ({signing.WRONG_REGION})",
        "submitter key": f"refused ({signing.WRONG_ROLE})",
        "stranger key": f"refused ({signing.UNKNOWN_KEY})",
        "edited after signing!": f"refused ({signing.BAD_SIGNATURE})",
    }
    with psycopg.connect(settings.database_url) as conn:
        (answer,) = conn.execute("SELECT answer FROM executions WHERE job_id = %s", (job_id,)).fetchone()
    assert marker not in (answer or ""), "a forged result took the cell"
    assert dead_letter_topic(topic)  # the topic the reasons were read from
    pipeline.assert_alive()


def offline_env(tmp_path: Path) -> dict[str, str]:
    """A machine with no Beacon server: no state folder, and addresses where nothing listens."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BEACON_", "KAFKA_", "DATABASE_"))}
    return env | {
        "BEACON_STATE_DIR": str(tmp_path / "no-state"),
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
    }


def verify_offline(bundle: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "beacon.cli", "verify", str(bundle), *args],
        capture_output=True,
        env=offline_env(tmp_path),
        timeout=60,
    )


def test_an_exported_job_verifies_offline_and_fails_once_changed(
    settings: Settings, pipeline: Services, api: httpx.Client, tmp_path: Path
) -> None:
    job_id = f"export-{uuid.uuid4().hex[:10]}"
    spec = {
        "job_id": job_id,
        "questions": ["math_basic", "taiwan_status"],
        "models": ["mistral-7b", "qwen2.5-1.5b"],
        "regions": ["eu-west", "us-east"],
    }
    assert beacon(settings, "submit", "-", stdin=json.dumps(spec).encode()).returncode == 0
    assert wait_for_rows(settings, pipeline, job_id, 8) == 8

    out = tmp_path / "bundle.jsonl"
    done = beacon(settings, "export", job_id, "--out", str(out))
    assert done.returncode == 0, done.stderr.decode()
    root = done.stderr.decode().split("Merkle root ")[1].split()[0]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sum("result" in line for line in lines) == 8 and sum("job" in line for line in lines) == 1

    ok = verify_offline(out, tmp_path, "--root", root, "--trusted", str(settings.keys_dir / keys.TRUSTED))
    assert ok.returncode == 0, ok.stdout.decode() + ok.stderr.decode()
    assert f"VERIFIED: {out}: 8 verified; Merkle root {root}" in ok.stdout.decode()
    from_db = beacon(settings, "verify", job_id)
    assert from_db.returncode == 0 and f"Merkle root {root}" in from_db.stdout.decode()

    # One answer changed in the file: that cell fails, the rest still verify, the command exits 1.
    results = [i for i, line in enumerate(lines) if "result" in line]
    changed = [dict(line) for line in lines]
    changed[results[0]] = {"result": {**lines[results[0]]["result"], "answer": "something else entirely"}}
    edited = tmp_path / "edited.jsonl"
    edited.write_text("".join(json.dumps(line) + "\n" for line in changed))
    bad = verify_offline(edited, tmp_path)
    text = bad.stdout.decode()
    assert bad.returncode == 1 and "NOT VERIFIED" in text and "7 verified, 1 failed" in text, text
    assert f"refused ({signing.BAD_SIGNATURE})" in text

    # Withheld: the prompts and answers of taiwan_status are not in the file, yet it verifies, under the same root.
    hidden = tmp_path / "withheld.jsonl"
    done = beacon(settings, "export", job_id, "--withhold", "taiwan_status", "--out", str(hidden))
    assert done.returncode == 0 and f"Merkle root {root}" in done.stderr.decode()
    assert "Taiwan" not in hidden.read_text()
    ok = verify_offline(hidden, tmp_path, "--root", root)
    assert ok.returncode == 0 and "4 verified, 4 withheld" in ok.stdout.decode(), ok.stdout.decode()

    # The read API shows each row's verification state.
    rows = api.get(f"/jobs/{job_id}/executions").json()["executions"]
    assert [r["verification"]["state"] for r in rows] == ["verified"] * 8
    assert all("event" not in r for r in rows)
