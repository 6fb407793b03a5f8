"""The AsyncAPI document: the committed file is what the code generates, and what it says is what the code
does: its channels are the topics beacon/topics.py creates (names and policies), its headers are the ones
beacon/kafka.py and beacon/dlq.py write, its group ids the ones the services join, its payload and key schemas
accept the events the code makes and refuse broken ones, and every reference in it resolves."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, get_args

import pytest
import yaml

from beacon.domain.cells import cells_of
from beacon.domain.results import timeout
from beacon.infra import dlq, kafka
from beacon.infra.catalogues import DEFAULT
from beacon.infra.settings import Settings
from beacon.infra.topics import declared
from beacon.runner import expand
from beacon.schemas.commands import JobSpec
from beacon.schemas.events import Event, JobExpanded, ProducerInfo, encode
from beacon.schemas.topics import Topics
from beacon.submitter.decide import job_submitted
from tools import asyncapi_document as asyncapi
from tools.contracts import ASYNCAPI_FILE, CONTRACTS, JSON_DIR

ROOT = Path(__file__).resolve().parents[2]
DOC = asyncapi.document()
CHANNELS: dict[str, Any] = DOC["channels"]
OPERATIONS: dict[str, Any] = DOC["operations"]
COMPONENTS: dict[str, Any] = DOC["components"]
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
PRODUCER = ProducerInfo(service="test", instance="t1")


# --- helpers ------------------------------------------------------------------------------------


def resolve(ref: str) -> Any:
    """A local JSON Pointer reference, resolved inside the document (KeyError when it dangles)."""
    assert ref.startswith("#/"), f"{ref!r} is not a local reference: the document must be self-contained"
    node: Any = DOC
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def deref(node: dict[str, Any]) -> dict[str, Any]:
    return resolve(node["$ref"]) if "$ref" in node else node


def addresses(channel: dict[str, Any], namespace: str) -> list[str]:
    """The topic names a channel stands for: its address with every value of its parameters."""
    names = list(channel.get("parameters", {}))
    values = [[namespace] if name == "namespace" else deref(channel["parameters"][name])["examples"] for name in names]
    out = []
    for combination in itertools.product(*values):
        address = channel["address"]
        for name, value in zip(names, combination, strict=True):
            address = address.replace("{" + name + "}", value)
        out.append(address)
    return out


def channel_of(topic: str, namespace: str = "beacon") -> str:
    matches = [cid for cid, channel in CHANNELS.items() if topic in addresses(channel, namespace)]
    assert len(matches) == 1, f"{topic} matches channels {matches}"
    return matches[0]


def validator(schema: dict[str, Any]) -> Any:
    """A Draft 2020-12 validator (is_valid, iter_errors) from `jsonschema`, or else `jsonschema_rs`."""
    try:
        import jsonschema
    except ImportError:
        jsonschema_rs = pytest.importorskip("jsonschema_rs")
        return jsonschema_rs.validator_for({"$schema": DRAFT_2020_12, **schema})
    return jsonschema.Draft202012Validator(schema)


def check_schema(schema: dict[str, Any]) -> None:
    try:
        import jsonschema
    except ImportError:
        jsonschema_rs = pytest.importorskip("jsonschema_rs")
        jsonschema_rs.meta.validate({"$schema": DRAFT_2020_12, **schema})
    else:
        jsonschema.Draft202012Validator.check_schema(schema)


def against(pointer: str) -> Any:
    """A validator for the schema at `pointer`, with the document as its root so its $refs resolve."""
    return validator({"$ref": pointer, "components": COMPONENTS})


def message_pointer(name: str, *path: str) -> str:
    return "/".join(["#/components/messages", name, *path])


# --- the file -----------------------------------------------------------------------------------


def test_committed_document_matches_the_code() -> None:
    assert ASYNCAPI_FILE.exists(), f"{ASYNCAPI_FILE} missing: run `make schemas` and commit it"
    assert ASYNCAPI_FILE.read_text(encoding="utf-8") == asyncapi.render(), "AsyncAPI drifted: run `make schemas`"


def test_yaml_says_exactly_the_document() -> None:
    assert yaml.safe_load(asyncapi.render()) == DOC
    assert asyncapi.document() == DOC, "document() must be deterministic"


def test_the_generator_is_a_tool_not_runtime() -> None:
    """No installed package imports the document generator; it imports the infrastructure's own constants
    instead of copying them."""
    for member in ("schemas", "infra", "providers", "services", "deploy", "cli"):
        for path in (ROOT / member).rglob("*.py"):
            assert "asyncapi_document" not in path.read_text(), path
    source = (ROOT / "tools" / "asyncapi_document.py").read_text()
    for name in ("MAX_ERROR_HEADER_CHARS", "DEFAULT_NAMESPACE", "DEAD_LETTER_PARTITIONS"):
        assert f"\n{name} = " not in source, f"{name} is copied into the generator"


# --- structure ----------------------------------------------------------------------------------


def test_is_asyncapi_3() -> None:
    assert DOC["asyncapi"] == "3.0.0"
    assert DOC["defaultContentType"] == "application/json"
    assert DOC["info"]["title"] and DOC["info"]["version"]


@pytest.mark.parametrize("namespace", [None, "other-ns"])
def test_channels_are_exactly_the_declared_topics(namespace: str | None) -> None:
    """Every topic beacon/topics.py creates is one channel's address, and every address is a created topic."""
    settings = Settings.from_env({"BEACON_TOPIC_NAMESPACE": namespace} if namespace else {})
    created = [spec.name for spec in declared(settings, DEFAULT.regions)]
    described = [a for channel in CHANNELS.values() for a in addresses(channel, settings.topic_namespace)]
    assert len(set(described)) == len(described), "two channels describe the same topic"
    assert sorted(created) == sorted(described)
    for topic in created:
        channel_of(topic, settings.topic_namespace)


def test_parameters_are_the_settings_and_the_catalogue() -> None:
    parameters = COMPONENTS["parameters"]
    assert parameters["namespace"]["default"] == Settings.from_env({}).topic_namespace
    assert parameters["region"]["examples"] == list(DEFAULT.regions)
    for cid, channel in CHANNELS.items():
        placeholders = set(re.findall(r"\{(\w+)\}", channel["address"]))
        assert placeholders == set(channel.get("parameters", {})), cid


def test_topic_policies_are_the_declared_ones() -> None:
    settings = Settings.from_env({"BEACON_TOPIC_PARTITIONS": "7"})
    for spec in declared(settings, DEFAULT.regions):
        kafka_binding = CHANNELS[channel_of(spec.name)]["bindings"]["kafka"]
        config = kafka_binding["topicConfiguration"]
        # min.insync.replicas depends on the replication factor, so the document describes it in prose.
        assert set(config) == set(spec.config) - {"min.insync.replicas"}, spec.name
        assert config["cleanup.policy"] == spec.config["cleanup.policy"].split(","), spec.name
        for name, value in config.items():
            if name != "cleanup.policy":
                assert str(value) == spec.config[name], (spec.name, name)
        # A fixed partition count is stated; the configurable one (BEACON_TOPIC_PARTITIONS) is not.
        if "partitions" in kafka_binding:
            assert kafka_binding["partitions"] == spec.partitions, spec.name
        else:
            assert spec.partitions == settings.topic_partitions, spec.name


def test_the_expanded_topics_and_only_they_are_compacted() -> None:
    policies = {cid: c["bindings"]["kafka"]["topicConfiguration"]["cleanup.policy"] for cid, c in CHANNELS.items()}
    compacted = [cid for cid, policy in policies.items() if "compact" in policy]
    assert [CHANNELS[cid]["address"] for cid in compacted] == [Topics("{namespace}").expanded("{region}")]
    assert policies[compacted[0]] == ["compact"]
    assert all(policy == ["delete"] for cid, policy in policies.items() if cid not in compacted)


def test_dead_letter_topics_have_one_partition_and_carry_dead_letters() -> None:
    settings = Settings.from_env({})
    for spec in declared(settings, DEFAULT.regions):
        channel = CHANNELS[channel_of(spec.name)]
        is_dlq = spec.name.endswith(".dlq")
        assert (list(channel["messages"]) == [asyncapi.DEAD_LETTER]) == is_dlq, spec.name
        assert (channel["bindings"]["kafka"].get("partitions") == 1) == is_dlq, spec.name


def test_every_event_is_a_message_on_its_channel() -> None:
    events = get_args(get_args(Event)[0])
    assert len(events) >= 4
    for model in events:
        name = model.__name__
        message = COMPONENTS["messages"][name]
        assert message["payload"]["title"] == name
        assert message["payload"]["properties"]["event_type"]["const"] == name
        carriers = [cid for cid, c in CHANNELS.items() if name in c["messages"]]
        assert len(carriers) == 1, f"{name} is carried by {carriers}"


def test_the_recorder_projects_exactly_what_the_document_says_it_receives() -> None:
    """One list of projected event types (project.PROJECTED): the document's recorder operations receive
    exactly those messages, and the recorder's subscription pattern matches exactly their topics."""
    import re

    from beacon.recorder.project import PROJECTED

    received = [
        op for oid, op in OPERATIONS.items() if oid.startswith("recorder.projection.") and op["action"] == "receive"
    ]
    messages = {m["$ref"].rsplit("/", 1)[1] for op in received for m in op["messages"]}
    assert messages == {t.__name__ for t in PROJECTED}
    pattern = re.compile(Topics("beacon").projected())
    for cid, channel in CHANNELS.items():
        topic = channel["address"].replace("{namespace}", "beacon").replace("{region}", "us-east")
        carries_projected = any(m.rsplit("/", 1)[-1] in messages for m in (channel["messages"] or {}))
        assert bool(pattern.fullmatch(topic)) == (carries_projected and not cid.endswith("Dlq")), (cid, topic)


def test_every_ref_resolves() -> None:
    all_refs = list(refs(DOC))
    assert len(all_refs) > 50
    for ref in all_refs:
        try:
            resolve(ref)
        except (KeyError, TypeError):
            pytest.fail(f"dangling $ref {ref}")


def test_operations_reference_their_channels_messages() -> None:
    for oid, op in OPERATIONS.items():
        assert op["action"] in ("send", "receive"), oid
        channel_ref = op["channel"]["$ref"]
        assert channel_ref.startswith("#/channels/"), oid
        channel_id = channel_ref.removeprefix("#/channels/")
        assert channel_id in CHANNELS, oid
        assert op["messages"], oid
        for message in op["messages"]:
            # AsyncAPI 3: an operation's messages must be messages of its own channel.
            assert message["$ref"].startswith(f"#/channels/{channel_id}/messages/"), oid
            resolve(message["$ref"])


def test_every_topic_has_a_writer_and_a_reader() -> None:
    for cid in CHANNELS:
        actions = {op["action"] for op in OPERATIONS.values() if op["channel"]["$ref"] == f"#/channels/{cid}"}
        assert actions == {"send", "receive"}, cid


def test_every_consumer_group_dead_letters_where_its_topic_has_a_dlq() -> None:
    for oid, op in OPERATIONS.items():
        cid = op["channel"]["$ref"].removeprefix("#/channels/")
        if op["action"] == "receive" and "bindings" in op and f"{cid}Dlq" in CHANNELS:
            writer = f"{oid.rsplit('.', 1)[0]}.deadLetter.{cid}"
            assert OPERATIONS[writer]["channel"]["$ref"] == f"#/channels/{cid}Dlq", oid


def test_group_ids_are_the_ones_the_services_join() -> None:
    groups = Settings.from_env({}).groups
    expected = {groups.recorder, groups.dlq_replay}
    expected |= {groups.expander(r) for r in DEFAULT.regions} | {groups.runner(r) for r in DEFAULT.regions}
    documented = {
        example
        for op in OPERATIONS.values()
        if op["action"] == "receive" and "bindings" in op
        for example in op["bindings"]["kafka"]["groupId"]["examples"]
    }
    assert documented == expected
    assert all(op["action"] == "receive" for op in OPERATIONS.values() if "bindings" in op)


# --- payloads and keys --------------------------------------------------------------------------


def test_payloads_are_the_committed_json_schemas() -> None:
    """Each payload (and JobSpec) is schemas/json/'s file, with its $defs moved to components.schemas."""
    schemas = COMPONENTS["schemas"]
    for file_name, model in CONTRACTS.items():
        text = (JSON_DIR / file_name).read_text().replace('"#/$defs/', '"#/components/schemas/')
        committed = json.loads(text)
        for name, sub in committed.pop("$defs", {}).items():
            assert schemas[name] == sub, (file_name, name)
        name = model.__name__
        documented = schemas[name] if model is JobSpec else COMPONENTS["messages"][name]["payload"]
        assert documented == committed, file_name


def test_every_schema_is_a_valid_json_schema() -> None:
    checked = 0
    for schema in COMPONENTS["schemas"].values():
        check_schema(schema)
        checked += 1
    for message in COMPONENTS["messages"].values():
        check_schema(message["payload"])
        check_schema(deref(message["headers"]) if "headers" in message else {})
        check_schema(message["bindings"]["kafka"]["key"])
        checked += 3
    assert checked > 20


def test_an_invalid_schema_is_noticed() -> None:
    """The check above can fail."""
    with pytest.raises(Exception):  # noqa: B017 (jsonschema's SchemaError or jsonschema_rs's ValidationError)
        check_schema({"type": "invalid_type"})


def _events() -> list[Any]:
    """Real events, made the way the services make them: with questions and without."""
    out: list[Any] = []
    for questions in (["math_basic", "taiwan_status"], []):
        spec = JobSpec(
            job_id=f"job-{len(questions)}", questions=questions, models=["mistral-7b"], regions=[*DEFAULT.regions][:2]
        )
        job = job_submitted(spec, DEFAULT, now=NOW, default_deadline_seconds=60, producer=PRODUCER)
        region = job.regions[0].id
        cells = expand.cells(job, region, PRODUCER)
        done = JobExpanded(
            producer=PRODUCER, job_id=job.job_id, region=region, spec_sha256=job.spec_sha256, cells=len(cells)
        )
        out += [job, *cells, done, *(timeout(job, cell, NOW, PRODUCER) for cell in cells_of(job))]
    return out


@pytest.mark.parametrize("event", _events(), ids=lambda e: f"{e.event_type}:{getattr(e, 'key', e.job_id)}")
def test_real_events_match_their_message(event: Any) -> None:
    name = event.event_type
    value = json.loads(encode(event))
    payload = against(message_pointer(name, "payload"))
    assert payload.is_valid(value), [str(e) for e in payload.iter_errors(value)]
    key = getattr(event, "key", event.job_id)
    assert against(message_pointer(name, "bindings", "kafka", "key")).is_valid(key), key


def test_broken_events_and_keys_are_refused() -> None:
    """The payload and key schemas are strict enough to catch what consumers refuse."""
    for event in _events():
        name = event.event_type
        payload = against(message_pointer(name, "payload"))
        value = json.loads(encode(event))
        assert not payload.is_valid({**value, "unexpected": 1}), name
        assert not payload.is_valid({k: v for k, v in value.items() if k != "job_id"}), name
        assert not payload.is_valid({**value, "schema_version": 99}), name
        key = against(message_pointer(name, "bindings", "kafka", "key"))
        good = getattr(event, "key", event.job_id)
        assert not key.is_valid(good + "|extra"), name
        assert not key.is_valid("bad key"), name


def test_the_execution_key_pattern_is_the_events_key() -> None:
    key = against(message_pointer("ExecutionCompleted", "bindings", "kafka", "key"))
    for example in asyncapi.EXECUTION_KEY["examples"]:
        assert key.is_valid(example)
    assert any(example.endswith("|") for example in asyncapi.EXECUTION_KEY["examples"]), "the no-question form"
    assert all(example.count("|") == 3 for example in asyncapi.EXECUTION_KEY["examples"]), "four parts"
    assert not key.is_valid("job|eu-west|mistral-7b")  # three parts
    assert not key.is_valid("job|eu-west|mistral-7b|math_basic|en")  # a language is no part of a cell


# --- headers ------------------------------------------------------------------------------------


def _documented_headers() -> dict[str, dict[str, Any]]:
    schemas = COMPONENTS["schemas"]
    return {**schemas[asyncapi.EVENT_HEADERS]["properties"], **schemas[asyncapi.DEAD_LETTER_HEADERS]["properties"]}


def test_every_header_the_code_writes_is_documented() -> None:
    """Header names are written as ("beacon.<name>", value) pairs; none may be missing from the document."""
    written: set[str] = set()
    for folder in ("infra", "providers", "services", "schemas", "deploy", "cli"):
        for path in (ROOT / folder).rglob("*.py"):
            written |= set(re.findall(r'\(\s*"(beacon\.[A-Za-z0-9._-]+)"\s*,', path.read_text()))
    assert len(written) >= 6
    assert written == set(_documented_headers())
    assert all(schema.get("description") for schema in _documented_headers().values())


def test_dead_letter_headers_are_what_kafka_dead_letter_writes() -> None:
    sent: list[tuple[str, Any, Any, list[tuple[str, bytes]]]] = []

    class Producer:
        async def send_and_wait(self, topic: str, value: Any, key: Any = None, headers: Any = None) -> None:
            sent.append((topic, value, key, headers))

    source = Topics("beacon").work(next(iter(DEFAULT.regions)))
    record = SimpleNamespace(topic=source, partition=3, offset=1234, key=b"k|e|y|", value=b"\x00not json")
    long_error = "x" * (asyncapi.MAX_ERROR_HEADER_CHARS + 1000)
    fake: Any = Producer()
    asyncio.run(kafka.dead_letter(fake, record, long_error, consumer="beacon.runner.x", in_transaction=True))

    [(topic, value, key, headers)] = sent
    assert channel_of(topic) == f"{channel_of(source)}Dlq"
    assert (value, key) == (record.value, record.key)  # byte for byte
    decoded = {name: raw.decode() for name, raw in headers}
    schema = COMPONENTS["schemas"][asyncapi.DEAD_LETTER_HEADERS]
    assert set(decoded) == set(schema["properties"]) == set(schema["required"])
    check = against("#/components/schemas/" + asyncapi.DEAD_LETTER_HEADERS)
    assert check.is_valid(decoded), [str(e) for e in check.iter_errors(decoded)]
    assert len(decoded["beacon.error"]) == asyncapi.MAX_ERROR_HEADER_CHARS == dlq.MAX_HEADER_CHARS
    assert not check.is_valid({**decoded, "beacon.source.offset": "twelve"})


def test_replayed_from_header_is_what_replay_writes() -> None:
    letter = dlq.DeadLetter(
        dlq_topic=Topics("beacon").jobs_submitted + ".dlq",
        dlq_partition=0,
        dlq_offset=42,
        source_topic="?",
        source_partition=None,
        source_offset=None,
        consumer="?",
        error="",
        key=None,
        value=b"",
    )
    headers = {asyncapi.REPLAYED_FROM: letter.dlq_where}
    check = against("#/components/schemas/" + asyncapi.EVENT_HEADERS)
    assert check.is_valid(headers), letter.dlq_where
    assert not check.is_valid({asyncapi.REPLAYED_FROM: "somewhere"})
    for name in ("JobSubmitted", "CellScheduled", "ExecutionCompleted"):  # the topics replay writes to
        assert COMPONENTS["messages"][name]["headers"] == {"$ref": "#/components/schemas/" + asyncapi.EVENT_HEADERS}
