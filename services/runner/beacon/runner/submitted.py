"""The jobs a worker checks its cells against (admit.py): this region's jobs on jobs.submitted, read by a
kafka.TopicReader (no group: every instance reads them all) from as far back as a job still running can
have been submitted (the longest deadline a job may have), and dropped an hour after their deadline.

Only the submitter writes jobs.submitted, so this is the authority a cell on the work topic is held to. The
first JobSubmitted of a job_id is the job (as for the expander: a later one with another spec is a refused
resubmission); a record that is not a JobSubmitted is passed over (the expander dead-letters it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from beacon.infra import kafka
from beacon.infra.keys import TrustFile
from beacon.schemas.commands import MAX_DEADLINE_SECONDS
from beacon.schemas.events import JobSubmitted

# How far back to read: a job submitted earlier than this has passed its deadline (plus the grace below).
LOOKBACK = timedelta(seconds=MAX_DEADLINE_SECONDS, hours=1)
# How long after its deadline a job is kept: a cell delivered again after that is refused as of no job.
GRACE = timedelta(hours=1)


def since(now: datetime) -> datetime:
    return now - LOOKBACK


class SubmittedJobs:
    def __init__(
        self,
        reader: Any,
        region: str,
        trust: TrustFile,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.reader = reader  # kafka.TopicReader of jobs.submitted, placed at `since(now)`
        self.region = region
        self.trust = trust  # a job not signed by the submitter is no job: its cells are refused
        self.clock = clock
        self.jobs: dict[str, JobSubmitted] = {}
        self.ended: set[str] = set()  # dropped after their deadline: a later record of theirs is no new job

    async def start(self) -> None:
        await self.reader.start()
        await self.catch_up()

    async def stop(self) -> None:
        await self.reader.stop()

    async def get(self, job_id: str) -> JobSubmitted | None:
        """The job, reading what arrived since the last look when it is not known yet (its cells were
        scheduled after it was submitted, so reading to the end finds it if it exists)."""
        if job_id not in self.jobs:
            await self.catch_up()
        return self.jobs.get(job_id)

    async def catch_up(self) -> None:
        async for records in self.reader.to_end():
            for record in records:
                try:
                    job = kafka.read_event(record, JobSubmitted, trust=self.trust)
                except kafka.Poison:
                    continue
                new = job.job_id not in self.jobs and job.job_id not in self.ended
                if new and any(r.id == self.region for r in job.regions):
                    self.jobs[job.job_id] = job
        cutoff = self.clock() - GRACE
        for job_id in [j for j, job in self.jobs.items() if job.deadline < cutoff]:
            del self.jobs[job_id]
            self.ended.add(job_id)
