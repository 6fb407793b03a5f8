"""Names on the wire, once: every topic and every consumer group, derived from one namespace.

Pure (no Kafka client): the AsyncAPI document, the services and the tools all read the names here.
beacon.infra.topics declares and creates the topics; this module names them and their retention policies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Retention policies, as Kafka topic configs. Here (pure data) so the AsyncAPI document states the same
# policies beacon.infra.topics applies when it creates the topics.
# History is the product: replay and reprocessing read these topics from the beginning.
KEEP_FOREVER = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}
# One record per key is all that matters (the latest): Kafka keeps that and drops the rest.
LATEST_PER_KEY = {"cleanup.policy": "compact"}


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


# A JobSubmitted record carries one header per region of its job (value empty): the link to a region's own
# cluster copies only the jobs whose records carry that region's header (beacon.deploy.local.mirror).
REGION_HEADER_PREFIX = "beacon.region."


def region_header(region: str) -> str:
    return f"{REGION_HEADER_PREFIX}{region}"


@dataclass(frozen=True)
class Topics:
    namespace: str

    @property
    def jobs_submitted(self) -> str:
        return f"{self.namespace}.jobs.submitted"

    @property
    def executions_completed(self) -> str:
        return f"{self.namespace}.executions.completed"

    def all(self) -> list[str]:
        """The topics that carry the product's facts (and have dead-letter topics)."""
        return [self.jobs_submitted, self.executions_completed]

    def projected(self) -> str:
        """A regular expression for every topic the recorder projects: the two above and each region's
        expansion topic (regions come and go with the catalogue, so by pattern), never a dead-letter topic."""
        ns = re.escape(self.namespace)
        return rf"^{ns}\.(?:jobs\.submitted|executions\.completed|jobs\.expanded\.(?!.*\.dlq$).+)$"

    def work(self, region: str) -> str:
        """CellScheduled for one region: the cells its runners share, one record per cell."""
        return f"{self.namespace}.work.{region}"

    def expanded(self, region: str) -> str:
        """JobExpanded for one region, compacted by job_id: which jobs that region has already expanded."""
        return f"{self.namespace}.jobs.expanded.{region}"

    # --- the regional topology: each region its own cluster, linked to the central one by MirrorMaker 2 ----

    def to_region(self) -> list[str]:
        """What the link copies from the central cluster to a region's (only that region's jobs)."""
        return [self.jobs_submitted]

    def from_region(self, region: str) -> list[str]:
        """What the link copies from a region's cluster to the central one, under the same names."""
        return [self.executions_completed, self.expanded(region)]

    def mirror_prefix(self, region: str) -> str:
        """Prefix of the link's own bookkeeping topics (Connect's configs, offsets and status), on both ends."""
        return f"{self.namespace}.mirror.{region}."

    def mirror_internal(self, region: str) -> dict[str, str]:
        """Connect's storage topics of one region's link: kind (configs, offsets, status) → topic."""
        return {kind: f"{self.mirror_prefix(region)}{kind}" for kind in ("configs", "offsets", "status")}


@dataclass(frozen=True)
class Groups:
    """Consumer-group ids. The recorder's can be overridden (BEACON_RECORDER_GROUP, in settings) so a
    second group projects the whole log again."""

    namespace: str
    recorder_override: str | None = None

    @property
    def recorder(self) -> str:
        return self.recorder_override or f"{self.namespace}.recorder"

    def expander(self, region: str) -> str:
        """Also the prefix of the expander's transactional ids (one per instance)."""
        return f"{self.namespace}.expander.{region}"

    def runner(self, region: str) -> str:
        return f"{self.namespace}.runner.{region}"

    def mirror(self, region: str) -> str:
        """The consumer group of one region's MirrorMaker link (Connect's worker group), on both ends."""
        return f"{self.namespace}.mirror.{region}"

    @property
    def dlq_replay(self) -> str:
        return f"{self.namespace}.dlq-replay"


class Principals:
    """Kafka principal names (User:<name>), one per service and region; what each may do is
    beacon.deploy.local.access's plan, and README's Security model."""

    ADMIN = "admin"
    SUBMITTER = "submitter"
    RECORDER = "recorder"

    @staticmethod
    def runner(region: str) -> str:
        return f"runner-{region}"

    @staticmethod
    def mirror(region: str) -> str:
        """MirrorMaker's principal for one region's link, on the central cluster and on the region's."""
        return f"mirror-{region}"
