"""A process that checks Ed25519 signatures for a consumer (beacon.infra.verifiers starts it): it reads
requests on stdin and answers each on stdout, and ends when its stdin closes — when the consumer stops or is
killed — so it never outlives it.

A request: a 4-byte count, then per item a 32-byte public key, a 64-byte signature, a 4-byte length and the
message. The answer: one byte per item, 1 if the signature verifies, 0 if not. Integers are big-endian.

It only does arithmetic on bytes it is handed: which key may sign what, and why a signature that fails
fails, stay with the consumer (beacon.domain.signing). It imports nothing of Beacon but this file, and the
consumer gives it no secrets and no environment beyond what Python needs to start."""

from __future__ import annotations

import signal
import struct
import sys
from typing import BinaryIO

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

KEY_BYTES = 32
SIGNATURE_BYTES = 64
_COUNT = struct.Struct(">I")

Item = tuple[bytes, bytes, bytes]  # public key (KEY_BYTES), signature (SIGNATURE_BYTES), message


def encode(items: list[Item]) -> bytes:
    """One request, as serve() reads it."""
    parts = [_COUNT.pack(len(items))]
    for key, signature, message in items:
        parts += (key, signature, _COUNT.pack(len(message)), message)
    return b"".join(parts)


def _read(stream: BinaryIO, n: int) -> bytes | None:
    data = stream.read(n)
    return data if len(data) == n else None


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    keys: dict[bytes, VerifyKey] = {}
    while (head := _read(requests, _COUNT.size)) is not None:
        verdicts = bytearray()
        for _ in range(_COUNT.unpack(head)[0]):
            key = _read(requests, KEY_BYTES)
            signature = _read(requests, SIGNATURE_BYTES)
            size = _read(requests, _COUNT.size)
            message = _read(requests, _COUNT.unpack(size)[0]) if size is not None else None
            if key is None or signature is None or message is None:
                return  # cut off mid-request: the consumer is gone
            verifier = keys.get(key)
            if verifier is None:
                verifier = keys[key] = VerifyKey(key)
            try:
                verifier.verify(message, signature)
                verdicts.append(1)
            except BadSignatureError:
                verdicts.append(0)
        answers.write(verdicts)
        answers.flush()


def main() -> None:
    # Ctrl-C reaches the whole process group: the consumer stops, closes our stdin, and we end then.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()
