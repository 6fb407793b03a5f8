"""The `beacon` command: every service's entrypoint and the user's tools, one subcommand each."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import psycopg
from aiokafka.errors import KafkaConnectionError

from beacon import db, logs
from beacon.settings import Settings, SettingsError
from services.runner.routing import RoutingError

SERVICES = ("runner", "recorder", "submitter-api")
API_HELP = "read through a recorder's read API at this URL (e.g. http://127.0.0.1:8080) instead of the database"
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3


class UserError(Exception):
    """Wrong input from the user: the message says what and how to fix it."""


SHUTDOWN_GRACE_SECONDS = 15.0


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


# --- subcommands ----------------------------------------------------------------------------------


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> None:
    applied = db.migrate(settings.database_url)
    print(f"applied {', '.join(applied)}" if applied else "database is up to date")


def cmd_submit(settings: Settings, args: argparse.Namespace) -> None:
    from services.submitter.decide import InvalidJob, parse_spec
    from services.submitter.publish import JobConflict, submit_once

    source = "stdin" if args.file == "-" else args.file
    if args.file == "-":
        raw = sys.stdin.buffer.read()
    else:
        path = Path(args.file)
        if not path.is_file():
            raise UserError(f"{args.file}: no such file (give a JSON job spec; see examples/)")
        raw = path.read_bytes()
    try:
        spec = parse_spec(raw)
    except InvalidJob as exc:
        raise UserError(f"{source}: {exc}") from None
    try:
        submitted = asyncio.run(submit_once(settings, spec))
    except JobConflict as exc:
        raise UserError(str(exc)) from None
    if args.json:
        print(json.dumps(submitted.as_json()))
    elif submitted.already_submitted:
        print(f"{submitted.job_id} was already submitted with this spec; nothing new will run")
    else:
        print(f"submitted {submitted.job_id}: {submitted.expected_executions} executions expected")
        print(f"follow it with: beacon status {submitted.job_id} --watch")


def cmd_submitter_api(settings: Settings, args: argparse.Namespace) -> None:
    import uvicorn

    from services.submitter.http import create_app

    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning")


def cmd_runner(settings: Settings, args: argparse.Namespace) -> None:
    from schemas.catalogue import REGIONS
    from services.runner.main import run

    if args.region not in REGIONS:
        raise UserError(f"--region {args.region!r} is not a region; known: {', '.join(REGIONS)}")
    run_service(lambda: run(settings, args.region))


def cmd_recorder(settings: Settings, args: argparse.Namespace) -> None:
    from services.recorder.main import Recorder

    run_service(Recorder(settings).run)


def _summary(settings: Settings, job_id: str, api: str | None = None) -> Any:
    from beacon.reading import source

    summary = source(settings, api).summary(job_id)
    if summary is None:
        raise UserError(f"no job {job_id!r} is recorded (is the recorder running? `make demo` starts it)")
    return summary


def progress_line(summary: Any, width: int = 30) -> str:
    expected = summary.expected or 0
    done = min(summary.recorded, expected) if expected else 0
    filled = int(width * done / expected) if expected else 0
    counts = " ".join(f"{k}={v}" for k, v in sorted(summary.by_classification.items()))
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {summary.recorded}/{summary.expected or '?'} "
        f"{summary.status or 'unknown'} {counts}"
    )


def watch(settings: Settings, job_id: str, timeout: float, out: Any = sys.stdout, api: str | None = None) -> Any:
    """Redraw a progress line until the job has every cell recorded; returns the final summary."""
    began = time.monotonic()
    redraw = out.isatty()  # a terminal gets one line redrawn; a log file gets a line per change
    shown = ""
    while True:
        try:
            summary = _summary(settings, job_id, api)
        except UserError:
            summary = None  # not projected yet: the recorder has not seen JobSubmitted
        line = progress_line(summary) if summary else f"[{'.' * 30}] waiting for {job_id} to be recorded"
        if line != shown:
            print(f"\r{line:<100}" if redraw else line, end="" if redraw else "\n", file=out, flush=True)
            shown = line
        if summary and summary.expected and summary.recorded >= summary.expected:
            if redraw:
                print(file=out)
            return summary
        if time.monotonic() - began > timeout:
            if redraw:
                print(file=out)
            raise TimeoutError(
                f"{job_id} is not finished after {timeout:.0f} s; are the runners and the recorder running? "
                "Their logs are in .beacon/logs/."
            )
        time.sleep(0.5)


def cmd_status(settings: Settings, args: argparse.Namespace) -> None:
    if args.watch:
        summary = watch(settings, args.job_id, args.timeout, api=args.api)
    else:
        summary = _summary(settings, args.job_id, args.api)
    if args.json:
        print(json.dumps(summary.as_json()))
    elif not args.watch:
        print(f"job {summary.job_id}: {summary.status or 'unknown (JobSubmitted not recorded yet)'}")
        print(f"  expected {summary.expected}, recorded {summary.recorded}")
        print(f"  by status: {summary.by_status}")
        print(f"  by classification: {summary.by_classification}")


def cmd_executions(settings: Settings, args: argparse.Namespace) -> None:
    from services.recorder.queries import executions

    _summary(settings, args.job_id)
    with db.connect(settings.database_url) as conn:
        rows = executions(conn, args.job_id)
    if args.json:
        print(json.dumps(rows, default=str))
        return
    for r in rows:
        answer = (r["answer"] or "").replace("\n", " ")
        print(
            f"{r['region']:<13} {r['model_id']:<13} {r['question_id'] or '-':<19} {r['status']:<9} "
            f"{r['classification']:<9} {r['provider']:<9} {answer[:70]}"
        )


def cmd_matrix(settings: Settings, args: argparse.Namespace) -> None:
    print(matrix_text(settings, args.job_id, args.api))


def matrix_text(settings: Settings, job_id: str, api: str | None = None) -> str:
    from beacon.reading import source
    from services.recorder.matrix import render

    _summary(settings, job_id, api)
    spec, rows = source(settings, api).grid(job_id)
    if not spec.get("models"):
        raise UserError(f"{job_id}: JobSubmitted is not recorded yet, so the grid's shape is unknown")
    return render(spec, rows)


def cmd_dlq(settings: Settings, args: argparse.Namespace) -> None:
    from beacon import dlq

    if args.action == "list":
        letters = asyncio.run(dlq.list_all(settings))
        if args.json:
            print(json.dumps([d.as_json() for d in letters]))
            return
        if not letters:
            print("no dead letters")
        for d in letters:
            row = d.as_json()
            print(
                f"{row['dlq']}  from {row['source']}  by {d.consumer}\n    {d.error.splitlines()[0][:160]}\n"
                f"    {row['bytes']} bytes: {row['preview']!r}"
            )
        return
    letters = asyncio.run(dlq.replay(settings, dry_run=args.dry_run))
    verb = "would re-send" if args.dry_run else "re-sent"
    print(f"{verb} {len(letters)} message(s) to their source topics")
    for d in letters:
        print(f"  {d.source_topic}[{d.source_partition}]@{d.source_offset}  ({d.error.splitlines()[0][:100]})")


def cmd_replay(settings: Settings, args: argparse.Namespace) -> None:
    from datetime import datetime

    from services.recorder.replay import rebuild

    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError:
            raise UserError(f"--since {args.since!r} is not an ISO time such as 2026-11-27T10:00:00+00:00") from None
        if since.tzinfo is None:
            raise UserError(f"--since {args.since!r} needs a time zone, e.g. {args.since}+00:00")
    report = asyncio.run(rebuild(settings, since))
    print(f"replayed {report.events} events from {'the beginning' if since is None else since.isoformat()}")
    print(f"executions  before: {report.old_executions}\n            after:  {report.new_executions}")
    print(f"jobs        before: {report.old_jobs}\n            after:  {report.new_jobs}")
    print(
        "identical: the rebuilt tables match the old ones"
        if report.identical
        else "DIFFERENT: the rebuilt tables (now live) differ from the old ones"
    )


def cmd_reclassify(settings: Settings, args: argparse.Namespace) -> None:
    from services.recorder.replay import reclassify

    report = asyncio.run(reclassify(settings))
    print(
        f"classifier {report.version}: {report.examined} answers re-read from the log, "
        f"{report.classified} newly classified, {report.changed} differ from the recorded classification; "
        "model calls: 0"
    )


def cmd_demo(settings: Settings, args: argparse.Namespace) -> None:
    from beacon.demo import demo

    demo(settings, timeout=args.timeout)


# --- wiring ---------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="beacon", description="Questions × models × regions, one record per cell.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("migrate", help="apply database migrations (idempotent)").set_defaults(func=cmd_migrate)

    s = sub.add_parser("submit", help="validate a job spec (JSON file, or - for stdin) and emit JobSubmitted")
    s.add_argument("file")
    s.add_argument("--json", action="store_true", help='print {"job_id": …, "expected_executions": …}')
    s.set_defaults(func=cmd_submit)

    s = sub.add_parser("submitter-api", help="serve POST /jobs")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8081)
    s.set_defaults(func=cmd_submitter_api)

    s = sub.add_parser("runner", help="run the cells of jobs for one region")
    s.add_argument("--region", required=True)
    s.set_defaults(func=cmd_runner)

    sub.add_parser("recorder", help="project events into PostgreSQL").set_defaults(func=cmd_recorder)

    s = sub.add_parser("status", help="a job's expected vs recorded executions and its derived status")
    s.add_argument("job_id")
    s.add_argument("--json", action="store_true")
    s.add_argument("--watch", action="store_true", help="show a progress bar until every cell is recorded")
    s.add_argument("--timeout", type=float, default=600.0, help="with --watch: give up after this many seconds")
    s.add_argument("--api", default=os.environ.get("BEACON_API_URL"), help=API_HELP)
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("executions", help="a job's recorded executions")
    s.add_argument("job_id")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_executions)

    s = sub.add_parser("matrix", help="a job's grid: questions × (model, region), answered/refused per cell")
    s.add_argument("job_id")
    s.add_argument("--api", default=os.environ.get("BEACON_API_URL"), help=API_HELP)
    s.set_defaults(func=cmd_matrix)

    s = sub.add_parser("dlq", help="dead letters: list them, or replay them to their source topic after a fix")
    s.add_argument("action", choices=["list", "replay"])
    s.add_argument("--json", action="store_true", help="with list: one JSON array")
    s.add_argument("--dry-run", action="store_true", help="with replay: say what would be re-sent, send nothing")
    s.set_defaults(func=cmd_dlq)

    s = sub.add_parser("replay", help="rebuild a projection from the topics into fresh tables, then swap them in")
    s.add_argument("projection", choices=["recorder"])
    s.add_argument("--since", help="ISO time with zone: replay only events at or after it")
    s.set_defaults(func=cmd_replay)

    s = sub.add_parser("reclassify", help="re-derive classifications of recorded answers with the current classifier")
    s.set_defaults(func=cmd_reclassify)

    s = sub.add_parser("demo", help="start everything locally, run the 8 × 3 × 3 job, print its matrix")
    s.add_argument("--timeout", type=float, default=300.0)
    s.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.command in SERVICES:
            logs.configure(settings.log_format)
        else:  # a person's command: show only what went wrong, not the services' chatter
            logs.configure("console", level=logging.WARNING, library_level=logging.ERROR)
        args.func(settings, args)
    except (UserError, SettingsError, RoutingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except (psycopg.OperationalError, KafkaConnectionError, TimeoutError, ConnectionError) as exc:
        hint = ""
        if isinstance(exc, KafkaConnectionError):
            hint = (
                f"\ncannot reach Kafka at {settings.kafka_bootstrap_servers}; start it with `make up` "
                "or set KAFKA_BOOTSTRAP_SERVERS"
            )
        print(f"error: {exc}{hint}", file=sys.stderr)
        sys.exit(EXIT_UNAVAILABLE)


if __name__ == "__main__":
    main()
