"""Pure: is a result (or an expansion) one of its job's cells? Only then does it become a row.

A job's cells are (region, model, question) of its JobSubmitted (beacon.domain.cells), each region asked in
its one language. `JobCells` is what the recorder keeps of a job to decide that, built from the event or
from the spec the jobs table holds; `why_not` names what is wrong, or returns None for a cell of the job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OUT_OF_SPEC = "out_of_spec"  # the stray metric's reason label
NOT_A_CELL = "not a cell of its job: "  # how a dead letter's reason begins


def _shown(values: Any, limit: int = 10) -> str:
    listed = sorted(values)
    more = f", … ({len(listed) - limit} more)" if len(listed) > limit else ""
    return ", ".join(listed[:limit]) + more


@dataclass(frozen=True)
class JobCells:
    job_id: str
    spec_sha256: str
    languages: Mapping[str, str]  # region → the language it asks in
    models: frozenset[str]
    questions: frozenset[str]  # empty: a job without questions (its cells' question is None)

    @classmethod
    def of_spec(cls, spec: Mapping[str, Any]) -> JobCells:
        """From a JobSubmitted as the jobs table holds it (validated when it was projected)."""
        return cls(
            job_id=spec["job_id"],
            spec_sha256=spec["spec_sha256"],
            languages={r["id"]: r["language"] for r in spec["regions"]},
            models=frozenset(m["id"] for m in spec["models"]),
            questions=frozenset(q["id"] for q in spec["questions"]),
        )

    def why_not_result(self, region: str, model_id: str, question_id: str | None, language: str) -> str | None:
        job = f"job {self.job_id!r}"
        if region not in self.languages:
            return f"region {region!r} is not one of {job}'s regions ({_shown(self.languages)})"
        if model_id not in self.models:
            return f"model {model_id!r} is not one of {job}'s models ({_shown(self.models)})"
        if question_id is None and self.questions:
            return f"a result without a question, but {job} asks questions ({_shown(self.questions)})"
        if question_id is not None and question_id not in self.questions:
            if not self.questions:
                return f"question {question_id!r}, but {job} asks none (one probe per region and model)"
            return f"question {question_id!r} is not one of {job}'s questions ({_shown(self.questions)})"
        if language != self.languages[region]:
            return f"asked in {language!r}, but {job} asks region {region!r} in {self.languages[region]!r}"
        return None

    def why_not_expansion(self, region: str, spec_sha256: str) -> str | None:
        if region not in self.languages:
            return f"region {region!r} is not one of job {self.job_id!r}'s regions ({_shown(self.languages)})"
        if spec_sha256 != self.spec_sha256:
            return f"expanded a spec {spec_sha256[:12]}… that is not job {self.job_id!r}'s ({self.spec_sha256[:12]}…)"
        return None


def why_not(job: JobCells, table: str, row: tuple[Any, ...]) -> str | None:
    """A row of project.Rows (`executions` or `job_regions`, in beacon.infra.projection's column order)."""
    if table == "executions":
        return job.why_not_result(row[1], row[2], row[3], row[4])
    return job.why_not_expansion(row[1], row[2])
