"""POST /jobs: the same validation and the same publisher as `beacon submit`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from beacon.settings import Settings
from schemas.commands import JobSpec
from services.submitter.decide import InvalidJob, parse_spec
from services.submitter.publish import JobConflict, Publisher


def create_app(settings: Settings) -> FastAPI:
    publisher = Publisher(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await publisher.start()
        yield
        await publisher.stop()

    app = FastAPI(title="Beacon submitter", lifespan=lifespan)

    @app.post(
        "/jobs",
        status_code=202,
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": JobSpec.model_json_schema()}}}
        },
        responses={
            200: {"description": "The same job (same id, same spec) was submitted before; nothing new runs."},
            400: {"description": "The spec is invalid; `problems` names each bad field."},
            409: {"description": "The job id is taken by a job with a different spec; nothing was emitted."},
        },
    )
    async def post_job(request: Request) -> JSONResponse:
        # The body is validated by the same parse_spec the CLI uses, so both give the same messages.
        try:
            spec = parse_spec(await request.body())
        except InvalidJob as exc:
            return JSONResponse({"error": "invalid job spec", "problems": exc.problems}, status_code=400)
        try:
            submitted = await publisher.submit(spec)
        except JobConflict as exc:
            return JSONResponse({"error": "job id conflict", "problems": [str(exc)]}, status_code=409)
        return JSONResponse(submitted.as_json(), status_code=200 if submitted.already_submitted else 202)

    return app
