"""The deployment files, read as data: every Kustomize overlay of deploy/k8s/ rendered with `kubectl kustomize`
(offline) and checked against the Kubernetes API schemas of a fixed version, and the Compose layouts of
deploy/compose/. What they must hold: containers as uid 10001 with a read-only root file system and no
privilege; probes on the right paths and ports; requests, limits and a PodDisruptionBudget for every
Deployment; each region's runner naming its own region only and, in the regional Compose layout, reaching its
own cluster's network only; secrets from files, never a password in a committed file; the links' MirrorMaker
configuration equal to what beacon.deploy.local.mirror makes; make-secrets.sh making every file they read."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from beacon.deploy.local.mirror import CENTRAL, End, MirrorLink
from beacon.providers.routing import Routing
from tests.paths import REPO_ROOT

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML is in the dev group
    yaml = None

K8S = REPO_ROOT / "deploy" / "k8s"
COMPOSE = REPO_ROOT / "deploy" / "compose"
KUBERNETES_VERSION = "1.30.0"  # the oldest minor these manifests promise to work on
REGIONS = ("us-east", "eu-west", "asia-pacific")
OVERLAYS = ("central", *REGIONS)
UID = 10001
# The HTTP services: the port each serves /health/* on.
HTTP = {"reader": 8080, "submitter-api": 8081, "recorder": 8082}
POD_KINDS = ("Deployment", "Job")
BEACON_IMAGE = "${BEACON_REGISTRY:-localhost}/beacon:${BEACON_VERSION:-0.1.0}"


def need_yaml() -> Any:
    if yaml is None:
        pytest.fail("PyYAML is missing: it is in the dev dependency group (uv sync --all-packages)", pytrace=False)
    return yaml


# --- Kubernetes ----------------------------------------------------------------------------------------


@functools.cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail(
            "kubectl is not on PATH: these tests render deploy/k8s/overlays/* with `kubectl kustomize` "
            "(offline; no cluster needed). Install kubectl (it bundles kustomize).",
            pytrace=False,
        )
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"kubectl kustomize overlays/{overlay} failed:\n{result.stderr}"
    return tuple(doc for doc in need_yaml().safe_load_all(result.stdout) if doc)


@functools.cache
def rendered_text(overlay: str) -> str:
    return need_yaml().safe_dump_all(list(rendered(overlay)))


def of_kind(overlay: str, *kinds: str) -> list[dict[str, Any]]:
    return [doc for doc in rendered(overlay) if doc["kind"] in kinds]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def main_container(workload: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod_spec(workload)["containers"]
    return container


def name_of(workload: dict[str, Any]) -> str:
    return workload["metadata"]["labels"]["app.kubernetes.io/name"]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) == {"matchLabels"}, "selectors here are matchLabels only"
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"]["labels"]


def selects_pods(service_selector: dict[str, str], workload: dict[str, Any]) -> bool:
    return selects({"matchLabels": service_selector}, pod_labels(workload))


def env_of(overlay: str, workload: dict[str, Any]) -> dict[str, str]:
    """A container's environment as set by the manifests: its ConfigMaps (envFrom), then its own env."""
    c = main_container(workload)
    maps = {m["metadata"]["name"]: m.get("data", {}) for m in of_kind(overlay, "ConfigMap")}
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        env.update(maps[source["configMapRef"]["name"]])
    env.update({e["name"]: e["value"] for e in c.get("env", []) if "value" in e})
    return env


def yaml_of(doc: dict[str, Any]) -> str:
    return need_yaml().safe_dump(doc)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_is_valid_for_the_kubernetes_version(overlay: str) -> None:
    try:
        import kubernetes_validate
    except ImportError:
        pytest.fail(
            "kubernetes-validate is missing: it is in the dev dependency group (uv add --dev kubernetes-validate)",
            pytrace=False,
        )
    problems = []
    for doc in rendered(overlay):
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            problems.append(f"{doc['kind']}/{doc['metadata']['name']} {where}: {exc.message}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_uid_10001_read_only_and_unprivileged(overlay: str) -> None:
    workloads = of_kind(overlay, *POD_KINDS)
    assert workloads
    for workload in workloads:
        spec = pod_spec(workload)
        pod = spec["securityContext"]
        assert spec["automountServiceAccountToken"] is False, name_of(workload)
        for c in containers(workload):
            sc = {**pod, **c.get("securityContext", {})}  # a container's own settings win over the pod's
            who = f"{workload['metadata']['name']}/{c['name']}"
            assert sc.get("runAsNonRoot") is True, who
            assert sc.get("runAsUser") == UID and sc.get("runAsGroup") == UID, who
            assert c["securityContext"].get("readOnlyRootFilesystem") is True, who
            assert c["securityContext"].get("allowPrivilegeEscalation") is False, who
            assert c["securityContext"].get("capabilities") == {"drop": ["ALL"]}, who
            assert sc.get("seccompProfile") == {"type": "RuntimeDefault"}, who
            assert c["image"].split(":")[0] == "beacon", who  # retargeted by each overlay's `images:`
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            if c["name"] != "copy-secrets":  # the only writable places: /tmp and the state folder
                assert {"/tmp", "/var/lib/beacon"} <= mounts, who


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_copied_by_the_init_container_never_mounted_in_a_service(overlay: str) -> None:
    for workload in of_kind(overlay, *POD_KINDS):
        spec = pod_spec(workload)
        volumes = {v["name"]: v for v in spec["volumes"]}
        secret_volumes = {n for n, v in volumes.items() if "secret" in v or "projected" in v}
        assert secret_volumes, workload["metadata"]["name"]
        for n in secret_volumes:
            mode = (volumes[n].get("secret") or volumes[n]["projected"]).get("defaultMode")
            assert mode == 0o440, f"{n}: owner and fsGroup only"
        for n in ("secrets", "keys"):  # what the copies go to: memory, never the node's disk
            if n in volumes:
                assert volumes[n]["emptyDir"]["medium"] == "Memory", n
        (copier,) = spec["initContainers"]
        assert copier["name"] == "copy-secrets" and copier["command"] == ["sh", "/opt/beacon/copy-secrets.sh"]
        for c in spec["containers"]:
            used = {m["name"]: m for m in c["volumeMounts"]}
            assert not secret_volumes & set(used), f"{c['name']} mounts a Secret volume itself"
            for n in ("secrets", "keys"):
                if n in used and workload["kind"] == "Deployment":
                    assert used[n].get("readOnly") is True, f"{c['name']} may write {n}"
        assert spec["securityContext"]["fsGroup"] == UID  # so the copier (10001) may read the Secret's files


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_http_deployment_probes_ready_and_live_on_its_own_port(overlay: str) -> None:
    for deployment in of_kind(overlay, "Deployment"):
        name, c = name_of(deployment), main_container(deployment)
        if name not in HTTP:
            assert not c.get("ports") and name == "runner", f"{name}: an HTTP port with no probe checked here"
            continue
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert list(ports.values()) == [HTTP[name]], name
        for probe, path in (("readinessProbe", "/health/ready"), ("livenessProbe", "/health/live")):
            get = c[probe]["httpGet"]
            assert get["path"] == path, f"{name} {probe}"
            assert ports.get(get["port"], get["port"]) == HTTP[name], f"{name} {probe} port"
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        # The service is told to listen where it is probed.
        if name == "reader":
            assert env["BEACON_HTTP_PORT"] == str(HTTP[name])
        elif name == "recorder":
            assert env["BEACON_RECORDER_PORT"] == str(HTTP[name])
        else:
            assert c["args"][c["args"].index("--port") + 1] == str(HTTP[name])
            assert c["args"][c["args"].index("--host") + 1] == "0.0.0.0"
        assert name in env["BEACON_ALLOWED_HOSTS"].split(","), f"{name} must answer to its Service's name"
        (service,) = [s for s in of_kind(overlay, "Service") if selects_pods(s["spec"]["selector"], deployment)]
        assert [p["targetPort"] for p in service["spec"]["ports"]] == list(ports)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_resource_requests_and_limits(overlay: str) -> None:
    for workload in of_kind(overlay, *POD_KINDS):
        for c in containers(workload):
            res, who = c.get("resources", {}), f"{workload['metadata']['name']}/{c['name']}"
            assert {"cpu", "memory"} <= set(res.get("requests", {})), who
            assert "memory" in res.get("limits", {}), who


def test_every_deployment_has_one_pdb_selecting_it_and_no_other() -> None:
    # All overlays at once, as if applied to one namespace: a PDB must not hold another region's pods.
    deployments = [d for o in OVERLAYS for d in of_kind(o, "Deployment")]
    pdbs = [p for o in OVERLAYS for p in of_kind(o, "PodDisruptionBudget")]
    assert len(deployments) == len(HTTP) + len(REGIONS)
    for d in deployments:
        mine = [p for p in pdbs if selects(p["spec"]["selector"], pod_labels(d))]
        assert len(mine) == 1, f"{d['metadata']['name']}: {len(mine)} PDBs"
        assert mine[0]["spec"] == {"minAvailable": 1, "selector": mine[0]["spec"]["selector"]}
        assert d["spec"]["replicas"] > 1, f"{d['metadata']['name']}: minAvailable 1 would block every drain"
        others = [o for o in deployments if o is not d and selects(mine[0]["spec"]["selector"], pod_labels(o))]
        assert not others, f"{mine[0]['metadata']['name']} also selects {[o['metadata']['name'] for o in others]}"
        assert selects(d["spec"]["selector"], pod_labels(d))


@pytest.mark.parametrize("region", REGIONS)
def test_each_regions_overlay_names_its_own_region_and_no_other(region: str) -> None:
    text = rendered_text(region)
    assert "REGION" not in text, "a placeholder of the runner base was left"
    for other in set(REGIONS) - {region}:
        assert other not in text, f"overlays/{region} mentions {other}"
    assert "central" not in text and "DATABASE_URL" not in text, "a region's overlay knows nothing central"
    (runner,) = of_kind(region, "Deployment")
    assert runner["metadata"]["name"] == f"runner-{region}"
    assert main_container(runner)["args"] == ["runner", "--region", region]
    env = env_of(region, runner)
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == f"kafka-{region}:9092"
    assert "DATABASE_URL" not in env, "a runner has no database"
    (init,) = of_kind(region, "Job")
    assert main_container(init)["command"][-2:] == ["--region", region]
    assert env_of(region, init)["KAFKA_BOOTSTRAP_SERVERS"] == f"kafka-{region}:9092"
    routing = [m for m in of_kind(region, "ConfigMap") if "routing.toml" in m.get("data", {})]
    assert len(routing) == 1
    assert set(tomllib.loads(routing[0]["data"]["routing.toml"]).get("regions", {})) <= {region}


def test_the_central_overlay_runs_no_runner_and_uses_the_central_cluster() -> None:
    text = rendered_text("central")
    assert "REGION" not in text
    names = {name_of(d) for d in of_kind("central", "Deployment")}
    assert names == set(HTTP)
    for workload in of_kind("central", *POD_KINDS):
        env = env_of("central", workload)
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka-central:9092"
        assert env["DATABASE_URL"] == "postgresql://postgres:5432/beacon"
    jobs = {name_of(j): main_container(j) for j in of_kind("central", "Job")}
    assert jobs["migrate"]["args"] == ["migrate"]
    assert jobs["init"]["command"] == ["python", "-m", "beacon.deploy.local", "init"]
    # Only the init Job holds the admin's passwords.
    holders = [w["metadata"]["name"] for w in of_kind("central", *POD_KINDS) if "beacon-admin" in yaml_of(w)]
    assert holders == ["init"]


def test_no_secret_object_is_committed_or_generated() -> None:
    for overlay in OVERLAYS:
        assert not of_kind(overlay, "Secret"), f"overlays/{overlay} makes a Secret: create them, never commit them"
        for workload in of_kind(overlay, *POD_KINDS):
            for c in containers(workload):
                for e in c.get("env", []):
                    if re.search(r"PASSWORD|TOKEN|API_KEY", e["name"]):
                        assert "valueFrom" in e, f"{e['name']} set as a literal"


# --- passwords in committed files ----------------------------------------------------------------------

# A password written out: `password: x`, `password=x`, `password="x"` (not a reference: ${…}, $(…)), a
# BEACON_KAFKA_PASSWORD with a value, a URL with credentials, or a long hex string like make-secrets.sh makes.
LEAKS = [
    re.compile(r"""(?i)password["']?\s*[:=]\s*(?!["']?\$[{(])["']?[^\s"'`,;)\]}]{3,}"""),
    re.compile(r"(?i)BEACON_KAFKA_PASSWORD\s*[:=]\s*[\"']?[^\s\"'`]"),
    re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@"),
    re.compile(r"\b[0-9a-f]{32,}\b"),
]


def leaks(text: str) -> list[str]:
    return [m.group(0) for pattern in LEAKS for m in pattern.finditer(text)]


def test_the_password_detector_finds_what_it_must_and_spares_references() -> None:
    for bad in (
        "password: hunter22",
        'PASSWORD="s3cret"',
        "BEACON_KAFKA_PASSWORD=abc123",
        "  BEACON_KAFKA_PASSWORD: abc123",
        "postgresql://beacon_reader:pw@postgres:5432/beacon",
        "kafka-admin: 0ae803a70f816eaf85f41736234153d66d53715958608a01",
    ):
        assert leaks(bad), bad
    for fine in (
        'required username="mirror-us-east" password="${secrets:/run/secrets/central:mirror-us-east}";',
        "DATABASE_URL: postgresql://postgres:5432/beacon",
        "the password of each end, from secretKeyRef",
        "`BEACON_KAFKA_PASSWORD` and a `DATABASE_URL` with the password",
    ):
        assert not leaks(fine), fine


def committed_deploy_files() -> list[Path]:
    """Every file of deploy/compose and deploy/k8s but the gitignored secrets make-secrets.sh makes."""
    files = [p for base in (COMPOSE, K8S) for p in base.rglob("*") if p.is_file()]
    secrets = COMPOSE / "secrets"
    return [p for p in files if secrets not in p.parents or p.name == ".gitignore"]


def test_no_committed_or_rendered_deploy_file_holds_a_password() -> None:
    files = committed_deploy_files()
    assert {p.suffix for p in files} >= {".yaml", ".properties", ".toml", ".sh", ".md"}
    found = {str(p.relative_to(REPO_ROOT)): leaks(p.read_text()) for p in files}
    found |= {f"rendered overlays/{o}": leaks(rendered_text(o)) for o in OVERLAYS}
    assert not {k: v for k, v in found.items() if v}


def test_the_secrets_folder_is_ignored_all_but_its_gitignore() -> None:
    lines = [x for x in (COMPOSE / "secrets" / ".gitignore").read_text().splitlines() if not x.startswith("#")]
    assert lines == ["*", "!.gitignore"]


# --- Compose -------------------------------------------------------------------------------------------

LAYOUTS = ("single", "regions")


@functools.cache
def compose(layout: str) -> dict[str, Any]:
    doc = need_yaml().safe_load((COMPOSE / f"{layout}.yaml").read_text())
    assert isinstance(doc, dict) and doc["services"], f"{layout}.yaml is not a Compose file"
    return doc


def services(layout: str) -> dict[str, dict[str, Any]]:
    return compose(layout)["services"]


def service_secrets(layout: str, name: str) -> dict[str, str]:
    """target → the file it comes from."""
    files = compose(layout)["secrets"]
    return {s["target"]: files[s["source"]]["file"] for s in services(layout)[name].get("secrets", [])}


def is_beacon(service: dict[str, Any]) -> bool:
    return service["image"] == BEACON_IMAGE


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_compose_secret_is_a_file_under_the_secrets_folder(layout: str) -> None:
    doc = compose(layout)
    assert doc["secrets"]
    for name, secret in doc["secrets"].items():
        assert set(secret) == {"file"}, f"{name}: only file-based secrets (no environment, no content)"
        assert secret["file"].startswith(f"./secrets/{layout}/"), name
    used = {s["source"] for svc in services(layout).values() for s in svc.get("secrets", [])}
    assert used == set(doc["secrets"]), "a secret declared but never used, or used but not declared"
    for name, svc in services(layout).items():
        for s in svc.get("secrets", []):
            assert isinstance(s, dict) and s["target"].startswith("/run/secrets/"), f"{name}: {s}"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_compose_service_is_uid_10001_read_only_and_unprivileged(layout: str) -> None:
    for name, svc in services(layout).items():
        assert svc["user"] == "10001:10001", name
        assert svc["read_only"] is True, name
        assert svc["cap_drop"] == ["ALL"] and svc["security_opt"] == ["no-new-privileges:true"], name
        assert "/tmp" in {t.split(":")[0] for t in svc["tmpfs"]}, name
        assert svc["stop_grace_period"] and svc["restart"] in ("unless-stopped", "no"), name
        assert svc["deploy"]["resources"]["limits"]["memory"], name
        assert "privileged" not in svc and "network_mode" not in svc and "pid" not in svc, name
        image = svc["image"]
        assert image.startswith("${BEACON_REGISTRY:-localhost}/beacon"), f"{name}: {image}"
        if is_beacon(svc):
            assert "/var/lib/beacon" in {t.split(":")[0] for t in svc["tmpfs"]}, name
            assert "volumes" not in svc, f"{name}: a Beacon service keeps nothing"
        else:  # Kafka, PostgreSQL, MirrorMaker: a named volume for their data, at most
            for volume in svc.get("volumes", []):
                assert volume.split(":")[0] in compose(layout)["volumes"], f"{name}: {volume}"
        for port in svc.get("ports", []):
            assert port.startswith("${BEACON_PUBLISH_HOST:-127.0.0.1}:"), f"{name}: published beyond loopback"
        env = svc.get("environment", {})
        assert isinstance(env, dict), f"{name}: environment as a mapping"
        assert not [k for k in env if re.search(r"PASSWORD|TOKEN", k)], f"{name}: a secret in the environment"
        if "DATABASE_URL" in env:
            assert "@" not in env["DATABASE_URL"], name


@pytest.mark.parametrize("layout", LAYOUTS)
def test_compose_http_services_check_health_ready_on_their_port(layout: str) -> None:
    for name, port in HTTP.items():
        svc = services(layout)[name]
        test = " ".join(svc["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/health/ready" in test, name
        env = svc["environment"]
        assert env["BEACON_HTTP_HOST"] == "0.0.0.0"
        assert name in env["BEACON_ALLOWED_HOSTS"], name
    assert services(layout)["reader"]["environment"]["BEACON_HTTP_PORT"] == "8080"
    assert services(layout)["recorder"]["environment"]["BEACON_RECORDER_PORT"] == "8082"
    assert services(layout)["submitter-api"]["command"] == ["submitter-api", "--host", "0.0.0.0", "--port", "8081"]
    for name, svc in services(layout).items():
        if is_beacon(svc) and name not in HTTP:
            assert "ports" not in svc and "healthcheck" not in svc, name


@pytest.mark.parametrize("layout", LAYOUTS)
def test_compose_services_start_after_their_init_and_init_after_the_servers(layout: str) -> None:
    for name, svc in services(layout).items():
        waits = svc.get("depends_on", {})
        if name.startswith("init"):
            assert svc["restart"] == "no" and svc["entrypoint"][:4] == ["python", "-m", "beacon.deploy.local", "init"]
            assert waits and all(w == {"condition": "service_healthy"} for w in waits.values()), name
        elif "profiles" in svc:  # a tool, run by hand after `up`
            assert not waits, name
        elif is_beacon(svc) or name.startswith("mirror-"):
            inits = {k for k, w in waits.items() if w == {"condition": "service_completed_successfully"}}
            assert inits and inits == set(waits), name
            if name.startswith(("runner-", "mirror-")) and layout == "regions":
                assert f"init-{name.split('-', 1)[1]}" in inits, name


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("region", REGIONS)
def test_a_compose_runner_names_its_region_and_gets_its_own_secrets_only(layout: str, region: str) -> None:
    runner = services(layout)[f"runner-{region}"]
    assert runner["command"] == ["runner", "--region", region]
    assert "DATABASE_URL" not in runner["environment"], "a runner has no database"
    assert set(service_secrets(layout, f"runner-{region}")) == {
        f"/run/secrets/beacon/kafka/runner-{region}",
        "/run/secrets/beacon-keys",
    }
    for file in service_secrets(layout, f"runner-{region}").values():
        assert region in file and not [r for r in REGIONS if r != region and r in file], file
    (config,) = runner["configs"]
    assert compose(layout)["configs"][config["source"]]["file"] == f"./routing/{region}.toml"
    assert runner["environment"]["BEACON_ROUTING_FILE"] == config["target"]


@pytest.mark.parametrize("region", REGIONS)
def test_in_the_regional_layout_a_runner_is_only_on_its_regions_network(region: str) -> None:
    svcs = services("regions")
    assert svcs[f"runner-{region}"]["networks"] == [region]
    assert svcs[f"runner-{region}"]["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == f"kafka-{region}:9092"
    on_it = {name for name, svc in svcs.items() if region in svc["networks"]}
    assert on_it == {f"kafka-{region}", f"init-{region}", f"runner-{region}", f"mirror-{region}"}
    # Only the link joins two networks; the region's cluster and init are on the region's alone.
    assert svcs[f"mirror-{region}"]["networks"] == ["central", region]
    for name in (f"kafka-{region}", f"init-{region}"):
        assert svcs[name]["networks"] == [region], name
    # Everything the region's containers are given comes from the region's own folder, but the link's
    # central password.
    for name in (f"kafka-{region}", f"init-{region}", f"runner-{region}"):
        for file in service_secrets("regions", name).values():
            assert file.startswith(f"./secrets/regions/{region}/"), f"{name}: {file}"
    assert service_secrets("regions", f"mirror-{region}") == {
        f"/run/secrets/central/mirror-{region}": f"./secrets/regions/central/kafka/mirror-{region}",
        f"/run/secrets/{region}/mirror-{region}": f"./secrets/regions/{region}/kafka/mirror-{region}",
    }


def test_in_the_regional_layout_the_centre_holds_no_regions_secret_and_the_reader_no_kafka() -> None:
    svcs = services("regions")
    for name in ("kafka-central", "postgres", "init", "recorder", "reader", "submitter-api", "cli"):
        for file in service_secrets("regions", name).values():
            assert file.startswith("./secrets/regions/central/"), f"{name}: {file}"
        assert not [r for r in REGIONS if r in svcs[name]["networks"]], name
    assert svcs["reader"]["networks"] == ["db"] and svcs["postgres"]["networks"] == ["db"]
    assert "KAFKA_BOOTSTRAP_SERVERS" not in svcs["reader"]["environment"]
    assert not [k for k in service_secrets("regions", "reader") if "/kafka/" in k]


def test_the_single_layout_is_one_network_addressed_by_service_name() -> None:
    assert set(compose("single")["networks"]) == {"beacon"}
    for name, svc in services("single").items():
        assert svc["networks"] == ["beacon"], name
        env = svc.get("environment", {})
        if "KAFKA_BOOTSTRAP_SERVERS" in env:
            assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092", name
        if "DATABASE_URL" in env:
            assert env["DATABASE_URL"] == "postgresql://postgres:5432/beacon", name


@pytest.mark.parametrize("region", REGIONS)
def test_a_links_properties_are_what_mirror_link_makes_for_these_addresses(region: str) -> None:
    central = End(CENTRAL, "kafka-central:9092", Path("/run/secrets/central"), 1)
    own = End(region, f"kafka-{region}:9092", Path(f"/run/secrets/{region}"), 1)
    link = MirrorLink(Path("/nonexistent"), Path("/nonexistent"), "beacon", region, central, own)

    def settings(text: str) -> list[str]:
        return [line for line in text.splitlines() if line and not line.startswith("#")]

    committed = (COMPOSE / "mirror" / f"{region}.properties").read_text()
    assert settings(committed) == settings(link.properties())
    (config,) = services("regions")[f"mirror-{region}"]["configs"]
    assert config["target"] == "/etc/beacon/mirror.properties"
    assert compose("regions")["configs"][config["source"]]["file"] == f"./mirror/{region}.properties"


@pytest.mark.parametrize("root", [COMPOSE / "routing", K8S / "overlays"])
@pytest.mark.parametrize("region", REGIONS)
def test_each_routing_file_is_valid_and_routes_its_own_region_only(root: Path, region: str) -> None:
    path = root / region / "routing.toml" if root.name == "overlays" else root / f"{region}.toml"
    Routing.from_file(path)  # what the runner reads at start
    assert set(tomllib.loads(path.read_text()).get("regions", {})) <= {region}


# --- the scripts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("script", [COMPOSE / "make-secrets.sh", K8S / "create-secrets.sh"])
def test_the_scripts_are_executable_posix_shell(script: Path) -> None:
    assert os.access(script, os.X_OK), f"chmod +x {script}"
    assert script.read_text().startswith("#!/bin/sh\n")
    check = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


@pytest.fixture(scope="module")
def made_secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """make-secrets.sh run in a copy of deploy/compose/, with this checkout's `beacon` for the keys."""
    beacon = Path(sys.executable).parent / "beacon"
    assert beacon.exists(), f"no beacon CLI beside {sys.executable}: run `make install`"
    root = tmp_path_factory.mktemp("deploy") / "compose"
    (root / "secrets").mkdir(parents=True)
    shutil.copy2(COMPOSE / "make-secrets.sh", root)
    state = root.parent / "state"
    env = {**os.environ, "BEACON": str(beacon), "BEACON_STATE_DIR": str(state)}
    for _ in range(2):  # the second run keeps everything the first made
        result = subprocess.run(["sh", str(root / "make-secrets.sh")], capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr
    return root


def test_make_secrets_makes_every_file_the_compose_layouts_read(made_secrets: Path) -> None:
    for layout in LAYOUTS:
        for name, secret in compose(layout)["secrets"].items():
            path = made_secrets / secret["file"]
            assert path.exists(), f"{layout}.yaml secret {name}: make-secrets.sh makes no {secret['file']}"
            assert stat.S_IMODE(path.stat().st_mode) == (0o600 if path.is_file() else 0o700), path
            if path.is_file():
                if "/keys/" not in secret["file"]:
                    assert re.fullmatch(r"[0-9a-f]{48}", path.read_text()), f"{path}: 48 hex digits, no newline"
            if os.geteuid() == 0:
                assert path.stat().st_uid == UID, f"{path}: the containers' user must own it"


def test_make_secrets_gives_each_keys_folder_every_public_key_and_its_own_private_keys(made_secrets: Path) -> None:
    own = {"all": None, "central": {"submitter", "recorder"}, "reader": set()}
    for layout in LAYOUTS:
        for name, secret in compose(layout)["secrets"].items():
            if not name.startswith("keys-"):
                continue
            folder, who = made_secrets / secret["file"], name.removeprefix("keys-")
            trusted = json.loads((folder / "trusted.json").read_text())["keys"]
            assert len(trusted) == 2 + len(REGIONS), f"{folder}: every public key"
            private = {p.name.split(".")[0] for p in (folder / "private").iterdir()}
            expected = own.get(who, {who})
            if expected is None:  # the single layout's init: every key
                expected = {"submitter", "recorder", *(f"runner-{r}" for r in REGIONS)}
            assert private == expected, folder
    # One set of keys per layout: the same trusted.json everywhere within it.
    for layout in LAYOUTS:
        files = {
            made_secrets / s["file"] / "trusted.json" for n, s in compose(layout)["secrets"].items() if "keys" in n
        }
        assert len({f.read_text() for f in files}) == 1, layout


def test_create_secrets_reads_only_files_make_secrets_makes(made_secrets: Path) -> None:
    # Its paths are "$c/…" (the central folder) and "$r/…" (a region's, with $overlay its name).
    script = (K8S / "create-secrets.sh").read_text()
    regional = made_secrets / "secrets" / "regions"
    paths = re.findall(r"\$(c|r)/([A-Za-z0-9_./$-]+)", script)
    assert len(paths) > 10
    for folder, path in paths:
        for region in REGIONS if folder == "r" else ("central",):
            real = regional / region / path.replace("$overlay", region)
            assert real.exists(), f"create-secrets.sh reads {real}, which make-secrets.sh does not make"
