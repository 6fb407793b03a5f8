"""The access policy as data: Kafka ACLs per principal, table privileges per role, credentials in settings,
and the principal each command acts as. The real servers refusing what this allows not is
tests/integration/test_access.py."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from aiokafka import errors as kafka_errors

from beacon.cli.main import ACTS_AS, acting_as
from beacon.deploy.local import access
from beacon.infra import db, kafka
from beacon.infra.settings import Settings, SettingsError, url_user, with_credentials, without_credentials
from beacon.schemas.topics import Principals

REGIONS = ["us-east", "eu-west", "asia-pacific"]
PLAN = access.plan("beacon", REGIONS)


def of(principal: str) -> list[access.Acl]:
    return [a for a in PLAN if a.principal == principal]


def test_a_runner_touches_only_its_own_regions_topics_groups_and_transactions() -> None:
    mine = of(Principals.runner("us-east"))
    names = {a.name for a in mine}
    assert not [n for n in names if "eu-west" in n or "asia-pacific" in n]
    assert {"beacon.work.us-east", "beacon.jobs.expanded.us-east", "beacon.runner.us-east"} <= names
    # Its transactional ids, by a prefix ending in a dot, so us-east never covers us-east-2's.
    tx = [a for a in mine if a.resource_type == access.TRANSACTIONAL_ID]
    assert {a.name for a in tx} == {"beacon.expander.us-east."} and {a.pattern for a in tx} == {access.PREFIXED}
    # It reads jobs.submitted, never writes it.
    submitted = {a.operation for a in mine if a.name == "beacon.jobs.submitted"}
    assert submitted == {access.READ, access.DESCRIBE}


def test_nobody_but_admin_may_delete_alter_create_or_act_on_the_cluster() -> None:
    assert {a.operation for a in PLAN} <= {access.READ, access.WRITE, access.DESCRIBE}
    assert {a.resource_type for a in PLAN} <= {access.TOPIC, access.GROUP, access.TRANSACTIONAL_ID}
    assert Principals.ADMIN not in {a.principal for a in PLAN}  # a super user, by the broker's config


def test_the_submitter_only_writes_jobs_submitted() -> None:
    assert {(a.name, a.operation) for a in of(Principals.SUBMITTER)} == {
        ("beacon.jobs.submitted", access.WRITE),
        ("beacon.jobs.submitted", access.DESCRIBE),
    }


def test_the_recorder_reads_the_projected_topics_in_its_own_group_only() -> None:
    mine = of(Principals.RECORDER)
    groups = {a.name for a in mine if a.resource_type == access.GROUP}
    assert groups == {"beacon.recorder"}
    writes = {a.name for a in mine if a.operation == access.WRITE}
    assert writes == {"beacon.executions.completed"} | {n for n in writes if n.endswith(".dlq")}
    assert not [a for a in mine if "work." in a.name]


def test_each_namespace_gets_its_own_acls() -> None:
    assert {a.name.split(".")[0] for a in access.plan("test-1", ["us-east"])} == {"test-1"}


def test_the_reader_role_may_only_select_and_nobody_may_alter() -> None:
    assert {p for p in db.PRIVILEGES["beacon_reader"].values()} == {"SELECT"}
    every = {word.strip() for table in db.PRIVILEGES.values() for p in table.values() for word in p.split(",")}
    assert every <= {"SELECT", "INSERT", "UPDATE", "DELETE"}
    assert "submissions" not in db.PRIVILEGES["beacon_recorder"]
    assert set(db.PRIVILEGES["beacon_submitter"]) & {"executions", "jobs"} == set()


# --- credentials in settings ----------------------------------------------------------------------------


def secret(tmp_path: Path, kind: str, name: str, value: str = "pw", mode: int = 0o600) -> Path:
    path = tmp_path / kind / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value + "\n")
    path.chmod(mode)
    return path


def test_a_service_acts_as_its_own_principal_and_role(tmp_path: Path) -> None:
    secret(tmp_path, "kafka", "recorder", "k-secret")
    secret(tmp_path, "postgres", "recorder", "p/secret")
    base = Settings.from_env({"BEACON_SECRETS_DIR": str(tmp_path), "DATABASE_URL": "postgresql://h:5/db"})
    s = base.acting_as(Principals.RECORDER, "recorder")
    assert (s.kafka_username, s.kafka_password) == ("recorder", "k-secret")
    assert s.database_url == "postgresql://beacon_recorder:p%2Fsecret@h:5/db"
    assert "k-secret" not in repr(s) and "k-secret" not in str(s.kafka_credentials_from)


def test_explicit_credentials_win(tmp_path: Path) -> None:
    secret(tmp_path, "kafka", "recorder")
    pw = secret(tmp_path, "x", "mine", "file-pw")
    env = {
        "BEACON_SECRETS_DIR": str(tmp_path),
        "BEACON_KAFKA_USERNAME": "alice",
        "BEACON_KAFKA_PASSWORD_FILE": str(pw),
        "DATABASE_URL": "postgresql://bob:x@h/db",
    }
    s = Settings.from_env(env).acting_as(Principals.RECORDER, "recorder")
    assert (s.kafka_username, s.kafka_password, s.database_url) == ("alice", "file-pw", "postgresql://bob:x@h/db")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BEACON_KAFKA_USERNAME": "alice"}, "BEACON_KAFKA_USERNAME='alice' needs a password"),
        ({"BEACON_KAFKA_SECURITY": "tls"}, "BEACON_KAFKA_SECURITY='tls'"),
        ({"BEACON_KAFKA_USERNAME": "a", "BEACON_KAFKA_PASSWORD_FILE": "/nonexistent"}, "cannot read /nonexistent"),
    ],
)
def test_bad_credential_settings_say_which(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_a_password_file_others_can_read_is_refused(tmp_path: Path) -> None:
    secret(tmp_path, "kafka", "recorder", mode=0o644)
    with pytest.raises(SettingsError, match="may be read by others"):
        Settings.from_env({"BEACON_SECRETS_DIR": str(tmp_path)}).acting_as(Principals.RECORDER)


def test_urls_with_and_without_credentials() -> None:
    url = with_credentials("postgresql://127.0.0.1:5/db", "u", "p@ss")
    assert url_user(url) == "u" and without_credentials(url) == "postgresql://127.0.0.1:5/db"
    assert url_user("postgresql://127.0.0.1:5/db") is None


def test_a_refused_password_names_the_setting_and_never_the_secret(tmp_path: Path) -> None:
    env = {"BEACON_KAFKA_USERNAME": "recorder", "BEACON_KAFKA_PASSWORD": "hunter2"}
    message = kafka.credentials_problem(Settings.from_env(env), kafka_errors.SaslAuthenticationFailed("bad"))
    assert message and "BEACON_KAFKA_PASSWORD" in message and "recorder" in message and "hunter2" not in message
    denied = kafka.credentials_problem(Settings.from_env(env), kafka_errors.TopicAuthorizationFailedError())
    assert denied and "not allowed" in denied
    assert kafka.credentials_problem(Settings.from_env(env), kafka_errors.KafkaTimeoutError()) is None


def test_each_command_acts_as_its_own_principal(tmp_path: Path) -> None:
    for name in ("submitter", "recorder", "runner-eu-west"):
        secret(tmp_path, "kafka", name)
    for name in ("reader", "submitter", "recorder", "migrator"):
        secret(tmp_path, "postgres", name)
    base = Settings.from_env({"BEACON_SECRETS_DIR": str(tmp_path), "DATABASE_URL": "postgresql://h/db"})

    def who(command: str, **kw: str) -> tuple[str | None, str | None]:
        s = acting_as(base, argparse.Namespace(command=command, **kw))
        return s.kafka_username, url_user(s.database_url)

    assert who("runner", region="eu-west") == ("runner-eu-west", None)
    assert who("status") == (None, "beacon_reader")
    assert who("submit") == ("submitter", "beacon_submitter")
    assert who("migrate") == (None, "beacon_migrator")
    assert who("recorder") == ("recorder", "beacon_recorder")
    assert who("example") == (None, None)
    assert set(ACTS_AS) >= {"submit", "submitter-api", "recorder", "reader", "status", "migrate", "replay"}
