"""POST /jobs: the same validation and the same publisher as `beacon submit`, for callers holding an API token.

Every request needs `Authorization: Bearer <token>` (made by `beacon tokens create`): none, an unknown or a
revoked one gets 401 before the body is read, a read-only one 403. A job over the token's quotas (cells per
job, cells left today) gets 429 with the quota, its limit, what is left and when it resets; nothing is then
registered or emitted (quota.py, publish.py).

The body is untrusted and so is the page that sent it: a web page can make a browser POST to this API
cross-site without a CORS preflight only with a "simple" content type (text/plain, form encodings), so
anything but JSON is refused with 415 before the body is read. A body over MAX_BODY_BYTES gets 413: a
declared Content-Length is refused without reading a byte, a chunked body as soon as it grows past the
limit (it is counted while it streams, never read whole first); a body that trickles in slower than
BODY_TIMEOUT_SECONDS gets 408. Every error lists at most 20 problems (beacon.infra.http.bounded).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import psycopg
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from beacon.domain.catalogue import Catalogue
from beacon.infra import logs, tokens
from beacon.infra.http import TOKEN_NEEDED, bounded, harden, unauthorized
from beacon.infra.settings import Settings
from beacon.schemas.commands import JobSpec
from beacon.schemas.events import now
from beacon.submitter.decide import InvalidJob, JobConflict, parse_spec
from beacon.submitter.publish import Publisher
from beacon.submitter.quota import OverQuota

log = logs.get("beacon.submitter")

MAX_BODY_BYTES = 64 * 1024  # a full-catalogue spec is under 1 KB
BODY_TIMEOUT_SECONDS = 10.0


def problem(status: int, error: str, problems: list[str], close: bool = False) -> JSONResponse:
    """An error response; `close` when the body was not read to its end (the connection cannot be reused)."""
    headers = {"connection": "close"} if close else None
    return JSONResponse({"error": error, "problems": bounded(problems)}, status_code=status, headers=headers)


def is_json(content_type: str | None) -> bool:
    """application/json or application/<anything>+json, parameters (charset) allowed, any letter case."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    kind, _, subtype = media.partition("/")
    return kind == "application" and (subtype == "json" or (subtype.endswith("+json") and len(subtype) > 5))


def documented_spec(catalogue: Catalogue) -> dict:
    """JobSpec's JSON Schema with what the catalogue check accepts spelled out for clients (and for the
    property-based test, which then also generates specs that are accepted): the catalogue's ids, each once;
    a question may also be ad hoc. Self-contained: its $defs are inlined, as OpenAPI cannot resolve them."""
    schema = JobSpec.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items()}
        return [inline(v) for v in node] if isinstance(node, list) else node

    schema = inline(schema)
    for name, known in (
        ("questions", catalogue.questions),
        ("models", catalogue.models),
        ("regions", catalogue.regions),
    ):
        ids = {"type": "string", "enum": list(known)}
        items = schema["properties"][name]["items"]
        schema["properties"][name]["items"] = {"oneOf": [ids, items["oneOf"][1]]} if name == "questions" else ids
        schema["properties"][name]["uniqueItems"] = True
    return schema


def over_quota(over: OverQuota, now: datetime) -> JSONResponse:
    response = JSONResponse(over.as_json(), status_code=429)
    if over.resets_at is not None:
        response.headers["retry-after"] = str(max(1, int((over.resets_at - now).total_seconds())))
    return response


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, counted as it streams in; BodyTooLarge as soon as it passes `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    return bytes(body)


def create_app(settings: Settings, publisher: Publisher | None = None) -> FastAPI:
    """The HTTP API around a publisher (made by bootstrap.py unless a test hands one in)."""
    if publisher is None:
        from beacon.submitter import bootstrap

        publisher = bootstrap.publisher(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await publisher.start()
        yield
        await publisher.stop()

    # No /docs or /redoc: FastAPI's load their UI from a CDN. The OpenAPI document stays (/openapi.json).
    app = FastAPI(title="Beacon submitter", lifespan=lifespan, docs_url=None, redoc_url=None)
    harden(app, allowed_hosts=settings.allowed_hosts)

    @app.post(
        "/jobs",
        status_code=202,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": documented_spec(settings.catalogue)}},
            }
        },
        responses={
            200: {"description": "The same job (same id, same spec) was submitted before; nothing new runs."},
            400: {"description": "The spec is invalid; `problems` names each bad field (at most 20 lines)."},
            401: {"description": "No API token, or an unknown or revoked one (`Authorization: Bearer <token>`)."},
            403: {"description": "The token may only read, or the request came from another site's page."},
            408: {"description": f"The body did not arrive within {BODY_TIMEOUT_SECONDS:.0f} s; nothing was emitted."},
            409: {"description": "The job id is taken by a job with a different spec; nothing was emitted."},
            413: {"description": f"The body is over {MAX_BODY_BYTES} bytes; it was not read, nothing was emitted."},
            415: {"description": "The body is not declared as JSON (Content-Type: application/json)."},
            429: {
                "description": "Over the token's cells per job, or its cells per day left today: `quota`, "
                "`limit`, `left`, `asked`, `resets_at` (and Retry-After); nothing was emitted."
            },
            503: {"description": "The database or the broker is unavailable; nothing was emitted; try again."},
        },
    )
    async def post_job(request: Request) -> JSONResponse:
        presented = tokens.bearer(request.headers.get("authorization"))
        if presented is None:
            return unauthorized(TOKEN_NEEDED, False)
        try:
            token = await publisher.token(presented)
        except psycopg.OperationalError as exc:
            log.warning("submit_unavailable", error=str(exc).strip()[:300])
            return problem(503, "unavailable", ["the database is unavailable; submit again later"])
        if token is None:
            return unauthorized("the API token is unknown or revoked", True)
        if not token.can_submit:
            return problem(403, "forbidden", [f"token {token.token_id} may only read"])
        content_type = request.headers.get("content-type")
        if not is_json(content_type):
            shown = repr(content_type[:100]) if content_type is not None else "none"
            return problem(
                415,
                "unsupported media type",
                [f"content-type: {shown}; send the job spec as JSON with Content-Type: application/json"],
            )
        try:
            async with asyncio.timeout(BODY_TIMEOUT_SECONDS):
                raw = await read_body(request)
        except BodyTooLarge:
            too_large = [f"body: over {MAX_BODY_BYTES} bytes; a job spec is far smaller"]
            return problem(413, "body too large", too_large, close=True)
        except TimeoutError:
            late = [f"body: not received within {BODY_TIMEOUT_SECONDS:.0f} s"]
            return problem(408, "request timeout", late, close=True)
        # The body is validated by the same parse_spec the CLI uses, so both give the same messages.
        try:
            spec = parse_spec(raw, settings.catalogue)
        except InvalidJob as exc:
            return problem(400, "invalid job spec", exc.problems)
        try:
            submitted = await publisher.submit(spec, token)
        except OverQuota as over:
            log.info("submit_over_quota", job_id=spec.job_id, token_id=token.token_id, quota=over.quota)
            return over_quota(over, now())
        except JobConflict as exc:
            return problem(409, "job id conflict", [str(exc)])
        except (psycopg.OperationalError, KafkaError) as exc:
            log.warning("submit_unavailable", job_id=spec.job_id, error=str(exc).strip()[:300])
            return problem(503, "unavailable", ["the database or the broker is unavailable; submit again later"])
        return JSONResponse(submitted.as_json(), status_code=200 if submitted.already_submitted else 202)

    return app
