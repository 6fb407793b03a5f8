"""How a long-lived service runs: until SIGTERM/SIGINT, then stops its clients cleanly within a grace
period; and how its own command (`beacon-runner`, `beacon-recorder`, … — each service installs and starts
alone) turns a start-up mistake into one line and exit code 2 instead of a traceback."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from beacon.infra import logs
from beacon.infra.keys import KeysError
from beacon.infra.settings import Settings, SettingsError

SHUTDOWN_GRACE_SECONDS = 15.0
EXIT_BAD_INPUT = 2


def run_service(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a long-lived service until SIGTERM/SIGINT, then stop its clients cleanly — within a grace
    period. If clean-up hangs (a Kafka client leaving its group mid-rebalance can), exit anyway: every
    service commits only after its effects are durable, so an abrupt exit is as safe as a crash."""

    async def guarded() -> None:
        task = asyncio.ensure_future(main())
        loop = asyncio.get_running_loop()

        def stop() -> None:
            task.cancel()
            loop.call_later(SHUTDOWN_GRACE_SECONDS, hard_exit)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)
        try:
            await task
        except asyncio.CancelledError:
            pass

    def hard_exit() -> None:
        print(
            f"clean shutdown took over {SHUTDOWN_GRACE_SECONDS:.0f} s; exiting without it "
            "(safe: uncommitted work is delivered again)",
            file=sys.stderr,
            flush=True,
        )
        os._exit(1)

    # Objects alive after start-up (modules, settings, clients) never die: keep them out of the garbage
    # collector's full passes, which otherwise stall a busy service for tens of milliseconds at a time.
    gc.freeze()
    asyncio.run(guarded())


def command(serve: Callable[[Settings], None], mistakes: tuple[type[Exception], ...] = ()) -> None:
    """A service's own command: settings from the environment, JSON logs, then `serve(settings)`. A bad
    setting, or one of `mistakes` (a bad routing file, catalogue, region), is printed as one line: exit 2."""
    try:
        settings = Settings.from_env()
        logs.configure(settings.log_format)
        serve(settings)
    except (SettingsError, KeysError, *mistakes) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
