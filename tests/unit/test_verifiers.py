"""The verifier processes (beacon.infra.verifiers, verifier_process): their answers, their end with the
consumer — even a killed one — and nothing of the consumer's environment in them."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from nacl.signing import SigningKey

from beacon.infra import verifier_process, verifiers


def signed(message: bytes, key: SigningKey) -> verifier_process.Item:
    return (bytes(key.verify_key), key.sign(message).signature, message)


def test_a_verifier_answers_one_byte_per_signature_in_the_order_asked() -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    good = signed(b"an event", key)
    changed = (good[0], good[1], b"an event, changed")
    foreign = (bytes(other.verify_key), good[1], good[2])  # another key's claim to the same signature
    requests = io.BytesIO(verifier_process.encode([good, changed, foreign]) + verifier_process.encode([good]))
    answers = io.BytesIO()
    verifier_process.serve(requests, answers)
    assert answers.getvalue() == b"\x01\x00\x00" + b"\x01"


def test_a_verifier_cut_off_mid_request_answers_nothing_and_ends() -> None:
    whole = verifier_process.encode([signed(b"an event", SigningKey.generate())] * 2)
    for cut in (2, 4 + 32, len(whole) - 1):
        answers = io.BytesIO()
        verifier_process.serve(io.BytesIO(whole[:cut]), answers)  # returns: it does not wait or raise
        assert answers.getvalue() == b""


def gone(pid: int) -> bool:
    """Ended: no such process, or a zombie (the killed consumer's children are left to init to reap)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].startswith("Z")
    except FileNotFoundError:
        return True


def test_verifier_processes_end_when_their_consumer_is_killed(tmp_path: Path) -> None:
    consumer = textwrap.dedent(
        """
        import asyncio, sys, time
        from beacon.infra import verifiers

        async def main():
            pool = verifiers.Pool()
            await pool.verify([])
            print(*pool.pids, flush=True)
            time.sleep(600)

        asyncio.run(main())
        """
    )
    env = {**os.environ, "BEACON_KAFKA_PASSWORD": "not-for-the-verifier"}
    proc = subprocess.Popen([sys.executable, "-c", consumer], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == verifiers.PROCESSES
        for pid in pids:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            assert b"not-for-the-verifier" not in environ and b"BEACON_" not in environ
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while not all(gone(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(gone(pid) for pid in pids), f"verifier processes {pids} outlived their killed consumer"
    finally:
        proc.kill()
