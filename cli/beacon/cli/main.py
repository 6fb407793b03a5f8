"""The `beacon` command: every service's entrypoint and the user's tools, one subcommand each.

Each command imports what it needs inside its function, and building the parser imports nothing heavy, so a
command loads only its own modules: `beacon submit` neither the bundle code nor the read side, for instance
(with every command's modules imported here, importing this module alone took a third of a second)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from beacon.schemas.topics import Principals

if TYPE_CHECKING:
    from beacon.infra.settings import Settings

SERVICES = ("runner", "recorder", "reader", "submitter-api")
API_HELP = (
    "read through the reader's API at this URL (e.g. http://127.0.0.1:8080; default BEACON_API_URL)"
    " instead of the database"
)
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3

# The Kafka principal and the PostgreSQL role each command acts as (README, Security model): a service its
# own; a person's read-only commands the reader's; the operator's tools the admin's and the schema owner's.
# `demo` picks per step; `runner` is runner-<its region>.
READER: tuple[str | None, str | None] = (None, "reader")
ACTS_AS: dict[str, tuple[str | None, str | None]] = {
    "migrate": (None, "migrator"),
    "submit": (Principals.SUBMITTER, "submitter"),
    "submitter-api": (Principals.SUBMITTER, "submitter"),
    "recorder": (Principals.RECORDER, "recorder"),
    "reader": READER,
    "status": READER,
    "executions": READER,
    "matrix": READER,
    "compare": READER,
    "dlq": (Principals.ADMIN, None),
    "replay": (Principals.ADMIN, "migrator"),
    "reclassify": (Principals.RECORDER, "recorder"),
    "tokens": (None, "migrator"),
    "export": READER,
    "verify": READER,
}


def acting_as(settings: Settings, args: argparse.Namespace) -> Settings:
    if args.command == "runner":
        return settings.acting_as(Principals.runner(args.region))
    principal, role = ACTS_AS.get(args.command, (None, None))
    return settings.acting_as(principal, role)


T = TypeVar("T")


# --- subcommands ----------------------------------------------------------------------------------


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> None:
    from beacon.infra import db

    applied = db.migrate(settings.database_url)
    print(f"applied {', '.join(applied)}" if applied else "database is up to date")


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1 (a quota of 0 would refuse every job)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def cmd_tokens(settings: Settings, args: argparse.Namespace) -> None:
    """create NAME | list | revoke ID — the API tokens the HTTP services accept (as the schema's owner)."""
    import re

    from beacon.cli.show import UserError
    from beacon.infra import db, tokens
    from beacon.infra.terminal import safe, safe_json

    with db.connect(settings.database_url) as conn:
        if args.action == "create":
            name = args.target or ""
            if not tokens.NAME_PATTERN.fullmatch(name):
                raise UserError(f"tokens create NAME: {safe(name[:80])!r} is not a name ({tokens.NAME_RULE})")
            if args.cells_per_job > args.cells_per_day:
                raise UserError(
                    f"--cells-per-job {args.cells_per_job} is over --cells-per-day {args.cells_per_day}: "
                    "no job that large could ever be started"
                )
            made, secret = tokens.create(conn, name, not args.read_only, args.cells_per_day, args.cells_per_job)
            conn.commit()
            what = (
                "may only read"
                if args.read_only
                else (f"may submit {made.cells_per_job} cells per job, {made.cells_per_day} per day (UTC)")
            )
            print(f"token {made.token_id} ({made.name}) {what}; it is shown this once, keep it secret:")
            print(secret)
            return
        if args.action == "list":
            if args.target:
                raise UserError("tokens list takes no argument")
            rows = tokens.listed(conn)
            if args.json:
                print(
                    safe_json(
                        [
                            {
                                "token_id": t.token_id,
                                "name": t.name,
                                "can_submit": t.can_submit,
                                "cells_per_day": t.cells_per_day,
                                "cells_per_job": t.cells_per_job,
                                "cells_today": used,
                                "created_at": t.created_at.isoformat(),
                                "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
                            }
                            for t, used in rows
                        ]
                    )
                )
                return
            if not rows:
                print("no API tokens; make one with `beacon tokens create NAME`")
            for t, used in rows:
                state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "live"
                rights = (
                    "read only"
                    if not t.can_submit
                    else (f"{used}/{t.cells_per_day} cells today, {t.cells_per_job} per job")
                )
                print(safe(f"{t.token_id}  {t.name:<24} {state:<22} {rights}  made {t.created_at:%Y-%m-%d %H:%M}"))
            return
        token_id = args.target or ""
        revoked = tokens.revoke(conn, token_id) if re.fullmatch(r"[0-9a-f]{8}", token_id) else None
        if revoked is None:
            raise UserError(f"tokens revoke: no token {safe(token_id[:80])!r}; `beacon tokens list` shows their ids")
        conn.commit()
        print(f"token {revoked.token_id} ({safe(revoked.name)}) revoked at {revoked.revoked_at:%Y-%m-%d %H:%M:%S} UTC")


def cmd_catalogue(settings: Settings, args: argparse.Namespace) -> None:
    """validate [FILE] | list | show ID — the catalogue in use (BEACON_CATALOGUE_FILE, or the default)."""
    from pathlib import Path

    from beacon.cli.show import UserError
    from beacon.infra import catalogues
    from beacon.infra.terminal import safe

    if args.action == "validate":
        path = Path(args.target) if args.target else settings.catalogue_file or catalogues.DEFAULT_FILE
        c = catalogues.load(path)  # CatalogueError: every problem with its line, exit 2
        print(
            f"{path}: valid — {c.describe()}: {len(c.questions)} questions, {len(c.models)} models, "
            f"{len(c.regions)} regions; languages {', '.join(c.languages())}"
        )
        return
    c = settings.catalogue
    if args.action == "list":
        print(safe(f"catalogue {c.describe()} from {c.source}; default language {c.default_language}"))
        print("questions:")
        for q in c.questions.values():
            print(safe(f"  {q.id:<22} {q.category:<22} [{', '.join(q.prompts)}]  {q.prompts[c.default_language]}"))
        print("models:")
        for m in c.models.values():
            print(safe(f"  {m.id:<22} {m.name}"))
        print("regions:")
        for r in c.regions.values():
            print(safe(f"  {r.id:<22} {r.display:<10} system prompt in [{', '.join(r.system_prompts)}]"))
        return
    ident = args.target
    if not ident:
        raise UserError("beacon catalogue show ID: give a question, model or region id (see `beacon catalogue list`)")
    found = [
        (kind, table[ident])
        for kind, table in (("question", c.questions), ("model", c.models), ("region", c.regions))
        if ident in table
    ]
    if not found:
        raise UserError(f"{ident!r} is no question, model or region of catalogue {c.describe()}")
    for kind, entry in found:
        print(safe(f"{kind} {ident} (catalogue {c.describe()})"))
        for name, value in entry.__dict__.items():
            if isinstance(value, dict):
                for lang, text in value.items():
                    print(safe(f"  {name}.{lang}: {text}", newlines=True))
            elif name != "id" and value is not None:
                print(safe(f"  {name}: {value}"))


def waiting_for_kafka(settings: Settings) -> Callable[[str, float], None]:
    """Tells the person at the terminal what a command is waiting for while Kafka is unavailable."""
    from beacon.infra.terminal import safe

    def say(error: str, seconds: float) -> None:
        print(
            f"waiting for Kafka at {settings.kafka_bootstrap_servers} ({safe(error)}); trying again in "
            f"{seconds:.1f} s, for up to {settings.kafka_wait_seconds} s (BEACON_KAFKA_WAIT_SECONDS)",
            file=sys.stderr,
            flush=True,
        )

    return say


def with_kafka(settings: Settings, op: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a command's Kafka work, starting it again while the cluster is unavailable (each of these
    commands is safe to repeat), for up to BEACON_KAFKA_WAIT_SECONDS, saying what it waits for."""
    import asyncio

    from beacon.infra import kafka

    return asyncio.run(
        kafka.retrying("Kafka", op, give_up_after_s=settings.kafka_wait_seconds, on_wait=waiting_for_kafka(settings))
    )


def cmd_submit(settings: Settings, args: argparse.Namespace) -> None:
    import asyncio
    from pathlib import Path

    from beacon.cli.show import UserError
    from beacon.infra.terminal import safe_json
    from beacon.submitter.bootstrap import submit_once
    from beacon.submitter.decide import InvalidJob, JobConflict, parse_spec
    from beacon.submitter.publish import MissingTopic, NotMigrated

    source = "stdin" if args.file == "-" else args.file
    if args.file == "-":
        raw = sys.stdin.buffer.read()
    else:
        path = Path(args.file)
        if not path.is_file():
            raise UserError(f"{args.file}: no such file (give a JSON job spec; `beacon example` lists ready ones)")
        raw = path.read_bytes()
    try:
        spec = parse_spec(raw, settings.catalogue)
    except InvalidJob as exc:
        from beacon.infra.http import bounded

        problems = "\n".join(f"  {p}" for p in bounded(exc.problems))
        raise UserError(f"{source}: invalid job spec:\n{problems}") from None
    try:
        submitted = asyncio.run(submit_once(settings, spec, on_wait=waiting_for_kafka(settings)))
    except (JobConflict, MissingTopic, NotMigrated) as exc:  # each says what to do; nothing was registered
        raise UserError(str(exc)) from None
    if args.json:
        print(safe_json(submitted.as_json()))
    elif submitted.already_submitted:
        print(f"{submitted.job_id} was already submitted with this spec; nothing new will run")
    else:
        print(f"submitted {submitted.job_id}: {submitted.expected_executions} executions expected")
        print(f"follow it with: beacon status {submitted.job_id} --watch")


def cmd_submitter_api(settings: Settings, args: argparse.Namespace) -> None:
    from beacon.cli.show import UserError
    from beacon.submitter.__main__ import DidNotStart, serve

    try:
        serve(settings, args.host, args.port)
    except DidNotStart as exc:
        raise UserError(str(exc)) from None


def cmd_runner(settings: Settings, args: argparse.Namespace) -> None:
    from beacon.cli.show import UserError
    from beacon.runner.__main__ import BadRegion, serve

    try:
        serve(settings, args.region)
    except BadRegion as exc:
        raise UserError(str(exc)) from None


def cmd_recorder(settings: Settings, args: argparse.Namespace) -> None:
    from beacon.recorder.__main__ import serve

    serve(settings)


def cmd_reader(settings: Settings, args: argparse.Namespace) -> None:
    from beacon.reader.__main__ import serve

    serve(settings)


def cmd_status(settings: Settings, args: argparse.Namespace) -> None:
    from beacon.cli.show import counts_text, summary_of, watch, where_text
    from beacon.infra.terminal import safe, safe_json

    if args.watch:
        summary = watch(settings, args.job_id, args.timeout, api=args.api or settings.api_url)
    else:
        summary = summary_of(settings, args.job_id, args.api or settings.api_url)
    if args.json:
        print(safe_json(summary.as_json()))
    elif not args.watch:
        print(safe(f"job {summary.job_id}: {summary.status}"))
        print(safe(f"  expected {summary.expected}, recorded {summary.recorded}"))
        print(safe(f"  by status: {counts_text(summary.by_status)}"))
        print(safe(f"  by classification: {counts_text(summary.by_classification)}"))
        for line in where_text(summary):
            print(safe(line))


def cmd_executions(settings: Settings, args: argparse.Namespace) -> None:
    from beacon.cli.reading import DatabaseSource
    from beacon.cli.show import summary_of
    from beacon.domain.cells import question_token
    from beacon.infra.terminal import safe, safe_json

    summary_of(settings, args.job_id)
    _, rows = DatabaseSource(settings).grid(args.job_id)
    if args.json:
        print(safe_json(rows))
        return
    for r in rows:
        # Every field is escaped: the answer is a model's reply, the ids and names come from events.
        answer = safe((r["answer"] or "").replace("\n", " ")[:70])
        print(
            f"{safe(r['region']):<13} {safe(r['model_id']):<13} {safe(question_token(r['question_id'])):<19} "
            f"{safe(r['language']):<5} {safe(r['status']):<9} {safe(r['classification']):<9} {safe(r['provider']):<9} "
            f"{answer}"
        )


def cmd_matrix(settings: Settings, args: argparse.Namespace) -> None:
    from beacon.cli.show import matrix_text

    print(matrix_text(settings, args.job_id, args.api or settings.api_url))


def cmd_compare(settings: Settings, args: argparse.Namespace) -> None:
    """Two jobs cell by cell (beacon.domain.compare), read from the database or the reader's API."""
    from beacon.cli.reading import source
    from beacon.cli.show import compare_text
    from beacon.infra.terminal import safe_json

    doc = source(settings, args.api or settings.api_url).compare(args.base, args.other)
    print(safe_json(doc) if args.json else compare_text(doc))


def cmd_dlq(settings: Settings, args: argparse.Namespace) -> None:
    import asyncio

    if args.action == "list":  # printed as it is read: a second try would print it twice, so it is not retried
        asyncio.run(dlq_list(settings, args.json))
    else:
        with_kafka(settings, lambda: dlq_replay(settings, args.dry_run))


async def dlq_list(settings: Settings, as_json: bool) -> None:
    """Each dead letter is printed as it is read (a JSON array is streamed too): any number fits."""
    from beacon.infra import dlq
    from beacon.infra.terminal import safe, safe_json

    count = 0
    async for d in dlq.list_all(settings):
        if as_json:
            print("[" if count == 0 else ",", safe_json(d.as_json()), flush=False)
        else:
            row = d.as_json()
            print(
                safe(f"{row['dlq']}  from {row['source']}  by {d.consumer}")
                + "\n    "
                + safe(d.first_error_line[:160])
                + f"\n    {row['bytes']} bytes: "
                + safe(repr(row["preview"]))
            )
        count += 1
    if as_json:
        print("[]" if count == 0 else "]")
    elif count == 0:
        print("no dead letters")


async def dlq_replay(settings: Settings, dry_run: bool) -> None:
    from beacon.infra import dlq
    from beacon.infra.terminal import safe

    counts = {"sent": 0, "would-send": 0, "duplicate": 0, "unreplayable": 0}
    async for r in dlq.replay(settings, dry_run=dry_run):
        counts[r.outcome] += 1
        if r.outcome in ("sent", "would-send"):
            note = f"; {r.why}" if r.why else ""
            print(safe(f"  {r.letter.source_text}  ({r.letter.first_error_line[:100]}){note}"))
        elif r.outcome == "unreplayable":
            print(safe(f"  not re-sent: {r.letter.dlq_where}: {r.why}"))
    verb = "would re-send" if dry_run else "re-sent"
    print(f"{verb} {counts['would-send' if dry_run else 'sent']} message(s) to their source topics")
    if counts["duplicate"]:
        print(f"{counts['duplicate']} dead letter(s) were copies of a message already re-sent")


def cmd_replay(settings: Settings, args: argparse.Namespace) -> None:
    from datetime import datetime

    from beacon.cli.show import UserError
    from beacon.recorder.replay import ReplayRefused, rebuild, reproject

    if args.since is None:
        try:
            report = with_kafka(settings, lambda: rebuild(settings, allow_fewer=args.allow_fewer))
        except ReplayRefused as exc:
            raise UserError(str(exc)) from None
        print(f"replayed {report.events} events from the beginning into fresh tables, then swapped them in")
        print(f"executions  before: {report.old_executions}\n            after:  {report.new_executions}")
        print(f"jobs        before: {report.old_jobs}\n            after:  {report.new_jobs}")
        print(f"job_regions before: {report.old_job_regions}\n            after:  {report.new_job_regions}")
        if report.waiting:
            print(f"{report.waiting} result(s) name a job the log does not hold: left out, as the recorder did")
        print(
            "identical: the rebuilt tables match the old ones"
            if report.identical
            else "DIFFERENT: the rebuilt tables (now live) differ from the old ones"
        )
        return
    try:
        since = datetime.fromisoformat(args.since)
    except ValueError:
        raise UserError(f"--since {args.since!r} is not an ISO time such as 2026-11-27T10:00:00+00:00") from None
    if since.tzinfo is None:
        raise UserError(f"--since {args.since!r} needs a time zone, e.g. {args.since}+00:00")
    if args.allow_fewer:
        raise UserError("--allow-fewer goes with a full rebuild; --since never removes rows")
    done = with_kafka(settings, lambda: reproject(settings, since))
    print(f"re-projected {done.events} events from {since.isoformat()} into the live tables (earlier rows kept)")
    print(f"inserted: {done.executions_inserted} executions, {done.jobs_inserted} jobs; refused: {done.refused}")
    print(f"executions  before: {done.before}\n            after:  {done.after}")


def cmd_reclassify(settings: Settings, args: argparse.Namespace) -> None:
    from beacon.recorder.reclassify import reclassify

    if not args.judge:
        report = with_kafka(settings, lambda: reclassify(settings))
        calls = "model calls: 0"
    else:
        report, calls = with_kafka(settings, lambda: _reclassify_with_judge(settings))
    print(
        f"{report.version}: {report.examined} answers re-read from the log, {report.classified} newly labelled, "
        f"{report.changed} differ from the recorded classification; {calls}"
    )
    if report.transitions:
        print("recorded label → this version's label, cells:")
        for (old, new), n in sorted(report.transitions.items()):
            print(f"  {old:>8} → {new:<8} {n}{'' if old == new else '   changed'}")


async def _reclassify_with_judge(settings: Settings) -> tuple[Any, str]:
    import os

    from beacon.providers.judge import from_routing
    from beacon.recorder.reclassify import reclassify

    async with from_routing(settings.routing_file, os.environ) as judge:
        report = await reclassify(settings, judge=judge)
    return report, f"judge calls: {judge.calls}, answering-model calls: 0"


def cmd_example(settings: Settings, args: argparse.Namespace) -> None:
    """The job specs and catalogue shipped with the CLI: list them, or print one to use or edit."""
    from importlib import resources

    from beacon.cli.show import UserError

    folder = resources.files("beacon.cli").joinpath("examples")
    names = sorted(p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith((".json", ".toml")))
    if args.name is None:
        for name in names:
            print(name)
        return
    match = [p for p in folder.iterdir() if p.name in (args.name, f"{args.name}.json")]
    if not match:
        raise UserError(f"no example {args.name!r}; the examples: {', '.join(names)}")
    sys.stdout.write(match[0].read_text(encoding="utf-8"))


def cmd_demo(settings: Settings, args: argparse.Namespace) -> None:
    from beacon.cli.demo import demo

    demo(settings, timeout=args.timeout)


# --- wiring ---------------------------------------------------------------------------------------


def parser(command: str | None = None) -> argparse.ArgumentParser:
    """Every command's parser. Given the `command` asked for, the commands of beacon.cli.bundles (keys, export,
    verify) are added only if it may be one of them: building theirs imports the signing and bundle code
    (about 0.1 s), which no other command needs."""
    p = argparse.ArgumentParser(prog="beacon", description="Questions × models × regions, one record per cell.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("migrate", help="apply database migrations (idempotent)").set_defaults(func=cmd_migrate)

    s = sub.add_parser("catalogue", help="the questions, models and regions jobs may name: validate, list, show")
    s.add_argument("action", choices=["validate", "list", "show"])
    s.add_argument("target", nargs="?", help="validate: a catalogue file (default: the one in use); show: an id")
    s.set_defaults(func=cmd_catalogue)

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

    sub.add_parser("recorder", help="project events into PostgreSQL; the deadline clock").set_defaults(
        func=cmd_recorder
    )
    sub.add_parser("reader", help="serve the read API and the portal from the projection").set_defaults(func=cmd_reader)

    s = sub.add_parser("status", help="a job's expected vs recorded executions and its derived status")
    s.add_argument("job_id")
    s.add_argument("--json", action="store_true")
    s.add_argument("--watch", action="store_true", help="show a progress bar until every cell is recorded")
    s.add_argument("--timeout", type=float, default=600.0, help="with --watch: give up after this many seconds")
    s.add_argument("--api", default=None, help=API_HELP)
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("executions", help="a job's recorded executions")
    s.add_argument("job_id")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_executions)

    s = sub.add_parser("matrix", help="a job's grid: questions × (model, region), answered/refused per cell")
    s.add_argument("job_id")
    s.add_argument("--api", default=None, help=API_HELP)
    s.set_defaults(func=cmd_matrix)

    s = sub.add_parser(
        "compare", help="two jobs cell by cell: the transitions (answered → refused, …) per question, region, model"
    )
    s.add_argument("base", help="the job compared from (e.g. the English one, or last week's)")
    s.add_argument("other", help="the job compared to")
    s.add_argument("--json", action="store_true", help="the read API's GET /compare document")
    s.add_argument("--api", default=None, help=API_HELP)
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("tokens", help="API tokens for POST /jobs and the read API: create NAME, list, revoke ID")
    s.add_argument("action", choices=["create", "list", "revoke"])
    s.add_argument("target", nargs="?", help="create: the token's name; revoke: its id (from `beacon tokens list`)")
    s.add_argument("--cells-per-day", type=positive, default=10_000, help="create: cells per UTC day (10000)")
    s.add_argument("--cells-per-job", type=positive, default=1_000, help="create: cells per job (1000)")
    s.add_argument("--read-only", action="store_true", help="create: a token for the read API only")
    s.add_argument("--json", action="store_true", help="list: one JSON array")
    s.set_defaults(func=cmd_tokens)

    if command is None or command not in sub.choices:
        from beacon.cli import bundles

        bundles.add_parsers(sub)

    s = sub.add_parser("dlq", help="dead letters: list them, or replay them to their source topic after a fix")
    s.add_argument("action", choices=["list", "replay"])
    s.add_argument("--json", action="store_true", help="with list: one JSON array")
    s.add_argument("--dry-run", action="store_true", help="with replay: say what would be re-sent, send nothing")
    s.set_defaults(func=cmd_dlq)

    s = sub.add_parser("replay", help="rebuild a projection from the topics into fresh tables, then swap them in")
    s.add_argument("projection", choices=["recorder"])
    s.add_argument(
        "--since",
        help="ISO time with zone: re-project the events at or after it into the live tables, keeping every row",
    )
    s.add_argument(
        "--allow-fewer",
        action="store_true",
        help="full rebuild only: swap in the rebuilt tables even if they hold fewer rows than the live ones",
    )
    s.set_defaults(func=cmd_replay)

    s = sub.add_parser("reclassify", help="re-derive classifications of recorded answers with the current classifier")
    s.add_argument(
        "--judge", action="store_true", help="ask the routing file's [judge] model instead (answering models: never)"
    )
    s.set_defaults(func=cmd_reclassify)

    s = sub.add_parser("example", help="list the example job specs, or print one (beacon example single > job.json)")
    s.add_argument("name", nargs="?", help="an example's name, from `beacon example`")
    s.set_defaults(func=cmd_example)

    s = sub.add_parser("demo", help="start everything locally, run the 8 × 3 × 3 job, print its matrix")
    s.add_argument("--timeout", type=float, default=300.0)
    s.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> None:
    words = sys.argv[1:] if argv is None else argv
    args = parser(words[0] if words else None).parse_args(words)
    settings: Settings | None = None
    try:
        import logging

        from beacon.infra import logs
        from beacon.infra.settings import Settings

        settings = Settings.from_env()
        if args.command in SERVICES:
            logs.configure(settings.log_format)
        else:  # a person's command: show only what went wrong, not the services' chatter
            logs.configure("console", level=logging.WARNING, library_level=logging.ERROR)
        settings = acting_as(settings, args)
        args.func(settings, args)
    except Exception as exc:
        code = explained(exc, settings)
        if code is None:
            raise
        sys.exit(code)


def explained(exc: Exception, settings: Settings | None) -> int | None:
    """Tell the person at the terminal what went wrong and what to do; the exit code, or None for a failure
    that is a bug (its traceback is shown). The error classes are imported here, once one has happened."""
    import psycopg
    from aiokafka.errors import KafkaError

    from beacon.cli.show import UserError
    from beacon.domain.bundle import BundleError
    from beacon.domain.catalogue import CatalogueError
    from beacon.infra import db, kafka
    from beacon.infra.keys import KeysError
    from beacon.infra.settings import SettingsError
    from beacon.infra.terminal import safe
    from beacon.providers.routing import RoutingError

    mistakes = (UserError, SettingsError, RoutingError, CatalogueError, db.MigrationError, KeysError, BundleError)
    if isinstance(exc, mistakes):
        print(f"error: {safe(exc, newlines=True)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if isinstance(exc, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedColumn):
        first = str(exc).strip().splitlines()[0]
        print(
            f"error: the database's tables are missing or older than this Beacon ({first}); run `beacon migrate`"
            " as the schema's owner (`make up` does)",
            file=sys.stderr,
        )
        return EXIT_UNAVAILABLE
    if settings is None or not isinstance(exc, psycopg.OperationalError | KafkaError | TimeoutError | ConnectionError):
        return None
    refused = kafka.credentials_problem(settings, exc)
    if refused:
        print(f"error: {refused}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if isinstance(exc, KafkaError) and not kafka.is_transient(exc):
        return None
    hint = ""
    if isinstance(exc, KafkaError):
        hint = (
            f"\nKafka at {settings.kafka_bootstrap_servers} was unavailable for longer than "
            f"{settings.kafka_wait_seconds} s; start it with `make up`, set KAFKA_BOOTSTRAP_SERVERS, or "
            "wait longer with BEACON_KAFKA_WAIT_SECONDS"
        )
    print(f"error: {safe(exc, newlines=True)}{hint}", file=sys.stderr)
    return EXIT_UNAVAILABLE


if __name__ == "__main__":
    main()
