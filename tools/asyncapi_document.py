"""The event contracts as one AsyncAPI 3.0 document: every topic (channel), key, message, header, the
dead-letter and compacted topics, and which part of which service sends or receives what (operations).

A tool, not runtime: deterministic, built from the pydantic models (beacon.schemas.events), the names and
retention policies (beacon.schemas.topics, beacon.infra.topics), the limits the infrastructure applies and the
default catalogue's regions, so the document cannot say what the code does not. `make schemas` writes it to
schemas/beacon/schemas/asyncapi/beacon.asyncapi.yaml; tests/unit/test_asyncapi.py fails when that file drifts,
and checks its channels against the topics beacon.infra.topics really creates and its headers against the
ones beacon.infra.kafka and beacon.infra.dlq really write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from beacon.infra.catalogues import DEFAULT
from beacon.infra.kafka import MAX_ERROR_HEADER_CHARS
from beacon.infra.settings import DEFAULT_NAMESPACE
from beacon.infra.topics import DEAD_LETTER_PARTITIONS
from beacon.schemas.commands import JOB_ID_PATTERN, JobSpec
from beacon.schemas.events import CellScheduled, ExecutionCompleted, JobExpanded, JobSubmitted, execution_key
from beacon.schemas.topics import KEEP_FOREVER, LATEST_PER_KEY, Groups, Topics, dead_letter_topic

# Examples and region values from the default catalogue; a user's catalogue has others.
REGIONS = list(DEFAULT.regions)

Json = dict[str, Any]

ASYNCAPI_VERSION = "3.0.0"
# The document's own version: bump it when a channel, key or header changes meaning. A payload's version is
# its event's schema_version (in each message's title).
DOCUMENT_VERSION = "1.0.0"
KAFKA_BINDING_VERSION = "0.5.0"

# Addresses and group ids are written by the Topics/Groups methods themselves, with AsyncAPI's parameter
# placeholders for the namespace and the region: a renamed topic renames its channel.
NAMESPACE, REGION = "{namespace}", "{region}"
TOPICS, GROUPS = Topics(NAMESPACE), Groups(NAMESPACE)

EVENTS: tuple[type[BaseModel], ...] = (JobSubmitted, CellScheduled, JobExpanded, ExecutionCompleted)
# Not on the wire: the HTTP/CLI command the submitter turns into JobSubmitted (also in submitter.openapi.json).
# Listed so the document shows where a JobSubmitted comes from.
COMMANDS: tuple[type[BaseModel], ...] = (JobSpec,)

SCHEMAS = "#/components/schemas/"
DEAD_LETTER = "DeadLetter"
EVENT_HEADERS = "EventHeaders"
DEAD_LETTER_HEADERS = "DeadLetterHeaders"

# Header names, as beacon.infra.kafka (dead_letter) and beacon.infra.dlq (replay) write them.
REPLAYED_FROM = "beacon.replayed-from"
DLQ_HEADERS: dict[str, Json] = {
    "beacon.error": {
        "type": "string",
        "maxLength": MAX_ERROR_HEADER_CHARS,
        "description": "Why the record could not be processed: the decoding error, or the row PostgreSQL refused. "
        f"Cut at {MAX_ERROR_HEADER_CHARS:,} characters.",
    },
    "beacon.consumer": {
        "type": "string",
        "description": "The consumer group that parked it, e.g. "
        f"`{Groups(DEFAULT_NAMESPACE).recorder}` or `{Groups(DEFAULT_NAMESPACE).runner(next(iter(REGIONS)))}`.",
    },
    "beacon.source.topic": {
        "type": "string",
        "description": "The topic the record was read from. Informative only: replay sends a dead letter back to "
        "the topic its dead-letter topic was made for, whatever this header claims.",
    },
    "beacon.source.partition": {
        "type": "string",
        "pattern": "^[0-9]+$",
        "description": "The record's partition there, in decimal.",
    },
    "beacon.source.offset": {
        "type": "string",
        "pattern": "^[0-9]+$",
        "description": "The record's offset there, in decimal. Topic, partition and offset identify the original "
        "record: several consumers may park the same one (every region reads the jobs topic), and replay "
        "re-sends it once.",
    },
}

# --- keys ---------------------------------------------------------------------------------------

_ID = JOB_ID_PATTERN.removeprefix("^").removesuffix("$")  # job, region, model and question ids share it
_EXAMPLE_JOB = "job-20260101-1"
_REGION, _MODEL, _QUESTION = REGIONS[0], next(iter(DEFAULT.models)), next(iter(DEFAULT.questions))

JOB_KEY: Json = {
    "type": "string",
    "pattern": JOB_ID_PATTERN,
    "description": "The job_id, UTF-8. Every record of a job lands on one partition, in order.",
    "examples": [_EXAMPLE_JOB],
}
EXECUTION_KEY: Json = {
    "type": "string",
    "pattern": f"^{_ID}\\|{_ID}\\|{_ID}\\|({_ID})?$",
    "description": "The execution key, UTF-8: `job_id|region|model_id|question_id-or-empty` (events.execution_key; "
    "the question part is empty for a job without questions). A cell is (job, region, model, question): each "
    "region of a job asks in one language. Same cell → same partition → same order, so the first event per cell "
    "wins, live and in any replay.",
    "examples": [
        execution_key(_EXAMPLE_JOB, _REGION, _MODEL, _QUESTION),
        execution_key(_EXAMPLE_JOB, _REGION, _MODEL, None),
    ],
}

# --- channels and operations, as tables ---------------------------------------------------------


@dataclass(frozen=True)
class Channel:
    id: str
    address: str
    message: str  # the one message the topic carries (a components.messages name)
    config: dict[str, str]  # the Kafka topic configs beacon.infra.topics declares it with
    description: str
    dead_letters: bool  # consumers park what they cannot process in `<address>.dlq`


@dataclass(frozen=True)
class Operation:
    id: str  # <service>.<part>.<verb>: the service is also the operation's tag
    action: Literal["send", "receive"]
    channel: str
    title: str
    description: str
    group: str | None = None  # the consumer group id (a template, like the addresses), for receive
    # What a consumer group parks in the channel's dead-letter topic (and how), when the channel has one.
    parks: str = "A record it cannot decode is parked"


CHANNELS = (
    Channel(
        "jobsSubmitted",
        TOPICS.jobs_submitted,
        JobSubmitted.__name__,
        KEEP_FOREVER,
        "Every job, as submitted. Read by every region's expander (one consumer group per region) and by the "
        "recorder; replay and reprocessing read it from the beginning. Each record carries one header "
        "`beacon.region.<region>` (empty value) per region of its job: in the regional topology the link to a "
        "region's own cluster copies only the records with that region's header.",
        dead_letters=True,
    ),
    Channel(
        "work",
        TOPICS.work(REGION),
        CellScheduled.__name__,
        KEEP_FOREVER,
        "One region's work log: one CellScheduled per cell, written in the expander's transactions and shared "
        "by the region's runner instances through their consumer group.",
        dead_letters=True,
    ),
    Channel(
        "jobsExpanded",
        TOPICS.expanded(REGION),
        JobExpanded.__name__,
        {**KEEP_FOREVER, **LATEST_PER_KEY},
        "Which jobs a region has expanded, compacted by job_id (the latest record per job is kept), with the "
        "provider each model goes to there and the models without a route of their own. Read whole by each "
        "expander instance so a job is never scheduled twice; projected by the recorder (job_regions) so "
        "`beacon status` shows a region nobody has picked up, or a model with no route, while the job runs.",
        dead_letters=True,
    ),
    Channel(
        "executionsCompleted",
        TOPICS.executions_completed,
        ExecutionCompleted.__name__,
        KEEP_FOREVER,
        "The outcome of every cell, from every region's runners and from the recorder's deadline clock. "
        "Projected by the recorder into the executions table (one row per cell).",
        dead_letters=True,
    ),
)

# Who reads and writes what. Every receive on a channel with dead letters also gets a send to its `.dlq`
# channel, and `beacon dlq replay` a receive/send pair per dead-letter topic (both generated below).
OPERATIONS = (
    Operation(
        "submitter.publishJob",
        "send",
        "jobsSubmitted",
        "Submitter publishes a job",
        "POST /jobs or `beacon submit`: a JobSpec (components.schemas.JobSpec), validated against the catalogue, "
        "becomes a self-contained JobSubmitted. Resubmitting a known job_id re-sends the original event (same key, "
        "same bytes): harmless downstream, and it heals a crash between registering the job and publishing it.",
    ),
    Operation(
        "runner.expander.receiveJobs",
        "receive",
        "jobsSubmitted",
        "Expander receives jobs",
        "Each region's expander reads every job in its own consumer group and expands the jobs that name its "
        "region. The consumed offset is committed inside the expansion's Kafka transaction.",
        group=GROUPS.expander(REGION),
        parks="A record it cannot decode is parked inside the same transaction",
    ),
    Operation(
        "runner.expander.readExpanded",
        "receive",
        "jobsExpanded",
        "Expander reads its region's expansions",
        "No consumer group: every expander instance reads the whole compacted topic from the beginning at start "
        "and whenever it is assigned jobs partitions; a job already expanded by its region (a redelivery or a "
        "resubmission) is skipped. Undecodable records here are skipped, not dead-lettered: only expanders write "
        "this topic, and a bad record must not mark a job as expanded.",
    ),
    Operation(
        "runner.expander.scheduleCells",
        "send",
        "work",
        "Expander schedules a job's cells",
        "One CellScheduled per cell of the region, in ONE Kafka transaction with the JobExpanded record and the "
        "consumed jobs offset: a crash leaves all of them or none. Consumers read with "
        "isolation_level=read_committed, so an aborted expansion is never seen.",
    ),
    Operation(
        "runner.expander.markExpanded",
        "send",
        "jobsExpanded",
        "Expander records that its region expanded a job",
        "In the same transaction as the job's CellScheduled records.",
    ),
    Operation(
        "runner.worker.receiveCells",
        "receive",
        "work",
        "Runner worker receives cells",
        "The region's runner instances share its cells by partition, calling one model per cell. An offset is "
        "committed only after the cell's ExecutionCompleted is acknowledged (acks=all).",
        group=GROUPS.runner(REGION),
    ),
    Operation(
        "runner.worker.publishResults",
        "send",
        "executionsCompleted",
        "Runner worker publishes a cell's outcome",
        "status completed or failed, with the answer, its classification and the receipt.",
    ),
    Operation(
        "recorder.projection.receiveJobs",
        "receive",
        "jobsSubmitted",
        "Recorder projects jobs",
        "Into the jobs table. Offsets are committed only after the batch's PostgreSQL transaction commits.",
        group=GROUPS.recorder,
        parks="A record it cannot decode, or whose row PostgreSQL refuses, is parked",
    ),
    Operation(
        "recorder.projection.receiveResults",
        "receive",
        "executionsCompleted",
        "Recorder projects outcomes",
        "Batch → one PostgreSQL transaction, INSERT … ON CONFLICT DO NOTHING on (job_id, region, model_id, "
        "question_id, language) → offsets committed after the database commit. The group id can be overridden "
        "(BEACON_RECORDER_GROUP) to project the whole log again.",
        group=GROUPS.recorder,
        parks="A record it cannot decode, or whose row PostgreSQL refuses, is parked",
    ),
    Operation(
        "recorder.projection.receiveExpansions",
        "receive",
        "jobsExpanded",
        "Recorder projects which regions have picked a job up",
        "Into the job_regions table, in the same batches and transactions as jobs and outcomes. Subscribed by "
        "pattern, so the topic of a region whose runner starts later is found within 10 s.",
        group=GROUPS.recorder,
        parks="A record it cannot decode, or whose row PostgreSQL refuses, is parked",
    ),
    Operation(
        "recorder.deadlines.publishTimeouts",
        "send",
        "executionsCompleted",
        "Recorder's deadline clock records timeouts",
        "For every cell still unrecorded at its job's deadline: one ExecutionCompleted with status=timeout "
        "(producer.service=recorder). If a late result races it, the first event on the cell's partition wins.",
    ),
)


def _tag(operation_id: str) -> str:
    return operation_id.split(".", 1)[0]


def _channel(channel_id: str) -> Channel:
    return next(c for c in [*CHANNELS, *_dead_letter_channels()] if c.id == channel_id)


def _dead_letter_channels() -> list[Channel]:
    return [
        Channel(
            f"{c.id}Dlq",
            dead_letter_topic(c.address),
            DEAD_LETTER,
            KEEP_FOREVER,  # a dead-letter topic keeps every letter, even of a compacted topic
            f"Dead letters of `{c.address}`: records its consumers could not decode or store, byte for byte, "
            "with the error and where they came from. Read by people (`beacon dlq list`) and re-sent by "
            "`beacon dlq replay`.",
            dead_letters=False,
        )
        for c in CHANNELS
        if c.dead_letters
    ]


def _derived_operations() -> list[Operation]:
    """Dead-lettering by every consumer group, and the replay tool's read/re-send per dead-letter topic."""
    out: list[Operation] = []
    for op in OPERATIONS:
        if op.action == "receive" and op.group is not None and _channel(op.channel).dead_letters:
            out.append(
                Operation(
                    f"{op.id.rsplit('.', 1)[0]}.deadLetter.{op.channel}",
                    "send",
                    f"{op.channel}Dlq",
                    f"`{op.group}` dead-letters what it cannot process",
                    f"{op.parks}, with its original key and bytes, and the consumer goes on: a poison record never "
                    "stops a consumer.",
                )
            )
    for c in CHANNELS:
        if c.dead_letters:
            out.append(
                Operation(
                    f"cli.dlqReplay.read.{c.id}Dlq",
                    "receive",
                    f"{c.id}Dlq",
                    f"`beacon dlq replay` reads the dead letters of {c.address}",
                    "In its own consumer group, so each dead letter is re-sent once however often replay runs; "
                    "`beacon dlq list` reads the same topics without a group.",
                    group=GROUPS.dlq_replay,
                )
            )
            out.append(
                Operation(
                    f"cli.dlqReplay.resend.{c.id}",
                    "send",
                    c.id,
                    f"`beacon dlq replay` re-sends dead letters to {c.address}",
                    f"The dead letter's original key and bytes, with the `{REPLAYED_FROM}` header; each original "
                    "record (source topic, partition, offset) once.",
                )
            )
    return out


# --- building the document -----------------------------------------------------------------------


def _ref(*path: str) -> Json:
    """A local reference; '/' and '~' in a name are escaped as JSON Pointer requires."""
    return {"$ref": "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in path)}


def _values(template: str) -> list[str]:
    """A template's values in the default namespace, one per region when it has a region."""
    text = template.replace(NAMESPACE, DEFAULT_NAMESPACE)
    return [text.replace(REGION, r) for r in REGIONS] if REGION in text else [text]


def _topic_configuration(config: dict[str, str]) -> Json:
    """Kafka's string configs as the binding types them: cleanup.policy a list, numbers integers."""
    out: Json = {}
    for name, value in config.items():
        if name == "cleanup.policy":
            out[name] = value.split(",")
        else:
            out[name] = int(value) if value.lstrip("-").isdigit() else value
    return out


def _merge(schemas: Json, name: str, schema: Json) -> None:
    """One components.schemas entry per name: two models with the same sub-model name must agree on it."""
    if schemas.setdefault(name, schema) != schema:
        raise ValueError(f"two different schemas are both named {name!r}: rename one of the models")


def _model_schema(model: type[BaseModel], schemas: Json) -> Json:
    """The model's JSON Schema in validation mode (what consumers accept; the same schema as the committed
    schemas/beacon/schemas/json/ files), with its $defs moved to components.schemas so every $ref resolves
    inside this document."""
    schema = model.model_json_schema(ref_template=SCHEMAS + "{model}")
    for name, sub in schema.pop("$defs", {}).items():
        _merge(schemas, name, sub)
    return schema


def _event_message(model: type[BaseModel], channel: Channel, schemas: Json) -> Json:
    version = model.model_fields["schema_version"].default
    message: Json = {
        "name": model.__name__,
        "title": f"{model.__name__} v{version}",
        "summary": (model.__doc__ or "").strip().splitlines()[0],
        "contentType": "application/json",
        "correlationId": _ref("components", "correlationIds", "job"),
    }
    if channel.dead_letters:  # replay writes back only to topics that have dead-letter topics
        message["headers"] = {"$ref": SCHEMAS + EVENT_HEADERS}
    message["payload"] = _model_schema(model, schemas)
    key = JOB_KEY if model in (JobSubmitted, JobExpanded) else EXECUTION_KEY
    message["bindings"] = {"kafka": {"key": key, "bindingVersion": KAFKA_BINDING_VERSION}}
    return message


def _dead_letter_message() -> Json:
    return {
        "name": DEAD_LETTER,
        "title": "Dead letter",
        "summary": "A record a consumer could not process, parked unchanged with why and where it came from.",
        # Whatever bytes the producer wrote: they failed to decode for a reason.
        "contentType": "application/octet-stream",
        "headers": {"$ref": SCHEMAS + DEAD_LETTER_HEADERS},
        "payload": {
            "description": "The original record's value, byte for byte: usually an event's JSON, but possibly "
            "anything (not UTF-8, too large, another version); empty when it had none."
        },
        "bindings": {
            "kafka": {
                "key": {"type": ["string", "null"], "description": "The original record's key, unchanged."},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def _header_schemas() -> dict[str, Json]:
    return {
        EVENT_HEADERS: {
            "type": "object",
            "description": "Kafka record headers (UTF-8 values). Events say who made them in the body (producer), "
            "so a first-hand event carries no header; replay marks what it re-sends.",
            "properties": {
                REPLAYED_FROM: {
                    "type": "string",
                    "pattern": r"^.+\.dlq\[[0-9]+\]@[0-9]+$",
                    "description": "Set by `beacon dlq replay`: the dead letter this record was re-sent from, as "
                    "`<dead-letter topic>[<partition>]@<offset>`.",
                    "examples": [f"{dead_letter_topic(_values(TOPICS.work(REGION))[0])}[0]@42"],
                }
            },
        },
        DEAD_LETTER_HEADERS: {
            "type": "object",
            "description": "Kafka record headers (UTF-8 values), all written by every consumer that dead-letters. "
            "Readers treat them as untrusted: a header may be missing, repeated or unreadable.",
            "properties": DLQ_HEADERS,
            "required": list(DLQ_HEADERS),
        },
    }


def _channel_object(channel: Channel) -> Json:
    params = [p for p in ("namespace", "region") if "{" + p + "}" in channel.address]
    kafka: Json = {}
    if channel.message == DEAD_LETTER:
        kafka["partitions"] = DEAD_LETTER_PARTITIONS  # in arrival order, for people reading them
    kafka["topicConfiguration"] = _topic_configuration(channel.config)
    kafka["bindingVersion"] = KAFKA_BINDING_VERSION
    return {
        "address": channel.address,
        "description": channel.description,
        "parameters": {p: _ref("components", "parameters", p) for p in params},
        "messages": {channel.message: _ref("components", "messages", channel.message)},
        "bindings": {"kafka": kafka},
    }


def _operation_object(op: Operation) -> Json:
    channel = _channel(op.channel)
    out: Json = {
        "action": op.action,
        "channel": _ref("channels", channel.id),
        "title": op.title,
        "description": op.description,
        "tags": [{"name": _tag(op.id)}],
        # AsyncAPI 3: an operation's messages are references into its channel's messages.
        "messages": [_ref("channels", channel.id, "messages", channel.message)],
    }
    if op.group is not None:
        group: Json = {"type": "string", "description": f"`{op.group}`", "examples": _values(op.group)}
        out["bindings"] = {"kafka": {"groupId": group, "bindingVersion": KAFKA_BINDING_VERSION}}
    return out


# CommonMark, like every description: its single line breaks are only for reading the YAML.
INFO_DESCRIPTION = f"""\
The events between Beacon's services, on Apache Kafka. The submitter publishes each job once; every
region's runner expands the jobs of its region into cells (one Kafka transaction per batch), calls one
model per cell and publishes the outcome; the recorder projects jobs and outcomes into PostgreSQL (exactly
one row per cell) and records a `timeout` for every cell missing at its job's deadline.

Values are UTF-8 JSON of the pydantic models in beacon.schemas.events (the same schemas as the JSON Schema
files beside this document).
Each event carries its envelope in the body: event_id, event_type, schema_version, occurred_at and
producer (service, region, instance). Versions are additive; an event of a version a consumer does not
accept is dead-lettered, like any record it cannot decode.

Producers are idempotent with acks=all; consumers never auto-commit, read committed records only, start
from the earliest offset when their group is new, and commit an offset only after its effect is durable.
Every consumer is idempotent, so redelivery is harmless. The services create the topics at start
(beacon.infra.topics) with BEACON_TOPIC_PARTITIONS partitions (dead-letter topics: {DEAD_LETTER_PARTITIONS}),
BEACON_REPLICATION_FACTOR replicas and min.insync.replicas = min(2, replicas).
"""

SERVICES = {
    "submitter": "Validates job commands and publishes JobSubmitted (HTTP POST /jobs, `beacon submit`).",
    "runner": "One per region: the expander turns jobs into cells, the worker runs them.",
    "recorder": "Projects jobs and outcomes into PostgreSQL; owns the deadline clock.",
    "cli": "Operator tools (`beacon dlq replay`).",
}


def document() -> Json:
    """The AsyncAPI 3.0.0 document, as plain data (the same dict every call)."""
    channels = [*CHANNELS, *_dead_letter_channels()]
    operations = [*OPERATIONS, *_derived_operations()]
    schemas: Json = {}
    messages: Json = {}
    for model in EVENTS:
        channel = next(c for c in CHANNELS if c.message == model.__name__)
        messages[model.__name__] = _event_message(model, channel, schemas)
    messages[DEAD_LETTER] = _dead_letter_message()
    for model in COMMANDS:
        _merge(schemas, model.__name__, _model_schema(model, schemas))
    for name, schema in _header_schemas().items():
        _merge(schemas, name, schema)
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:beacon:events",
        "info": {
            "title": "Beacon events",
            "version": DOCUMENT_VERSION,
            "description": INFO_DESCRIPTION,
            "tags": [{"name": name, "description": text} for name, text in SERVICES.items()],
        },
        "defaultContentType": "application/json",
        "channels": {c.id: _channel_object(c) for c in channels},
        "operations": {op.id: _operation_object(op) for op in operations},
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "messages": messages,
            "parameters": {
                "namespace": {
                    "description": "The topic namespace (BEACON_TOPIC_NAMESPACE): one Kafka cluster can hold "
                    "several independent Beacons.",
                    "default": DEFAULT_NAMESPACE,
                    "examples": [DEFAULT_NAMESPACE],
                },
                "region": {
                    "description": "A region id from the catalogue (BEACON_CATALOGUE_FILE; the default "
                    "catalogue's are the examples). Each region has its own work and expanded topics, consumer "
                    "groups and runners.",
                    "examples": REGIONS,
                },
            },
            "correlationIds": {
                "job": {"description": "The job a record belongs to.", "location": "$message.payload#/job_id"}
            },
        },
    }


def render() -> str:
    """The document as YAML, the format AsyncAPI tools and people read most easily. PyYAML is a development
    tool here (only `make schemas` and the tests render), so it is imported on use: nothing at runtime needs it."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: object) -> bool:
            return True  # spelled out in full, never as &anchors and *aliases: plainer to read and to diff

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    Dumper.add_representer(str, text)
    body = yaml.dump(document(), Dumper=Dumper, sort_keys=False, allow_unicode=True, width=120)
    return (
        "# Generated from tools/asyncapi_document.py by `make schemas`: do not edit by hand.\n"
        "# tests/unit/test_asyncapi.py fails when this file and the code disagree.\n" + body
    )
