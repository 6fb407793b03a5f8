"""Ed25519 verification beside a consumer's event loop, in processes of their own (verifier_process.py).

Why processes and not threads: libsodium frees the GIL for the arithmetic, but a thread must take the GIL
back after every signature, and on a consumer busy decoding that wait is up to the interpreter's switch
interval (5 ms) each time. Measured on the recorder's batches, threads saved 6 of the 50 µs a signature
costs; a process pays only for copying the bytes over a pipe.

The pool is optional and fallible by design: a verdict never depends on it. What it cannot answer (not
started, a process gone) the caller verifies in its own thread (keys.Checked)."""

from __future__ import annotations

import asyncio
import os
import sys
from types import TracebackType

from beacon.infra import logs, verifier_process

log = logs.get("beacon.infra.verifiers")

PROCESSES = 2
# What the process needs to start Python and find the installed packages; no secret of the consumer's.
_ENV = ("PATH", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "LANG", "LC_ALL", "TMPDIR")


class Lost(RuntimeError):
    """A verifier process ended before it answered."""


class _Process:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.asked: asyncio.Queue[tuple[int, asyncio.Future[list[bool]]]] = asyncio.Queue()
        self.reading = asyncio.ensure_future(self._read())

    @classmethod
    async def start(cls) -> _Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            verifier_process.__name__,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={k: v for k, v in os.environ.items() if k in _ENV},
        )
        return cls(proc)

    @property
    def alive(self) -> bool:
        return not self.reading.done()

    async def _read(self) -> None:
        """Answers come in the order asked: each goes to the oldest question."""
        assert self.proc.stdout is not None
        try:
            while True:
                count, answer = await self.asked.get()
                data = await self.proc.stdout.readexactly(count)
                if not answer.done():  # its asker may have been cancelled
                    answer.set_result([b == 1 for b in data])
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            lost = Lost(f"verifier process {self.proc.pid} ended: {type(exc).__name__}")
            if not answer.done():
                answer.set_exception(lost)
            while not self.asked.empty():
                _, waiting = self.asked.get_nowait()
                if not waiting.done():
                    waiting.set_exception(lost)

    async def verify(self, items: list[verifier_process.Item]) -> list[bool]:
        assert self.proc.stdin is not None
        answer: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
        if not self.alive:
            raise Lost(f"verifier process {self.proc.pid} has ended")
        # Queued and written with no await between: the order of the questions is the order of the writes.
        self.asked.put_nowait((len(items), answer))
        self.proc.stdin.write(verifier_process.encode(items))  # the protocol: defined beside serve()
        try:
            await self.proc.stdin.drain()
        except ConnectionError as exc:
            raise Lost(f"verifier process {self.proc.pid} ended: {type(exc).__name__}") from exc
        return await answer

    async def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # it ends at the end of its input
        try:
            await asyncio.wait_for(self.proc.wait(), timeout=5)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        self.reading.cancel()


class Pool:
    """`async with Pool() as pool:` — PROCESSES verifier processes, started at the first request and started
    again after one is lost; closed (their input closed, then waited for) on exit."""

    def __init__(self, processes: int = PROCESSES) -> None:
        self.size = processes
        self._procs: list[_Process] = []
        self._turn = 0
        self._starting = asyncio.Lock()  # concurrent first requests start one set of processes

    async def __aenter__(self) -> Pool:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _next(self) -> _Process:
        async with self._starting:
            for i, proc in enumerate(self._procs):
                if not proc.alive:
                    log.warning("verifier_restarted", pid=proc.proc.pid)
                    await proc.close()
                    self._procs[i] = await _Process.start()
            while len(self._procs) < self.size:
                self._procs.append(await _Process.start())
        self._turn = (self._turn + 1) % self.size
        return self._procs[self._turn]

    async def verify(self, items: list[verifier_process.Item]) -> list[bool]:
        """Whether each signature verifies over its message with its key; raises Lost (or OSError, when no
        process can be started) for the caller to verify itself."""
        return await (await self._next()).verify(items)

    @property
    def pids(self) -> list[int]:
        return [p.proc.pid for p in self._procs]

    async def close(self) -> None:
        procs, self._procs = self._procs, []
        await asyncio.gather(*(p.close() for p in procs), return_exceptions=True)
