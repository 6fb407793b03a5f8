"""Pure: a job's results as one self-contained bundle anyone can check offline, and the check.

A bundle is JSON lines, in this order:
  {"bundle": "beacon-results", "version": 1, "job_id", "exported_at", "cells", "merkle_root",
   "withheld": {"questions": [...], "cells": [...]}}
  {"key": {key_id, algorithm, public_key, role, region, created_at, revoked_at}}   one per key used
  {"job": <the signed JobSubmitted>}           withheld questions: their prompts sealed
  {"result": <a signed ExecutionCompleted>}    one per cell, by execution key; withheld: its view
The Merkle root (beacon.domain.signing.merkle_root) is over the job's digest, then every cell's digest in
execution-key order; digests do not change when a part is withheld, so the root printed by `beacon export`
is the root of every bundle of that job, however much it withholds. It is small enough to publish beside a
paper; `beacon verify --root` holds a bundle to it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from beacon.domain import results, signing
from beacon.domain.signing import Trust, TrustedKey
from beacon.schemas.events import GenerationParams, execution_key

KIND = "beacon-results"
VERSION = 1
# Verification is about the fact, not the day it is checked: a revoked key fails everything it signed.
_ALWAYS = datetime.max.replace(tzinfo=UTC)

VERIFIED = "verified"
WITHHELD = "withheld"
MISSING = "missing"


class BundleError(ValueError):
    """Not a bundle at all (the message says which line and why)."""


def _cell_key(result: Mapping[str, Any]) -> str:
    return execution_key(
        str(result.get("job_id")), str(result.get("region")), str(result.get("model_id")), result.get("question_id")
    )


def cells_of(job: Mapping[str, Any]) -> list[str]:
    """The execution keys of a job's cells, from its JobSubmitted (full or withheld)."""
    questions = [q.get("id") for q in job.get("questions", [])] or [None]
    return sorted(
        execution_key(job["job_id"], r["id"], m["id"], q)
        for r in job["regions"]
        for m in job["models"]
        for q in questions
    )


def _withheld_cells(job: Mapping[str, Any], hidden: Iterable[str]) -> tuple[set[str], set[str]]:
    """(question ids, execution keys) that `hidden` names: a question id, `region|model|question` or a whole
    execution key. Raises ValueError for a name that is neither."""
    keys = cells_of(job)
    questions = {q.get("id") for q in job.get("questions", [])}
    job_id = job["job_id"]
    out_questions: set[str] = set()
    out_cells: set[str] = set()
    for name in hidden:
        if name in questions:
            out_questions.add(name)
            out_cells.update(k for k in keys if k.split("|")[3] == name)
        elif name in keys:
            out_cells.add(name)
        elif f"{job_id}|{name}" in keys:
            out_cells.add(f"{job_id}|{name}")
        else:
            raise ValueError(
                f"{name!r} is neither a question of job {job_id!r} ({', '.join(sorted(map(str, questions)))}) "
                "nor one of its cells (region|model|question)"
            )
    return out_questions, out_cells


def root_of(job: Mapping[str, Any], cell_results: Iterable[Mapping[str, Any]]) -> str:
    ordered = sorted(cell_results, key=_cell_key)
    return signing.merkle_root([signing.digest(job), *(signing.digest(r) for r in ordered)])


def build(
    job: Mapping[str, Any],
    cell_results: Iterable[Mapping[str, Any]],
    keys: Iterable[TrustedKey],
    withhold: Iterable[str] = (),
    exported_at: datetime | None = None,
) -> list[dict[str, Any]]:
    """The bundle's lines. Raises ValueError for a withheld name that is no question or cell of the job."""
    ordered = sorted(cell_results, key=_cell_key)
    questions, hidden = _withheld_cells(job, withhold)
    used = {job.get("signature", {}).get("key_id")} | {r.get("signature", {}).get("key_id") for r in ordered}
    shown_job = signing.withhold_questions(job, questions) if questions else dict(job)
    header = {
        "bundle": KIND,
        "version": VERSION,
        "job_id": job["job_id"],
        "exported_at": (exported_at or datetime.now(UTC)).isoformat(),
        "cells": len(ordered),
        "withheld": {"questions": sorted(questions), "cells": sorted(hidden)},
        "merkle_root": root_of(job, ordered),
    }
    return [
        header,
        *({"key": k.as_json()} for k in sorted(keys, key=lambda k: k.key_id) if k.key_id in used),
        {"job": shown_job},
        *({"result": signing.withheld(r) if _cell_key(r) in hidden else r} for r in ordered),
    ]


def dumps(lines: Iterable[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n" for line in lines)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(text: str) -> list[dict[str, Any]]:
    """A bundle's lines; NaN and Infinity are refused (no JSON a signer can have signed holds them)."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line, parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            raise BundleError(f"line {n} is not JSON: {str(exc)[:200]}") from None
        if not isinstance(value, dict):
            raise BundleError(f"line {n} is not a JSON object")
        out.append(value)
    return out


# --- verifying --------------------------------------------------------------------------------------


@dataclass
class Verdict:
    key: str  # execution key
    state: str  # VERIFIED, WITHHELD, MISSING, or why it failed
    digest: str | None = None

    @property
    def ok(self) -> bool:
        return self.state in (VERIFIED, WITHHELD)


@dataclass
class Report:
    job_id: str | None
    merkle_root: str | None  # computed from what the bundle holds
    problems: list[str] = field(default_factory=list)  # of the bundle as a whole
    cells: list[Verdict] = field(default_factory=list)
    keys_from: str = "the bundle"

    @property
    def ok(self) -> bool:
        return not self.problems and all(c.ok for c in self.cells)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.cells:
            name = c.state if c.ok or c.state == MISSING else "failed"
            out[name] = out.get(name, 0) + 1
        return out


def _receipt_problem(result: Mapping[str, Any], job: Mapping[str, Any], withheld: bool = False) -> str | None:
    """Whether the signed receipt's digests are those of the job's own texts and of the answer it carries (of a
    withheld result: its system prompt, parameters and language, the rest being sealed)."""
    receipt = result.get("receipt") or {}
    region = next((r for r in job["regions"] if r["id"] == result.get("region")), None)
    if region is None:
        return None  # reported as not a cell
    if receipt.get("system_prompt_sha256") != results.sha256(region["system_prompt"]):
        return "its receipt's system prompt is not the region's system prompt in the job"
    try:
        params = results.params_sha256(GenerationParams.model_validate(job["params"]))
    except ValueError:
        return "the job's parameters cannot be read"
    if receipt.get("params_sha256") != params:
        return "its receipt's parameters are not the job's"
    if result.get("language") != region["language"]:
        return f"asked in {result.get('language')!r}, but the job asks region {region['id']} in {region['language']!r}"
    if withheld:
        return None
    question = next((q for q in job.get("questions", []) if q.get("id") == result.get("question_id")), None)
    prompts = question.get("prompts") if question else job.get("probe_prompts")
    if isinstance(prompts, dict):  # None: the question is withheld in this bundle
        prompt = prompts.get(region["language"])
        if prompt is None or receipt.get("prompt_sha256") != results.sha256(prompt):
            return "its receipt's prompt is not the job's prompt for this region's language"
    answer = result.get("answer")
    if (results.sha256(answer) if isinstance(answer, str) else None) != receipt.get("answer_sha256"):
        return "its answer is not the answer its receipt was made for"
    return None


def verify(lines: list[dict[str, Any]], trusted: Iterable[TrustedKey] | None = None) -> Report:
    """Check every signature and receipt of a bundle and that its results are exactly its job's cells. With
    `trusted` (the publisher's trusted-keys file), only those keys count; without, the bundle's own keys do
    (then the report proves the bundle consistent and signed by those keys: compare their ids with the
    publisher's)."""
    header = lines[0] if lines and lines[0].get("bundle") == KIND else None
    report = Report(job_id=header.get("job_id") if header else None, merkle_root=None)
    if header is None:
        report.problems.append(f"the first line is not a {KIND} header")
        return report
    if header.get("version") != VERSION:
        report.problems.append(f"bundle version {header.get('version')!r}; this verifier reads version {VERSION}")
        return report
    bundled: list[TrustedKey] = []
    jobs: list[dict[str, Any]] = []
    found: list[dict[str, Any]] = []
    for n, line in enumerate(lines[1:], 2):
        if isinstance(line.get("key"), dict):
            try:
                bundled.append(TrustedKey.of_json(line["key"]))
            except (ValueError, KeyError, TypeError) as exc:
                report.problems.append(f"line {n}: not a key: {exc}")
        elif isinstance(line.get("job"), dict):
            jobs.append(line["job"])
        elif isinstance(line.get("result"), dict):
            found.append(line["result"])
        else:
            report.problems.append(f"line {n}: neither a key, the job nor a result")
    if trusted is not None:
        report.keys_from = "the trusted-keys file given"
    trust = Trust(bundled if trusted is None else trusted)
    if len(jobs) != 1:
        report.problems.append(f"{len(jobs)} job lines; a bundle has exactly one")
        return report
    job = jobs[0]
    try:
        refused = trust.refusal(job, _ALWAYS)
    except _HOSTILE as exc:
        report.problems.append(f"the job cannot be checked: {type(exc).__name__}")
        return report
    if refused is not None:
        report.problems.append(f"the job: {refused}")
    if job.get("job_id") != header.get("job_id"):
        report.problems.append(f"the header names job {header.get('job_id')!r}, the job line {job.get('job_id')!r}")
    try:
        expected = cells_of(job)
    except _HOSTILE:
        report.problems.append("the job line lacks its regions, models or questions")
        return report
    by_key: dict[str, list[dict[str, Any]]] = {}
    for result in found:
        by_key.setdefault(_cell_key(result), []).append(result)
    for key in expected:
        got = by_key.pop(key, [])
        if not got:
            report.cells.append(Verdict(key, MISSING))
            continue
        report.cells.append(check(got[0], job, trust))
        for _ in got[1:]:
            report.cells.append(Verdict(key, "a second result for this cell (a cell has exactly one)", None))
    for key, extras in sorted(by_key.items()):
        for _ in extras:
            report.cells.append(Verdict(key, f"not a cell of job {job.get('job_id')!r}"))
    try:
        report.merkle_root = root_of(job, found)
    except _HOSTILE as exc:
        report.problems.append(f"no Merkle root can be computed: {exc}")
        return report
    if header.get("merkle_root") != report.merkle_root:
        report.problems.append(
            f"the header's Merkle root {str(header.get('merkle_root'))[:16]}… is not the root of what the bundle "
            f"holds ({report.merkle_root[:16]}…)"
        )
    return report


_HOSTILE = (ValueError, KeyError, TypeError, AttributeError, RecursionError)


def check(result: dict[str, Any], job: Mapping[str, Any], trust: Trust) -> Verdict:
    """One result against its job: signature, binding, and its receipt (a withheld one's visible part)."""
    key = _cell_key(result)
    try:
        refused = trust.refusal(result, _ALWAYS)
        digest: str | None = signing.digest(result)
        if refused is not None:
            return Verdict(key, str(refused), digest)
        withheld = signing.is_withheld(result)
        problem = _receipt_problem(result, job, withheld)
    except _HOSTILE as exc:  # a hostile line fails its cell, never the verifier
        return Verdict(key, f"cannot be checked: {type(exc).__name__}: {str(exc)[:120]}")
    if problem is not None:
        return Verdict(key, problem, digest)
    return Verdict(key, WITHHELD if withheld else VERIFIED, digest)
