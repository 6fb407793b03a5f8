"""POST /jobs: the same validation and the same publisher as `beacon submit`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from beacon.settings import Settings
from schemas.commands import JobSpec
from services.submitter.decide import InvalidJob, parse_spec
from services.submitter.publish import Publisher


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
        responses={400: {"description": "The spec is invalid; `problems` names each bad field."}},
    )
    async def post_job(request: Request) -> JSONResponse:
        # The body is validated by the same parse_spec the CLI uses, so both give the same messages.
        try:
            spec = parse_spec(await request.body())
        except InvalidJob as exc:
            return JSONResponse({"error": "invalid job spec", "problems": exc.problems}, status_code=400)
        submitted = await publisher.submit(spec)
        return JSONResponse(submitted.as_json(), status_code=202)

    return app
