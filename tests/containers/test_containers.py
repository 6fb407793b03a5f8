"""Beacon shipped as containers, for real (`make test-containers`, which `.ci/run` runs): the project's own
images (`make image`) — Kafka, PostgreSQL, and the recorder and a runner per region from the one Beacon image
— started through testcontainers, each as a user runs it (uid 10001, read-only root file system, secrets
mounted read-only). The seed's job gives 72 rows; a runner container killed hard mid-job and started again
still gives exactly 72; a runner stopped with SIGTERM exits cleanly within its grace period.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import psycopg
import pytest

from beacon.deploy.local import access, credentials
from beacon.deploy.local import postgres as local_postgres
from beacon.infra import keys
from beacon.infra.catalogues import DEFAULT
from tests import container_stack as stack
from tests.faults.support import free_port_block, wait_until

pytestmark = pytest.mark.containers

REGIONS = list(DEFAULT.regions)
CELLS = 72
DATABASE = "beacon"


@dataclass
class Stack:
    infra: stack.Infra
    env: dict[str, str]  # what every service container is given
    mounts: dict[Path, str]
    services: dict[str, stack.DockerContainer]
    job_dir: Path
    started: list[stack.DockerContainer] = field(default_factory=list)

    def start(self, name: str, *command: str) -> stack.DockerContainer:
        container = stack.service(list(command), self.env, {**self.mounts, self.job_dir: "/jobs"}).start()
        self.services[name] = container
        self.started.append(container)  # a killed one too: every container is removed at the end
        return container

    def rows(self, job_id: str) -> dict[str, int]:
        with psycopg.connect(self.infra.admin_db_url(DATABASE)) as conn:
            found = conn.execute(
                "SELECT status, count(*) FROM executions WHERE job_id = %s GROUP BY 1", (job_id,)
            ).fetchall()
        return dict(found)

    def submit(self, job_id: str) -> dict[str, object]:
        """`beacon submit` in the recorder's container (the same image, as the submitter's principal)."""
        spec = {
            "job_id": job_id,
            "questions": list(DEFAULT.questions),
            "models": list(DEFAULT.models),
            "regions": REGIONS,
        }
        (self.job_dir / f"{job_id}.json").write_text(json.dumps(spec))
        stack.owned(self.job_dir)
        code, out = self.services["recorder"].exec(["beacon", "submit", f"/jobs/{job_id}.json", "--json"])
        assert code == 0, out.decode()
        return json.loads(out)


@pytest.fixture(scope="module")
def containers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    try:
        stack.require_images()
    except stack.ContainersUnavailable as exc:
        pytest.fail(f"the container test needs Docker and the project's images: {exc}", pytrace=False)
    folder = tmp_path_factory.mktemp("containers")
    state = folder / "state"
    base = free_port_block(3)
    infra = stack.start_infra(state, kafka_port=base, pg_port=base + 2)
    services: dict[str, stack.DockerContainer] = {}
    made: list[Stack] = []
    try:
        # Every password and key, made beforehand as make-secrets.sh makes them; then `init` in a container does
        # what `make up` does on servers that run: roles, database, migrations; principals, ACLs, topics.
        for principal in access.principals(REGIONS):
            credentials.password(state, "kafka", principal)
        for role in local_postgres.ROLES:
            credentials.password(state, "postgres", role)
        keys.ensure(state / "keys", keys.bindings(REGIONS))
        database = f"postgresql://127.0.0.1:{infra.pg_port}/{DATABASE}"
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap,
            "DATABASE_URL": database,  # no password: each service reads its role's from its file
            "BEACON_SECRETS_DIR": "/run/secrets/beacon",
            "BEACON_KEYS_DIR": "/run/secrets/beacon-keys",
            "BEACON_RECORDER_PORT": "0",
            "BEACON_DEADLINE_SWEEP_SECONDS": "1",
            "BEACON_SIMULATED_LATENCY_MS": "150",  # cells stay in flight when a runner is killed
            "BEACON_RUNNER_CONCURRENCY": "4",
        }
        mounts = {
            stack.owned(state / "secrets"): "/run/secrets/beacon",
            stack.owned(state / "keys"): "/run/secrets/beacon-keys",
        }
        job_dir = folder / "jobs"
        job_dir.mkdir(mode=0o700)
        s = Stack(infra, env, mounts, services, job_dir)
        made.append(s)
        init = stack.service([], env, mounts).with_kwargs(
            network_mode="host", read_only=True, entrypoint=["python3", "-m", "beacon.deploy.local", "init"]
        )
        init.start()
        code = stack.wait_exited(init, 180)
        assert code == 0, stack.logs(init)[-3000:]
        print("\n" + stack.logs(init))
        init.get_wrapped_container().remove()
        s.start("recorder", "recorder")
        for region in REGIONS:
            s.start(f"runner-{region}", "runner", "--region", region)
        yield s
    finally:
        for container in [c for s in made for c in s.started]:
            container.stop()  # stops and removes it
        infra.stop()


def test_the_images_run_as_a_user_with_a_health_check() -> None:
    client = docker.from_env()
    image = client.images.get(stack.IMAGES["beacon"])
    config = image.attrs["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["beacon"]
    assert config["Healthcheck"]["Test"][0] == "CMD"
    for tag in (stack.IMAGES["kafka"], stack.IMAGES["postgres"]):
        assert client.images.get(tag).attrs["Config"]["User"] == "10001:10001", tag


def test_the_seed_job_on_containers(containers: Stack) -> None:
    submitted = containers.submit("containers-seed")
    assert submitted["expected_executions"] == CELLS
    wait_until(lambda: sum(containers.rows("containers-seed").values()) >= CELLS, 120, "72 rows")
    time.sleep(2)  # a duplicate, if one could come, would be in by now
    assert containers.rows("containers-seed") == {"completed": CELLS}


def test_a_runner_container_killed_mid_job_still_gives_exactly_72(containers: Stack) -> None:
    containers.submit("containers-kill")
    victim = "runner-eu-west"
    wait_until(lambda: sum(containers.rows("containers-kill").values()) >= 8, 120, "the job under way")
    containers.services[victim].get_wrapped_container().kill()  # SIGKILL: no goodbye, nothing committed
    assert stack.wait_exited(containers.services[victim]) == 137
    containers.start(victim, "runner", "--region", "eu-west")
    wait_until(lambda: sum(containers.rows("containers-kill").values()) >= CELLS, 180, "72 rows after the kill")
    time.sleep(3)
    assert containers.rows("containers-kill") == {"completed": CELLS}


def test_a_runner_stopped_with_sigterm_exits_cleanly_within_its_grace_period(containers: Stack) -> None:
    name = "runner-us-east"
    began = time.monotonic()
    containers.services[name].get_wrapped_container().stop(timeout=20)  # SIGTERM, then SIGKILL after 20 s
    took = time.monotonic() - began
    assert stack.wait_exited(containers.services[name]) == 0, stack.logs(containers.services[name])[-2000:]
    assert took < 20
    containers.start(name, "runner", "--region", "us-east")
