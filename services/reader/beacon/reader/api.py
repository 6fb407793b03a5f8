"""The read API and the portal, served by the reader (`beacon-reader` or `beacon reader`, a process of its
own) from the projection the recorder writes.

Every endpoint reads the one read model (queries.py). Bad parameters get a 400 naming the parameter,
an unknown job a 404; input never causes a 500. Every parameter is checked for its exact shape before it
reaches the database: a job id must be one (`JOB_ID_PATTERN`, which also keeps NUL bytes and megabyte
strings away from PostgreSQL), a filter one of its allowed values, a cursor exactly the shape the endpoint
gave out. tests/integration/test_http_hostile.py drives every endpoint with schemathesis.

The matrix, the analysis, the comparison and the pages of executions are built once per version of the jobs they
show (versions.py), kept (cache.py) and served again with an ETag, 304 to a client that holds them (conditional.py).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import psycopg
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from psycopg_pool import AsyncConnectionPool

from beacon.domain import bundle, compare, signing
from beacon.domain.cells import NO_QUESTION_TOKEN, question_from_token, question_token
from beacon.infra import http, keys, metrics, tokens
from beacon.infra.http import READY_CHECK_SECONDS, bounded
from beacon.infra.settings import Settings
from beacon.reader import analysis, cache, conditional, queries, versions
from beacon.reader.queries import JobSummary
from beacon.schemas.commands import JOB_ID_PATTERN
from beacon.schemas.events import CLASSIFICATIONS, EXECUTION_STATUSES
from beacon.schemas.ids import ID_DESCRIPTION

PORTAL = Path(__file__).parent / "portal" / "index.html"

MAX_CURSOR_CHARS = 256  # the longest cursor this API gives out is about 150 characters
MAX_ROW_ID = 2**63 - 1  # executions.id is a bigint
_JOB_ID = re.compile(JOB_ID_PATTERN)

Limit = Annotated[int, Query(ge=1, le=1000, description="Page size.")]
Cursor = Annotated[
    str | None, Query(max_length=MAX_CURSOR_CHARS, description="`next_cursor` of the previous page, as it was.")
]
JobId = Annotated[str, PathParam(pattern=JOB_ID_PATTERN, description=f"A job id. {ID_DESCRIPTION}")]

CompareJobId = Annotated[str, Query(pattern=JOB_ID_PATTERN, description=f"A job id. {ID_DESCRIPTION}")]


def _one_of(allowed: Any, description: str) -> Any:
    """A string parameter with a fixed set of values: documented as an enum (so clients and schemathesis
    know them), checked by `_check` (so a wrong one gets a message that lists the right ones)."""
    return {"description": description, "json_schema_extra": {"enum": list(allowed)}}


def _shown(value: str, most: int = 60) -> str:
    """A client's value, quoted, in an error message: bounded, whatever the client sent."""
    return repr(value if len(value) <= most else value[:most] + "…")


def _check(name: str, value: str | None, allowed: Any) -> None:
    if value is not None and value not in allowed:
        raise HTTPException(400, f"{name}: unknown value {_shown(value)}; allowed: {', '.join(allowed)}")


class BadCursor(HTTPException):
    def __init__(self) -> None:
        super().__init__(400, "cursor: not a cursor this API gave out; use next_cursor from a previous page")


def _encode_cursor(value: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def _decode_cursor(cursor: str) -> Any:
    if len(cursor) > MAX_CURSOR_CHARS:
        raise BadCursor
    try:
        return json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (ValueError, binascii.Error, RecursionError):  # not ASCII, not base64, not UTF-8, not JSON
        raise BadCursor from None


def _jobs_cursor(cursor: str) -> tuple[datetime, str]:
    """`/jobs` cursors are exactly [submitted_at as ISO time with its zone, job id]."""
    match _decode_cursor(cursor):
        case [str() as at, str() as job_id] if _JOB_ID.fullmatch(job_id) and len(at) <= 40:
            try:
                when = datetime.fromisoformat(at)
            except ValueError:
                raise BadCursor from None
            if when.tzinfo is not None:
                return when, job_id
    raise BadCursor


def _executions_cursor(cursor: str) -> int:
    """`/jobs/{id}/executions` cursors are exactly [the last row's id], a bigint (JSON true is no id)."""
    match _decode_cursor(cursor):
        case [int() as after] if not isinstance(after, bool) and 0 <= after <= MAX_ROW_ID:
            return after
    raise BadCursor


def _each_or_404(found: dict[str, versions.JobVersion], job_ids: tuple[str, ...]) -> tuple[versions.JobVersion, ...]:
    for job_id in job_ids:
        if job_id not in found:
            raise HTTPException(404, f"no job {job_id!r}")
    return tuple(found[j] for j in job_ids)


def _summary_json(s: JobSummary) -> dict[str, Any]:
    return {
        **s.as_json(),
        "spec": {
            "questions": [q["id"] for q in s.spec["questions"]],
            "models": [m["id"] for m in s.spec["models"]],
            "regions": [r["id"] for r in s.spec["regions"]],
            "params": s.spec["params"],
        },
    }


def _matrix(summary: JobSummary, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """GET /jobs/{id}/matrix: the job's summary, its axes and every recorded cell."""
    spec = summary.spec
    return {
        "job": _summary_json(summary),
        "questions": [q["id"] for q in spec["questions"]] or [NO_QUESTION_TOKEN],
        "models": [m["id"] for m in spec["models"]],
        "regions": [{"id": r["id"], "display": r["display"], "language": r["language"]} for r in spec["regions"]],
        "cells": [
            {
                "question_id": question_token(r["question_id"]),
                "model_id": r["model_id"],
                "region": r["region"],
                "status": r["status"],
                "classification": r["classification"],
                "judge": r["judge_label"],
            }
            for r in rows
        ],
    }


def _known(summary: JobSummary, kind: str, catalogue_ids: Any) -> list[str]:
    """Values a filter may take: the active catalogue's ids and the job's own (ad-hoc questions, or ids a
    catalogue of its day had)."""
    own = [x["id"] for x in summary.spec.get(kind) or []]
    return list(dict.fromkeys([*catalogue_ids, *own]))


# The columns a row shows that its signed event holds too, under the same names.
_SHOWN = ("region", "model_id", "question_id", "language", "provider", "provider_model", "status", "answer", "event_id")


def _verification(row: dict[str, Any], spec: dict[str, Any], trust: signing.Trust) -> dict[str, Any]:
    """The row with its verification state in place of its signed event: `verified` (a trusted key of the
    region's runner, or the recorder for a timeout, signed exactly this, and its receipt is the job's),
    `unsigned` (recorded before events were signed), or `failed` with the reason (a key revoked since)."""
    raw = row.pop("event", None)
    if raw is None:
        row["verification"] = {"state": "unsigned", "reason": "recorded before events were signed"}
        return row
    try:
        event = json.loads(raw)
        verdict = bundle.check(event, spec, trust)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        row["verification"] = {"state": "failed", "reason": f"unreadable signed event: {exc}"[:300]}
        return row
    # What the page shows must be what was signed: a row copied beside another cell's event is not verified.
    differs = [name for name in _SHOWN if str(event.get(name)) != str(row.get(name))]
    if str((event.get("classification") or {}).get("label")) != str(row.get("classification")):
        differs.append("classification")
    if event.get("job_id") != spec.get("job_id"):
        differs.append("job_id")
    if differs:
        reason = f"the row's {', '.join(differs)} is not what its signed event says"
        row["verification"] = {"state": "failed", "reason": reason, "digest": verdict.digest}
        return row
    state = "verified" if verdict.ok else "failed"
    row["verification"] = {"state": state, "reason": None if verdict.ok else verdict.state, "digest": verdict.digest}
    return row


def create_app(settings: Settings) -> FastAPI:
    catalogue = settings.catalogue
    trusted: list[keys.TrustFile] = []  # to show each result's verification state; read at start (lifespan)
    QUESTION_IDS = [*catalogue.questions, NO_QUESTION_TOKEN]
    REGIONS, MODELS = list(catalogue.regions), list(catalogue.models)
    LANGUAGES = catalogue.languages()
    # Autocommit: the reader only reads, so an implicit BEGIN and COMMIT around each use would be two round
    # trips for nothing (each statement reads committed rows either way); snapshot() opens its own transaction.
    pool = AsyncConnectionPool(settings.database_url, min_size=1, max_size=8, open=False, kwargs={"autocommit": True})

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        trusted[:] = [keys.TrustFile(settings.keys_dir)]
        await pool.open()
        yield
        await pool.close()

    app = FastAPI(
        title="Beacon read API",
        version="1",
        description="Jobs, executions, the per-question matrix and the cross-region analysis.",
        lifespan=lifespan,
        # FastAPI's /docs and /redoc load their UI from a CDN: not from here. The OpenAPI document stays
        # (/openapi.json, and committed under schemas/beacon/schemas/openapi/).
        docs_url=None,
        redoc_url=None,
    )
    if settings.read_needs_token:
        # Every API path asks for a live token (any: read-only or not); the portal's page itself and the
        # health probes do not (the page asks its visitor for a token when the API answers 401).
        @app.middleware("http")
        async def token_required(request: Request, call_next: Any) -> Any:
            path = request.url.path
            if path == "/" or path.startswith(("/ui/", "/health/")):
                return await call_next(request)
            presented = tokens.bearer(request.headers.get("authorization"))
            if presented is None:
                return http.unauthorized(http.TOKEN_NEEDED, False)
            async with pool.connection() as conn:
                if await tokens.lookup(conn, presented) is None:
                    return http.unauthorized("the API token is unknown or revoked", True)
            return await call_next(request)

    # Added last, so it runs first: an unknown host or another site is refused before a token is looked up.
    http.harden(app, page=PORTAL.read_text(encoding="utf-8"), allowed_hosts=settings.allowed_hosts)

    bodies = cache.Representations()
    known = versions.Versions()

    @app.middleware("http")
    async def measured(request: Request, call_next: Any) -> Any:
        began = time.perf_counter()
        response = await call_next(request)
        # The route's template (/jobs/{job_id}), not the path: one series per endpoint, not per job.
        route = getattr(request.scope.get("route"), "path", "unmatched")
        metrics.READ_SECONDS.labels(route).observe(time.perf_counter() - began)
        metrics.READ_REQUESTS.labels(route, str(response.status_code)).inc()
        return response

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'][1:]) or 'request'}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"error": "bad request", "problems": bounded(problems)}, status_code=400)

    async def summary_or_404(job_id: str, conn: psycopg.AsyncConnection | None = None) -> JobSummary:
        if conn is None:
            async with pool.connection() as own:
                return await summary_or_404(job_id, own)
        summary = await queries.job_summary(conn, job_id)
        if summary is None:
            raise HTTPException(404, f"no job {job_id!r}")
        return summary

    async def versions_or_404(*job_ids: str) -> tuple[versions.JobVersion, ...]:
        """The jobs' versions now (a settled job's without counting its rows again), each job's 404 in order."""
        async with pool.connection() as conn:
            found = await known.of(conn, job_ids)
        return _each_or_404(found, job_ids)

    @asynccontextmanager
    async def snapshot(*job_ids: str) -> AsyncIterator[tuple[psycopg.AsyncConnection, tuple[versions.JobVersion, ...]]]:
        """A connection with one view of the tables (REPEATABLE READ) and the jobs' versions in that view: a
        body is read in it and kept under those versions, so a body is never paired with another version."""
        async with pool.connection() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield conn, _each_or_404(await versions.read(conn, job_ids), job_ids)

    async def cached(
        request: Request,
        key: Hashable,
        depends: Hashable,
        build: Callable[[], Awaitable[tuple[Hashable, dict[str, Any]]]],
    ) -> Response:
        """The body of `key` built from `depends` (built now if no request built it yet), or 304 when the
        client holds it already."""

        async def entry() -> cache.Entry:
            built_from, content = await build()
            return await asyncio.to_thread(cache.entry_of, built_from, content)

        found = await bodies.get_or_build(key, depends, entry)
        headers = request.headers
        return conditional.response(found, headers.getlist("if-none-match"), headers.getlist("accept-encoding"))

    # --- jobs ----------------------------------------------------------------------------------------

    @app.get("/jobs", tags=["jobs"])
    async def list_jobs(limit: Limit = 50, cursor: Cursor = None) -> dict[str, Any]:
        """Jobs, newest first."""
        before = _jobs_cursor(cursor) if cursor else None
        async with pool.connection() as conn:
            page = await queries.jobs_page(conn, limit, before)
        last = page[-1] if len(page) == limit else None
        next_cursor = None
        if last is not None and last.submitted_at is not None:
            next_cursor = _encode_cursor([last.submitted_at.isoformat(), last.job_id])
        return {"jobs": [_summary_json(s) for s in page], "next_cursor": next_cursor}

    @app.get("/jobs/{job_id}", tags=["jobs"])
    async def get_job(job_id: JobId) -> dict[str, Any]:
        """Expected vs recorded, counts per status and classification, derived status, deadline, catalogue;
        each region's one language and whether a runner has picked the job up there."""
        return _summary_json(await summary_or_404(job_id))

    @app.get("/jobs/{job_id}/executions", tags=["executions"], response_model=dict[str, Any])
    async def list_executions(
        job_id: JobId,
        request: Request,
        # Defaults, not Annotated[...]: the allowed values are this app's catalogue's, known only here.
        question_id: str | None = Query(None, **_one_of(QUESTION_IDS, "`-`: the cell of a job without questions.")),
        region: str | None = Query(None, **_one_of(REGIONS, "A region id.")),
        model_id: str | None = Query(None, **_one_of(MODELS, "A model id.")),
        language: str | None = Query(None, **_one_of(LANGUAGES, "The language asked in.")),
        status: Annotated[str | None, Query(**_one_of(EXECUTION_STATUSES, "The execution's status."))] = None,
        classification: Annotated[str | None, Query(**_one_of(CLASSIFICATIONS, "The answer's class."))] = None,
        limit: Limit = 100,
        cursor: Cursor = None,
    ) -> Response:
        """A job's executions with answers and receipts, filtered, in recording order."""
        _check("status", status, EXECUTION_STATUSES)
        _check("classification", classification, CLASSIFICATIONS)
        after = _executions_cursor(cursor) if cursor else None
        version = await versions_or_404(job_id)
        given = {
            "question_id": question_id,
            "region": region,
            "model_id": model_id,
            "language": language,
            "status": status,
            "classification": classification,
        }
        filters = {k: v for k, v in given.items() if v is not None}
        # The verification states depend on the trusted keys too: a key revoked since is a new page.
        trust = trusted[0].current()

        async def page() -> tuple[Hashable, dict[str, Any]]:
            async with snapshot(job_id) as (conn, now):
                summary = await summary_or_404(job_id, conn)
                # Checked when built: a page is kept only for filters its job allows, so a page found was checked.
                _check("question_id", question_id, [*_known(summary, "questions", QUESTION_IDS)])
                _check("region", region, _known(summary, "regions", REGIONS))
                _check("model_id", model_id, _known(summary, "models", MODELS))
                _check("language", language, list(dict.fromkeys([*LANGUAGES, *summary.languages.values()])))
                rows = await queries.executions_page(conn, job_id, filters, limit, after)
            rows = [_verification(r, summary.spec, trust) for r in rows]
            next_cursor = _encode_cursor([rows[-1]["id"]]) if len(rows) == limit else None
            return (now, trust), {"executions": rows, "next_cursor": next_cursor}

        key = ("executions", job_id, *given.values(), limit, after)
        return await cached(request, key, (version, trust), page)

    @app.get("/jobs/{job_id}/executions/{region}/{model_id}/{question_id}", tags=["executions"])
    async def get_execution(
        job_id: JobId,
        region: str = PathParam(**_one_of(REGIONS, "A region id.")),
        model_id: str = PathParam(**_one_of(MODELS, "A model id.")),
        question_id: str = PathParam(**_one_of(QUESTION_IDS, "`-`: the cell of a job without questions.")),
    ) -> dict[str, Any]:
        """One cell (region, model, question). For a job without questions the question_id is `-`."""
        summary = await summary_or_404(job_id)
        _check("region", region, _known(summary, "regions", REGIONS))
        _check("model_id", model_id, _known(summary, "models", MODELS))
        _check("question_id", question_id, _known(summary, "questions", QUESTION_IDS))
        async with pool.connection() as conn:
            row = await queries.one_execution(conn, job_id, region, model_id, question_from_token(question_id))
        if row is None:
            raise HTTPException(404, f"cell {region}/{model_id}/{question_id} of {job_id!r} is not recorded (yet)")
        return _verification(row, summary.spec, trusted[0].current())

    @app.get("/jobs/{job_id}/matrix", tags=["analysis"], response_model=dict[str, Any])
    async def get_matrix(job_id: JobId, request: Request) -> Response:
        """Questions × models × regions (each with its one language) with the classification of each
        recorded cell."""

        async def matrix() -> tuple[Hashable, dict[str, Any]]:
            async with snapshot(job_id) as (conn, now):
                summary = await summary_or_404(job_id, conn)
                rows = await queries.cells(conn, job_id)
            return now, _matrix(summary, rows)

        return await cached(request, ("matrix", job_id), await versions_or_404(job_id), matrix)

    @app.get("/jobs/{job_id}/analysis", tags=["analysis"], response_model=dict[str, Any])
    async def get_analysis(job_id: JobId, request: Request) -> Response:
        """Refusal rates per region, model and question (and language, when the job's regions ask in
        different ones); cross-region divergence; refused-vs-answered splits."""
        return await cached(request, ("analysis", job_id), await versions_or_404(job_id), lambda: _analysis(job_id))

    async def _analysis(job_id: str) -> tuple[Hashable, dict[str, Any]]:
        async with snapshot(job_id) as (conn, now):
            rows = await queries.cells(conn, job_id, answers=True, answer_chars=analysis.WORDS_FROM_CHARS)
        cells = [
            analysis.Cell(
                r["region"],
                r["model_id"],
                r["question_id"],
                r["language"],
                r["classification"],
                r["answer"],
                r["judge_label"],
            )
            for r in rows
        ]
        # CPU-bound (pairwise distances): in a worker thread, so other requests are not held up behind it.
        return now, await asyncio.to_thread(analysis.analyse, cells)

    # --- two jobs compared ----------------------------------------------------------------------------

    @app.get("/compare", tags=["analysis"], response_model=dict[str, Any])
    async def get_compare(base: CompareJobId, other: CompareJobId, request: Request) -> Response:
        """Two jobs cell by cell, matched by (region, model_id, question_id): both classifications and
        statuses and the transition of each shared cell (`unchanged`, `answered → refused`, …), summed per
        question, region and model; each job's language per region, catalogue version and submission time;
        the cells of one job only."""

        async def compared() -> tuple[Hashable, dict[str, Any]]:
            sides = []
            async with snapshot(base, other) as (conn, now):
                for job_id in (base, other):
                    found = await queries.job_for_compare(conn, job_id)
                    if found is None:
                        raise HTTPException(404, f"no job {job_id!r}")
                    sides.append(found)
            a, b = (compare.side_from(job, rows) for job, rows in sides)
            return now, await asyncio.to_thread(compare.compare, a, b)

        return await cached(request, ("compare", base, other), await versions_or_404(base, other), compared)

    # --- catalogue, health, metrics, portal -----------------------------------------------------------

    @app.get("/questions", tags=["catalogue"])
    async def list_questions() -> list[dict[str, Any]]:
        """The active catalogue's questions: `prompt` in its default language, `prompts` in every language."""
        return [
            {
                "id": q.id,
                "category": q.category,
                "prompt": q.prompts[catalogue.default_language],
                "prompts": q.prompts,
                "notes": q.notes,
            }
            for q in catalogue.questions.values()
        ]

    @app.get("/catalogue", tags=["catalogue"])
    async def get_catalogue() -> dict[str, Any]:
        """The active catalogue: its version, languages, questions, models and regions."""
        return {
            "version": catalogue.version,
            "label": catalogue.label,
            "default_language": catalogue.default_language,
            "languages": catalogue.languages(),
            "questions": await list_questions(),
            "models": [{"id": m.id, "name": m.name} for m in catalogue.models.values()],
            "regions": [
                {"id": r.id, "display": r.display, "system_prompts": r.system_prompts}
                for r in catalogue.regions.values()
            ],
        }

    async def database() -> None:
        async with pool.connection(timeout=READY_CHECK_SECONDS) as conn:
            await conn.execute("SELECT 1")

    # The reader needs only the database: it reads the projection the recorder writes, never a topic.
    http.add_ops_routes(app, {"database": database})

    @app.get("/", include_in_schema=False)
    @app.get("/ui/jobs/{job_id}", include_in_schema=False)
    async def portal() -> FileResponse:
        return FileResponse(PORTAL, media_type="text/html")

    @app.get("/ui/compare", include_in_schema=False)
    async def compare_portal() -> FileResponse:
        return FileResponse(PORTAL, media_type="text/html")

    return app
