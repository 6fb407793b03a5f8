"""Small helpers for the local processes: pid files, ports, waiting."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


class StartError(RuntimeError):
    """Something needed to start the local infrastructure is missing; the message says how to fix it."""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def require_free(port: int, what: str, env_var: str) -> None:
    if not port_is_free(port):
        raise StartError(
            f"port {port} on 127.0.0.1, wanted for {what}, is taken by another process. "
            f"Stop it (`ss -ltnp 'sport = :{port}'` shows which) or choose another port with {env_var}=…"
        )


def read_pid(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if alive(pid) else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); treat it as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (FileNotFoundError, IndexError):
        return False


# What the local deployment writes holds prompts, answers and, in .beacon/env, a DATABASE_URL that may carry a
# password: readable by its owner only. Files 600, folders 700, for us and for every process we start.
PRIVATE_UMASK = 0o077


def private_file(path: Path) -> int:
    """Open `path` for appending, created 600 (an existing one is made 600 too); returns the descriptor."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def spawn(argv: list[str], log_file: Path, pidfile: Path, env: dict[str, str] | None = None) -> int:
    """Start a detached background process (own session, so Ctrl-C in the terminal leaves it), with the
    private umask: what it creates (Kafka's log segments, a service's files) is its owner's alone."""
    log_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = private_file(log_file)
    try:
        proc = subprocess.Popen(
            argv,
            stdout=fd,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
            umask=PRIVATE_UMASK,
        )
    finally:
        os.close(fd)
    pidfile.write_text(f"{proc.pid}\n")
    return proc.pid


def stop(pidfile: Path, timeout: float = 30.0) -> bool:
    """SIGTERM, wait, then SIGKILL. Returns whether a process was running."""
    pid = read_pid(pidfile)
    if pid is None:
        pidfile.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    if not wait_for(lambda: not alive(pid), timeout):
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not alive(pid), 10)
    pidfile.unlink(missing_ok=True)
    return True


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
