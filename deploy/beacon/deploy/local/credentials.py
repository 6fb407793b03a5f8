"""The passwords `make up` makes: one per Kafka principal and per PostgreSQL role, each in a file of its own,
mode 600, under `.beacon/secrets/` (mode 700). Made once and kept; delete a file and run `make up` again to
rotate that one password (README, Security model)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from beacon.deploy.local.proc import private_file


def location(state: Path, kind: str) -> Path:
    """Where the password files of `kind` (kafka, postgres) live, whether made yet or not."""
    return state / "secrets" / kind


def folder(state: Path, kind: str) -> Path:
    path = location(state, kind)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for d in (path, path.parent):
        d.chmod(0o700)
    return path


def password(state: Path, kind: str, name: str) -> str:
    """The password of `name` (a Kafka principal or a PostgreSQL role), made now if it has none. Hex only:
    no character needs quoting in a JAAS line, a URL or kafka-storage's --add-scram."""
    path = folder(state, kind) / name
    if path.exists() and path.read_text().strip():
        path.chmod(0o600)
        return path.read_text().strip()
    value = secrets.token_hex(24)
    fd = private_file(path)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, value.encode())
    finally:
        os.close(fd)
    return value
