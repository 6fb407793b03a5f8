"""Writes schemas/json/*.schema.json from the pydantic models (`make schemas`).

tests/unit/test_schemas.py fails when the committed files differ from what this would write.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from schemas.commands import JobSpec
from schemas.events import CellScheduled, ExecutionCompleted, JobExpanded, JobSubmitted

JSON_DIR = Path(__file__).parent / "json"

CONTRACTS: dict[str, type[BaseModel]] = {
    "JobSpec.schema.json": JobSpec,
    "JobSubmitted.v1.schema.json": JobSubmitted,
    "ExecutionCompleted.v1.schema.json": ExecutionCompleted,
    "CellScheduled.v1.schema.json": CellScheduled,
    "JobExpanded.v1.schema.json": JobExpanded,
}


def render(model: type[BaseModel]) -> str:
    return json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n"


def main() -> None:
    JSON_DIR.mkdir(exist_ok=True)
    for name, model in CONTRACTS.items():
        (JSON_DIR / name).write_text(render(model))
        print(f"wrote schemas/json/{name}")


if __name__ == "__main__":
    main()
