"""Where `beacon status` and `beacon matrix` read from: the database directly (the default), or a
reader's API (`--api URL`, or BEACON_API_URL) when the database is not reachable from here."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from beacon.cli.show import UserError
from beacon.domain.cells import NO_QUESTION_TOKEN, question_from_token
from beacon.domain.compare import compare as compare_sides
from beacon.domain.compare import side_from
from beacon.infra import db
from beacon.infra.settings import Settings
from beacon.reader import queries
from beacon.reader.queries import JobSummary


class Source(Protocol):
    def summary(self, job_id: str) -> JobSummary | None: ...

    def grid(self, job_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]: ...

    def compare(self, base: str, other: str) -> dict[str, Any]: ...


class DatabaseSource:
    """The reader's own queries (async, the one copy of each), run to completion for a command."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.database_url

    async def _summary(self, job_id: str) -> JobSummary | None:
        async with await db.connect_async(self.url) as conn:
            return await queries.job_summary(conn, job_id)

    async def _grid(self, job_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        async with await db.connect_async(self.url) as conn:
            summary = await queries.job_summary(conn, job_id)
            return (summary.spec if summary else {}), await queries.executions(conn, job_id)

    def summary(self, job_id: str) -> JobSummary | None:
        return asyncio.run(self._summary(job_id))

    def grid(self, job_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return asyncio.run(self._grid(job_id))

    async def _compare(self, base: str, other: str) -> dict[str, Any]:
        async with await db.connect_async(self.url) as conn:
            sides = []
            for job_id in (base, other):
                found = await queries.job_for_compare(conn, job_id)
                if found is None:
                    raise UserError(f"no job {job_id!r}")
                sides.append(found)
        a, b = (side_from(job, rows) for job, rows in sides)
        return compare_sides(a, b)

    def compare(self, base: str, other: str) -> dict[str, Any]:
        """The same document as the read API's GET /compare."""
        return asyncio.run(self._compare(base, other))


class ApiSource:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url.rstrip("/"), timeout=10)

    def _get(self, path: str) -> Any:
        try:
            response = self.http.get(path)
        except httpx.HTTPError as exc:
            raise ConnectionError(f"cannot reach the read API at {self.http.base_url}: {exc}") from None
        if response.status_code in (400, 404):  # no such job, or an id that cannot be one (so: no such job)
            return None
        try:
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPStatusError, ValueError) as exc:
            raise ConnectionError(f"the read API at {self.http.base_url} answered {path} with: {exc}") from None

    def summary(self, job_id: str) -> JobSummary | None:
        body = self._get(f"/jobs/{quote(job_id, safe='')}")
        if body is None:
            return None
        try:
            when = {k: datetime.fromisoformat(body[k]) if body.get(k) else None for k in ("submitted_at", "deadline")}
            return JobSummary(
                job_id=body["job_id"],
                expected=body["expected"],
                recorded=body["recorded"],
                by_status=body["by_status"],
                by_classification=body["by_classification"],
                regions=body["regions"],
                spec={
                    "catalogue": body["catalogue"],
                    "regions": [{"id": r["region"], "language": r["language"]} for r in body["regions"]],
                },
                **when,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConnectionError(
                f"the read API at {self.http.base_url} answered an unexpected document: {exc!r}"
            ) from None

    def grid(self, job_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        m = self._get(f"/jobs/{quote(job_id, safe='')}/matrix") or {
            "questions": [],
            "models": [],
            "regions": [],
            "cells": [],
        }
        try:
            spec = {
                "questions": [{"id": q} for q in m["questions"] if q != NO_QUESTION_TOKEN],
                "models": [{"id": model} for model in m["models"]],
                "regions": [{"id": r["id"], "display": r["display"], "language": r["language"]} for r in m["regions"]],
            }
            rows = [{**c, "question_id": question_from_token(c["question_id"])} for c in m["cells"]]
        except (KeyError, TypeError) as exc:
            raise ConnectionError(
                f"the read API at {self.http.base_url} answered an unexpected matrix: {exc!r}"
            ) from None
        return spec, rows

    def compare(self, base: str, other: str) -> dict[str, Any]:
        """GET /compare; a 404 (no such job) or 400 (an id that cannot be one) is the user's error, with the
        API's own message."""
        try:
            response = self.http.get("/compare", params={"base": base, "other": other})
        except httpx.HTTPError as exc:
            raise ConnectionError(f"cannot reach the read API at {self.http.base_url}: {exc}") from None
        if response.status_code in (400, 404, 422):
            try:
                body = response.json()
                detail = body.get("detail") or "; ".join(body.get("problems") or [])
            except (ValueError, AttributeError, TypeError):
                detail = ""
            raise UserError(str(detail) or f"the read API refused the comparison ({response.status_code})")
        try:
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPStatusError, ValueError) as exc:
            raise ConnectionError(f"the read API at {self.http.base_url} answered /compare with: {exc}") from None
        if not isinstance(body, dict):
            raise ConnectionError(f"the read API at {self.http.base_url} answered an unexpected comparison")
        return body


def source(settings: Settings, api: str | None) -> Source:
    return ApiSource(api) if api else DatabaseSource(settings)
