"""Writes schemas/json/*.schema.json from the pydantic models, schemas/openapi/*.json from the HTTP apps and
schemas/asyncapi/beacon.asyncapi.yaml from schemas/asyncapi.py (`make schemas`). tests/unit/test_schemas.py and
tests/unit/test_asyncapi.py fail when the committed files differ."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from beacon.schemas import asyncapi_document as asyncapi
from beacon.schemas.commands import JobSpec
from beacon.schemas.events import CellScheduled, ExecutionCompleted, JobExpanded, JobSubmitted

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
JSON_DIR = SCHEMAS / "json"
OPENAPI_DIR = SCHEMAS / "openapi"
ASYNCAPI_FILE = SCHEMAS / "asyncapi" / "beacon.asyncapi.yaml"

CONTRACTS: dict[str, type[BaseModel]] = {
    "JobSpec.schema.json": JobSpec,
    "JobSubmitted.v1.schema.json": JobSubmitted,
    "ExecutionCompleted.v1.schema.json": ExecutionCompleted,
    "CellScheduled.v1.schema.json": CellScheduled,
    "JobExpanded.v1.schema.json": JobExpanded,
}


def render(model: type[BaseModel]) -> str:
    return json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n"


def openapi_documents() -> dict[str, str]:
    """The HTTP APIs' OpenAPI documents, from the FastAPI apps themselves (no server or database needed)."""
    from beacon.services.reader.api import create_app as read_api
    from beacon.services.submitter.http import create_app as submitter_api
    from beacon.settings import Settings

    settings = Settings.from_env({})
    return {
        name: json.dumps(app(settings).openapi(), indent=2, sort_keys=True) + "\n"
        for name, app in (("read-api.openapi.json", read_api), ("submitter.openapi.json", submitter_api))
    }


def main() -> None:
    JSON_DIR.mkdir(exist_ok=True)
    for name, model in CONTRACTS.items():
        (JSON_DIR / name).write_text(render(model))
        print(f"wrote schemas/json/{name}")
    OPENAPI_DIR.mkdir(exist_ok=True)
    for name, text in openapi_documents().items():
        (OPENAPI_DIR / name).write_text(text)
        print(f"wrote schemas/openapi/{name}")
    ASYNCAPI_FILE.parent.mkdir(exist_ok=True)
    ASYNCAPI_FILE.write_text(asyncapi.render(), encoding="utf-8")
    print(f"wrote schemas/asyncapi/{ASYNCAPI_FILE.name}")


if __name__ == "__main__":
    main()
