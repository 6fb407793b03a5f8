"""`make schemas`: writes the committed contract documents into schemas/beacon/schemas/ (package data of
beacon.schemas) — json/*.schema.json from the pydantic models, openapi/*.json from the HTTP apps and
asyncapi/beacon.asyncapi.yaml from tools/asyncapi_document.py. A tool of the checkout, never installed;
tests/unit/test_schemas.py and tests/unit/test_asyncapi.py fail when the committed files differ."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from beacon.schemas.commands import JobSpec
from beacon.schemas.events import CellScheduled, ExecutionCompleted, JobExpanded, JobSubmitted
from tools import asyncapi_document as asyncapi

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas" / "beacon" / "schemas"
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
    from beacon.infra.settings import Settings
    from beacon.reader.api import create_app as read_api
    from beacon.submitter.http import create_app as submitter_api

    settings = Settings.from_env({})
    return {
        name: json.dumps(app(settings).openapi(), indent=2, sort_keys=True) + "\n"
        for name, app in (("read-api.openapi.json", read_api), ("submitter.openapi.json", submitter_api))
    }


def main() -> None:
    JSON_DIR.mkdir(exist_ok=True)
    for name, model in CONTRACTS.items():
        (JSON_DIR / name).write_text(render(model))
        print(f"wrote {JSON_DIR / name}")
    OPENAPI_DIR.mkdir(exist_ok=True)
    for name, text in openapi_documents().items():
        (OPENAPI_DIR / name).write_text(text)
        print(f"wrote {OPENAPI_DIR / name}")
    ASYNCAPI_FILE.parent.mkdir(exist_ok=True)
    ASYNCAPI_FILE.write_text(asyncapi.render(), encoding="utf-8")
    print(f"wrote {ASYNCAPI_FILE}")


if __name__ == "__main__":
    main()
