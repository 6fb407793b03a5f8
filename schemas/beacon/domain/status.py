"""Pure: a job's status is derived from what the projection holds, never set by hand."""

from __future__ import annotations

from typing import Literal

JobStatus = Literal["pending", "running", "completed", "partial", "failed"]

# A cell succeeded when the model answered or refused (either is a measurement); empty and error did not.
SUCCESS = frozenset({"answered", "refused"})


def job_status(expected: int, by_classification: dict[str, int]) -> JobStatus:
    """pending: nothing recorded; running: some cells missing; completed: every cell answered or refused;
    failed: every cell recorded and none succeeded; partial: every cell recorded, some did not succeed.

    `by_classification` counts the job's recorded results (the recorder records only cells of the job's spec)."""
    recorded = sum(by_classification.values())
    if recorded == 0:
        return "pending"
    if recorded < expected:
        return "running"
    succeeded = sum(n for label, n in by_classification.items() if label in SUCCESS)
    if succeeded >= expected:
        return "completed"
    return "failed" if succeeded == 0 else "partial"
