"""`beacon keys`, `beacon export` and `beacon verify`: the signing keys, a job's results as a bundle anyone can
check, and the check (beacon.domain.bundle), which needs no Beacon server for a bundle file."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from beacon.cli.show import UserError
from beacon.domain import bundle, signing
from beacon.infra import keys
from beacon.infra.settings import Settings
from beacon.infra.terminal import safe, safe_json

EXIT_NOT_VERIFIED = 1


def _folder(settings: Settings, args: argparse.Namespace) -> Path:
    return Path(args.dir) if args.dir else settings.keys_dir


def cmd_keys(settings: Settings, args: argparse.Namespace) -> None:
    """generate --role R [--region X] | list | revoke KEY_ID — the signing keys of a keys folder."""
    folder = _folder(settings, args)
    if args.action == "generate":
        if args.target:
            raise UserError("keys generate takes --role and --region, not an argument")
        if not args.role:
            raise UserError(f"keys generate needs --role ({', '.join(signing.ROLES)})")
        made = keys.generate(folder, args.role, args.region)
        print(f"key {made.key_id} for the {made.binding()}: private key in {folder / keys.PRIVATE} (mode 600)")
        print(f"  trusted by every service that reads {folder / keys.TRUSTED}; give that file to every region")
        return
    if args.action == "list":
        if args.target:
            raise UserError("keys list takes no argument")
        listed = keys.read_trusted(folder / keys.TRUSTED)
        if args.json:
            print(safe_json([k.as_json() for k in listed]))
            return
        for k in listed:
            state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M:%S}" if k.revoked_at else "live"
            made = f"{k.created_at:%Y-%m-%d %H:%M}" if k.created_at else "?"
            print(f"{k.key_id}  {k.binding():<24} {state:<28} made {made}")
        return
    if not args.target:
        raise UserError("keys revoke KEY_ID: which key (`beacon keys list` shows their ids)")
    at = _time(args.at) if args.at else None
    revoked = keys.revoke(folder, args.target, at)
    assert revoked.revoked_at is not None
    print(
        f"key {revoked.key_id} ({revoked.binding()}) revoked at {revoked.revoked_at.isoformat()}: its events are "
        "refused from then on, and `beacon verify` fails every result it signed"
    )


def _time(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"--at {safe(text[:60])!r} is not an ISO time (2026-12-03T12:00:00+00:00)") from None
    if at.tzinfo is None:
        raise UserError("--at needs a time zone (…+00:00)")
    return at


async def _signed(settings: Settings, job_id: str) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    """The job's signed JobSubmitted, its signed results, and the cells recorded before events were signed."""
    from beacon.reader import queries

    async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
        found = await queries.signed(conn, job_id)
    shown = safe(job_id[:80])
    if found is None:
        raise UserError(f"no job {shown!r} is recorded (`beacon status {shown}`)")
    job, events = found
    if job.get("signature") is None:
        raise UserError(f"job {shown!r} was submitted before events were signed: it has nothing to export or verify")
    unsigned = [key for event, key in events if event is None]
    return job, [json.loads(event) for event, _ in events if event is not None], unsigned


def cmd_export(settings: Settings, args: argparse.Namespace) -> None:
    """A job's signed facts as one JSON-lines bundle, to --out or stdout; its Merkle root on stderr."""
    job, results, unsigned = asyncio.run(_signed(settings, args.job_id))
    trusted = keys.read_trusted(settings.keys_dir / keys.TRUSTED)
    try:
        lines = bundle.build(job, results, trusted, args.withhold or ())
    except ValueError as exc:
        raise UserError(f"--withhold: {exc}") from None
    text = bundle.dumps(lines)
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    header = lines[0]
    hidden = header["withheld"]
    withheld = (
        f", {len(hidden['cells'])} withheld ({len(hidden['questions'])} whole questions)" if hidden["cells"] else ""
    )
    print(
        f"exported {header['cells']} results of {header['job_id']} to {args.out or 'stdout'}{withheld}; "
        f"Merkle root {header['merkle_root']}",
        file=sys.stderr,
    )
    if unsigned:
        print(f"  {len(unsigned)} results recorded before events were signed are not in it", file=sys.stderr)


def cmd_verify(settings: Settings, args: argparse.Namespace) -> None:
    """A bundle file (offline: no Beacon server needed), or a job in the database; a verdict per cell."""
    trusted = keys.read_trusted(Path(args.trusted)) if args.trusted else None
    source = Path(args.source)
    unsigned: list[str] = []
    if source.is_file():
        try:
            lines = bundle.loads(source.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise UserError(f"{safe(str(source))} is not a bundle: not UTF-8 text") from None
        what = str(source)
    elif source.exists() or "/" in args.source or args.source.endswith((".jsonl", ".json")):
        raise UserError(f"no bundle file {safe(str(source))!r} (give a file from `beacon export`, or a job id)")
    else:
        job, results, unsigned = asyncio.run(_signed(settings, args.source))
        if trusted is None:  # against the database, the keys this deployment trusts
            trusted = keys.read_trusted(settings.keys_dir / keys.TRUSTED)
        lines = bundle.build(job, results, trusted)
        what = f"job {args.source} in the database"
    report = bundle.verify(lines, trusted)
    for cell in report.cells:
        if cell.state == bundle.MISSING and cell.key in unsigned:
            cell.state = "unsigned: recorded before events were signed"
    if not source.is_file() and not args.trusted:
        report.keys_from = f"this deployment ({settings.keys_dir / keys.TRUSTED})"
    root_ok = args.root is None or args.root == report.merkle_root
    if not root_ok:
        report.problems.append(f"the Merkle root is {report.merkle_root}, not the {args.root} given")
    if args.json:
        print(
            safe_json(
                {
                    "ok": report.ok,
                    "job_id": report.job_id,
                    "merkle_root": report.merkle_root,
                    "keys_from": report.keys_from,
                    "problems": report.problems,
                    "counts": report.counts(),
                    "cells": [{"cell": c.key, "state": c.state, "digest": c.digest} for c in report.cells],
                }
            )
        )
    else:
        for c in report.cells:
            mark = "ok  " if c.ok else "FAIL"
            print(safe(f"{mark} {c.key.split('|', 1)[1]:<48} {c.state}"))
        for problem in report.problems:
            print(safe(f"FAIL {problem}"))
        tally = report.counts()
        counts = ", ".join(
            f"{tally[s]} {s}" for s in (bundle.VERIFIED, bundle.WITHHELD, bundle.MISSING, "failed") if s in tally
        )
        verdict = "VERIFIED" if report.ok else "NOT VERIFIED"
        print(f"{verdict}: {what}: {counts or 'no cells'}; Merkle root {report.merkle_root}")
        print(f"  signatures checked against the keys of {report.keys_from}")
    if not report.ok:
        sys.exit(EXIT_NOT_VERIFIED)


def add_parsers(sub: Any) -> None:
    s = sub.add_parser("keys", help="signing keys: generate --role R [--region X], list, revoke KEY_ID")
    s.add_argument("action", choices=["generate", "list", "revoke"])
    s.add_argument("target", nargs="?", help="revoke: the key's id (from `beacon keys list`)")
    s.add_argument("--role", choices=signing.ROLES, help="generate: whose key (submitter, runner, recorder)")
    s.add_argument("--region", help="generate: a runner's region")
    s.add_argument("--dir", help="the keys folder (default BEACON_KEYS_DIR, .beacon/keys)")
    s.add_argument("--at", help="revoke: from when (ISO time with zone; default now)")
    s.add_argument("--json", action="store_true", help="list: one JSON array")
    s.set_defaults(func=cmd_keys)

    s = sub.add_parser("export", help="a job's signed results as one bundle anyone can verify offline")
    s.add_argument("job_id")
    s.add_argument("--out", help="write the bundle here (default: stdout)")
    s.add_argument(
        "--withhold",
        nargs="+",
        metavar="QUESTION_OR_CELL",
        help="keep these questions (their prompts and every answer to them) or cells (region|model|question) "
        "out of the bundle: their digests and signatures stay, so they verify as withheld, never as missing",
    )
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("verify", help="check a bundle (offline) or a recorded job: every signature, receipt and cell")
    s.add_argument("source", help="a bundle file from `beacon export`, or a job id (read from the database)")
    s.add_argument("--trusted", help="the publisher's trusted-keys file: only its keys count (default: the bundle's)")
    s.add_argument("--root", help="the Merkle root the bundle must have (as published)")
    s.add_argument("--json", action="store_true", help="the report as one JSON document")
    s.set_defaults(func=cmd_verify)
