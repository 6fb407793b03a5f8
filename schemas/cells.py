"""How many cells a job has: the one definition, used by the job spec, the events and every consumer."""

from __future__ import annotations


def cell_count(regions: int, models: int, questions: int) -> int:
    """One cell per (region, model, question); a job without questions has one per (region, model)."""
    return regions * models * max(1, questions)
