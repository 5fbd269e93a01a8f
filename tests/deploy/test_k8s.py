"""deploy/k8s: the kustomize tree renders (tests/deploy/kustomize_lite.py, checked against `kubectl kustomize`
where kubectl is installed), every resource validates against the Kubernetes 1.37 schemas in strict mode
(kubernetes-validate), and the invariants of docs/deploy.md hold: resources and probes on every container,
the images the Dockerfiles build run the commands they are meant for, every REVERIE_* name is a setting, GPU
pods ask for a GPU on GPU nodes, vLLM runs compose's arguments, the adapters volume is shared at the path the
worker records, API and worker pods wait for the migrations Job's schema, the Ingress has TLS, and the
example Secret holds no real value."""

from __future__ import annotations

import copy
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from service.config import Settings
from tests.deploy.kustomize_lite import KustomizeError, build, containers, key, load_documents, pod_spec
from tests.deploy.test_deploy import flags, in_ci
from tests.servers import REPO

K8S = REPO / "deploy" / "k8s"
TREES = {"base": K8S / "base", "production": K8S / "overlays" / "production",
         "external-postgres": K8S / "overlays" / "external-postgres"}  # fmt: skip
SECRET_EXAMPLE = K8S / "secret.example.yaml"
KUBERNETES_VERSION = "1.37.0"  # the newest schemas kubernetes-validate 1.37.0 ships
NOT_SETTINGS = {"POSTGRES_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"}


def render(name: str) -> list[dict]:
    return build(TREES[name])


def by_key(resources: list[dict]) -> dict[tuple[str, str], dict]:
    return {key(r): r for r in resources}


def workload(resources: list[dict], kind: str, name: str) -> dict:
    return by_key(resources)[(kind, name)]


def container(resources: list[dict], kind: str, name: str, container_name: str) -> dict:
    spec = pod_spec(workload(resources, kind, name))
    (found,) = [c for c in spec["containers"] + spec.get("initContainers", []) if c["name"] == container_name]
    return found


def config(resources: list[dict]) -> dict[str, str]:
    return workload(resources, "ConfigMap", "reverie-config")["data"]


def secret_example() -> dict[str, str]:
    (secret,) = load_documents(SECRET_EXAMPLE)
    return secret["stringData"]


def compose_service(name: str, file: str = "docker-compose.yml") -> dict:
    return yaml.safe_load((REPO / file).read_text())["services"][name]


def mount(spec: dict, container_spec: dict, claim: str) -> tuple[str, bool]:
    """(mountPath, readOnly) of the PersistentVolumeClaim `claim` in a container."""
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    (found,) = [
        m for m in container_spec.get("volumeMounts", [])
        if volumes[m["name"]].get("persistentVolumeClaim", {}).get("claimName") == claim
    ]  # fmt: skip
    return found["mountPath"], bool(found.get("readOnly"))


# --- rendering ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TREES))
def test_the_loader_renders_what_kubectl_kustomize_renders(name):
    kubectl = shutil.which("kubectl")
    if kubectl is None:  # not a test dependency: the loader is what the other tests use
        pytest.skip("kubectl is not installed: kustomize_lite is not cross-checked")
    result = subprocess.run([kubectl, "kustomize", str(TREES[name])], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    theirs = by_key([doc for doc in yaml.safe_load_all(result.stdout) if doc])
    ours = by_key(render(name))
    assert set(ours) == set(theirs)
    for resource_key, resource in ours.items():
        assert resource == theirs[resource_key], resource_key


def test_the_loader_refuses_what_it_does_not_implement(tmp_path):
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n")
    (tmp_path / "kustomization.yaml").write_text("resources: [cm.yaml]\ncommonLabels: {a: b}\n")
    with pytest.raises(KustomizeError, match="commonLabels"):
        build(tmp_path)
    (tmp_path / "kustomization.yaml").write_text("resources: [cm.yaml]\npatches: [{path: p.yaml}]\n")
    (tmp_path / "p.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: y}\n")
    with pytest.raises(KustomizeError, match="matches 0"):
        build(tmp_path)


def test_the_overlays_change_what_they_say():
    base, production, external = (by_key(render(name)) for name in ("base", "production", "external-postgres"))
    assert set(base) - set(external) == {("StatefulSet", "reverie-postgres"), ("Service", "reverie-postgres")}
    assert {r["metadata"].get("namespace") for r in production.values()} == {"reverie"}
    assert all("namespace" not in r["metadata"] for r in base.values()), "the base is namespace-agnostic"
    assert production[("Deployment", "reverie-worker")]["spec"]["replicas"] == 2
    hpa = production[("HorizontalPodAutoscaler", "reverie-api")]["spec"]
    assert hpa["minReplicas"] >= 2 and hpa["maxReplicas"] > hpa["minReplicas"]
    assert production[("Ingress", "reverie-api")]["spec"]["rules"][0]["host"] != "reverie.example.com"
    assert production[("ConfigMap", "reverie-config")]["data"]["REVERIE_ADAPTER_STORE"].startswith("s3://")
    # the patch kept the base's other settings
    base_config, production_config = (trees[("ConfigMap", "reverie-config")]["data"] for trees in (base, production))
    assert set(base_config) <= set(production_config)


# --- the Kubernetes schemas -----------------------------------------------------------------------------


def kubernetes_validate():
    try:
        import kubernetes_validate
    except ImportError:
        reason = "kubernetes-validate is not installed (pip install -e '.[test]')"
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return kubernetes_validate


@pytest.mark.parametrize("name", sorted(TREES))
def test_every_resource_validates_strictly(name):
    validator = kubernetes_validate()
    resources = render(name) + load_documents(SECRET_EXAMPLE)
    for resource in resources:
        # raises ValidationError on a wrong or unknown field, SchemaNotFoundError on an unknown kind
        validator.validate(resource, KUBERNETES_VERSION, strict=True)


def test_strict_validation_catches_a_misspelt_field():
    validator = kubernetes_validate()
    api = copy.deepcopy(workload(render("base"), "Deployment", "reverie-api"))
    pod_spec(api)["containers"][0]["readinesProbe"] = pod_spec(api)["containers"][0].pop("readinessProbe")
    with pytest.raises(validator.ValidationError):
        validator.validate(api, KUBERNETES_VERSION, strict=True)


# --- containers: resources, probes, images ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TREES))
def test_every_container_has_resources_and_long_running_ones_probes(name):
    resources = render(name)
    health_routes = {"/healthz", "/readyz"}  # service/api/health.py
    from service.api.health import router

    assert {route.path for route in router.routes} == health_routes
    assert containers(resources)
    for resource in resources:
        spec = pod_spec(resource)
        if spec is None:
            continue
        for c in spec["containers"] + spec.get("initContainers", []):
            where = f"{resource['kind']}/{resource['metadata']['name']}/{c['name']}"
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c.get("resources", {}).get(part, {})), f"{where}: {part}"
        if resource["kind"] == "Job":
            assert spec["restartPolicy"] in ("OnFailure", "Never")
            continue
        for c in spec["containers"]:
            where = f"{resource['kind']}/{resource['metadata']['name']}/{c['name']}"
            assert "readinessProbe" in c and "livenessProbe" in c, where
            ports = {p["name"] for p in c.get("ports", [])}
            for probe in (c[k] for k in ("startupProbe", "readinessProbe", "livenessProbe") if k in c):
                if "httpGet" in probe:
                    assert probe["httpGet"]["port"] in ports, f"{where}: probe on an unnamed port"
    api = container(resources, "Deployment", "reverie-api", "api")
    assert {api["readinessProbe"]["httpGet"]["path"], api["livenessProbe"]["httpGet"]["path"]} == health_routes
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"


def dockerfile_json(path: Path, instruction: str) -> list[str]:
    import json

    return json.loads(re.search(rf"^{instruction} (\[.*\])\s*$", path.read_text(), re.MULTILINE).group(1))


@pytest.mark.parametrize("name", sorted(TREES))
def test_images_run_what_their_dockerfiles_build_them_for(name):
    resources = render(name)
    api_file, worker_file = REPO / "deploy" / "Dockerfile", REPO / "deploy" / "Dockerfile.worker"
    images: dict[str, set[str]] = {}
    for resource in resources:
        spec = pod_spec(resource)
        for c in (spec["containers"] + spec.get("initContainers", [])) if spec else []:
            images.setdefault(c["image"].rsplit(":", 1)[0].rsplit("/", 1)[-1], set()).add(resource["metadata"]["name"])
            assert re.fullmatch(r"[\w./-]+:[\w.-]+", c["image"]), f"{c['image']}: pinned by tag"
    expected = {
        "reverie-api": {"reverie-api", "reverie-migrate", "reverie-model", "reverie-vllm"},  # vLLM: the chat template
        "reverie-worker": {"reverie-worker"},
        "vllm-openai": {"reverie-vllm"},
        "postgres": {"reverie-postgres"},
    }
    if name == "external-postgres":
        del expected["postgres"]
    assert images == expected
    # the ENTRYPOINT is `reverie`; the pods give its arguments, as the compose file's services do
    assert dockerfile_json(api_file, "ENTRYPOINT") == ["reverie"] == dockerfile_json(worker_file, "ENTRYPOINT")
    assert container(resources, "Deployment", "reverie-api", "api")["args"] == dockerfile_json(api_file, "CMD")
    assert container(resources, "Deployment", "reverie-worker", "worker")["args"] == dockerfile_json(worker_file, "CMD")
    assert "command" not in container(resources, "Deployment", "reverie-api", "api")
    migrate = container(resources, "Job", "reverie-migrate", "migrate")
    assert migrate["command"] == compose_service("migrate")["entrypoint"] == ["/app/deploy/prestart.sh"]
    assert "deploy/prestart.sh" in re.search(r"^COPY .*prestart\.sh.*$", api_file.read_text(), re.MULTILINE).group(0)
    assert container(resources, "Job", "reverie-model", "model")["args"][:2] == compose_service("model")["command"][:2]
    vllm = container(resources, "Deployment", "reverie-vllm", "vllm")
    compose_vllm = compose_service("vllm")
    assert vllm["image"] == compose_vllm["image"] and vllm["command"] == compose_vllm["entrypoint"]
    if name != "external-postgres":
        postgres = container(resources, "StatefulSet", "reverie-postgres", "postgres")
        assert postgres["image"] == compose_service("postgres")["image"]
    # one release: the API and the worker image carry the same tag
    reverie_images = [c["image"] for c in containers(resources) if re.match(r"(.*/)?reverie-", c["image"])]
    tags = {image.rsplit(":", 1)[1] for image in reverie_images}
    assert len(tags) == 1, tags


# --- settings ---------------------------------------------------------------------------------------------


def settings_names() -> set[str]:
    return {f"REVERIE_{field.upper()}" for field in Settings.model_fields}


def test_every_reverie_name_is_a_setting():
    """Every REVERIE_* word anywhere under deploy/k8s (keys, env names, $(VAR)s and comments alike)."""
    used = set()
    for path in K8S.rglob("*.yaml"):
        used |= set(re.findall(r"\bREVERIE_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    assert used - settings_names() == set(), "not a Settings field of service/config.py"
    # the object store's settings (docs/deploy.md, "Adapters in an object store") are among them
    assert {"REVERIE_ADAPTER_STORE", "REVERIE_S3_ENDPOINT_URL", "REVERIE_DATABASE_URL", "REVERIE_VLLM_URL"} <= used


@pytest.mark.parametrize("name", sorted(TREES))
def test_the_config_map_parses_as_settings_and_every_reference_resolves(name):
    resources = render(name)
    data = config(resources)
    secret = secret_example()
    fields = {var.removeprefix("REVERIE_").lower(): value for var, value in data.items() if var in settings_names()}
    settings = Settings(_env_file=None, **fields)  # raises on a value the daemon would refuse
    assert settings.engine == "vllm" and not settings.embedded_worker and not settings.vllm_sleep_during_training
    assert set(data) - settings_names() <= NOT_SETTINGS
    configmaps = {r["metadata"]["name"]: r["data"] for r in resources if r["kind"] == "ConfigMap"}
    claims = {r["metadata"]["name"] for r in resources if r["kind"] == "PersistentVolumeClaim"}
    for resource in resources:
        spec = pod_spec(resource)
        if spec is None:
            continue
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configmaps
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims
        for c in spec["containers"] + spec.get("initContainers", []):
            for source in c.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in configmaps
                else:
                    assert source["secretRef"]["name"] == "reverie-secrets"
            defined = {e["name"] for e in c.get("env", [])}
            for source in c.get("envFrom", []):
                defined |= set(configmaps[source["configMapRef"]["name"]] if "configMapRef" in source else secret)
            for entry in c.get("env", []):
                ref = entry.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    assert ref["configMapKeyRef"]["key"] in configmaps[ref["configMapKeyRef"]["name"]]
                if "secretKeyRef" in ref:
                    assert ref["secretKeyRef"]["name"] == "reverie-secrets" and ref["secretKeyRef"]["key"] in secret
            # Kubernetes leaves an undefined $(VAR) as it is: every one must be defined in the container
            for word in c.get("command", []) + c.get("args", []):
                for variable in re.findall(r"\$\((\w+)\)", word):
                    assert variable in defined, f"{c['name']}: $({variable}) is not defined"


# --- GPUs, vLLM, volumes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TREES))
def test_gpu_pods_ask_for_one_gpu_on_gpu_nodes_and_no_other_pod_does(name):
    resources = render(name)
    gpu_pods = set()
    for resource in resources:
        spec = pod_spec(resource)
        if spec is None:
            continue
        wants = [c for c in spec["containers"] if "nvidia.com/gpu" in c["resources"].get("limits", {})]
        if wants:
            gpu_pods.add(resource["metadata"]["name"])
            for c in wants:  # extended resources: requests equal limits
                assert c["resources"]["limits"]["nvidia.com/gpu"] == c["resources"]["requests"]["nvidia.com/gpu"] == "1"
            assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
            assert resource["spec"]["strategy"]["type"] == "Recreate", "a rolling update would need a spare GPU"
        else:
            assert "tolerations" not in spec, f"{resource['metadata']['name']} would land on GPU nodes"
        for c in spec.get("initContainers", []):
            assert "nvidia.com/gpu" not in c["resources"]["limits"]
    assert gpu_pods == {"reverie-vllm", "reverie-worker"}


def test_vllm_runs_the_split_profiles_arguments():
    resources = render("production")
    deployment = workload(resources, "Deployment", "reverie-vllm")
    assert deployment["spec"]["replicas"] == 1, "the API loads adapters into one server per Service"
    vllm = container(resources, "Deployment", "reverie-vllm", "vllm")
    ours, split = flags(vllm["args"]), flags(compose_service("vllm", "deploy/compose.gpu-split.yml")["command"])
    assert set(ours) - {"--max-cpu-loras"} == set(split), "the same flags as deploy/compose.gpu-split.yml"
    assert "--enable-lora" in ours and "--enable-sleep-mode" not in ours and "--enable-auto-tool-choice" in ours
    assert ours["--tool-call-parser"] == "hermes"
    assert vllm["args"][0] == "$(REVERIE_MODEL)"
    assert ours["--chat-template"] == "$(REVERIE_CHAT_TEMPLATE)"
    assert ours["--max-lora-rank"] == "$(REVERIE_MAX_LORA_RANK)"
    assert int(ours["--max-cpu-loras"]) >= int(ours["--max-loras"]) >= 2  # a namespace's version and the previous
    gpu_default = yaml.safe_load((REPO / "trainer" / "configs" / "gpu-default.yaml").read_text())
    data = config(resources)
    assert int(data["REVERIE_MAX_LORA_RANK"]) == gpu_default["max_lora_rank"]
    assert data["REVERIE_SLEEP_CONFIG"] == "gpu-default"
    env = {e["name"]: e for e in vllm["env"]}
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"]["value"] == "True" and "VLLM_SERVER_DEV_MODE" not in env
    assert env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "REVERIE_VLLM_API_KEY"
    # the API reaches it at the Service's name and port; only the API and the worker may
    service = workload(resources, "Service", "reverie-vllm")
    assert data["REVERIE_VLLM_URL"] == f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    policy = workload(resources, "NetworkPolicy", "reverie-vllm")["spec"]
    allowed = {p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in policy["ingress"][0]["from"]}
    assert allowed == {"api", "worker"}


def test_vllm_and_the_api_see_the_chat_template_at_the_same_path():
    resources = render("base")
    path = Path(config(resources)["REVERIE_CHAT_TEMPLATE"])
    # the API image has service/ at /app/service (deploy/Dockerfile: WORKDIR /app, COPY service service)
    assert path.is_relative_to("/app/service/chat_templates") and (REPO / path.relative_to("/app")).is_file()
    spec = pod_spec(workload(resources, "Deployment", "reverie-vllm"))
    copier = container(resources, "Deployment", "reverie-vllm", "chat-templates")
    vllm = container(resources, "Deployment", "reverie-vllm", "vllm")
    (target,) = [m for m in copier["volumeMounts"]]
    (mounted,) = [m for m in vllm["volumeMounts"] if m["name"] == target["name"]]
    assert mounted["mountPath"] == str(path.parent) and copier["command"][-1].rstrip("/") == target["mountPath"]
    assert "emptyDir" in {v["name"]: v for v in spec["volumes"]}[target["name"]]


def test_worker_and_vllm_share_the_adapters_at_the_recorded_path():
    resources = render("production")
    data = config(resources)
    adapters_dir = str(Settings(_env_file=None, data_dir=data["REVERIE_DATA_DIR"]).adapters_dir)
    vllm_spec, worker_spec = (pod_spec(workload(resources, "Deployment", f"reverie-{n}")) for n in ("vllm", "worker"))
    vllm = container(resources, "Deployment", "reverie-vllm", "vllm")
    worker = container(resources, "Deployment", "reverie-worker", "worker")
    api_spec = pod_spec(workload(resources, "Deployment", "reverie-api"))
    api = container(resources, "Deployment", "reverie-api", "api")
    assert mount(vllm_spec, vllm, "reverie-adapters") == (adapters_dir, True)
    assert mount(worker_spec, worker, "reverie-adapters") == (adapters_dir, False)
    # with an object store the API fetches into its adapters folder and has vLLM load from that path
    assert data["REVERIE_ADAPTER_STORE"].startswith("s3://")
    assert mount(api_spec, api, "reverie-adapters") == (adapters_dir, False)
    # one base model for serving, training and the API's tokenizer, read-only for all three
    model = data["REVERIE_MODEL"]
    for spec, c in ((vllm_spec, vllm), (worker_spec, worker), (api_spec, api)):
        path, read_only = mount(spec, c, "reverie-models")
        assert read_only and model.startswith(path + "/")
    claims = {r["metadata"]["name"]: r["spec"] for r in resources if r["kind"] == "PersistentVolumeClaim"}
    assert claims["reverie-adapters"]["accessModes"] == claims["reverie-models"]["accessModes"] == ["ReadWriteMany"]


# --- migrations first -------------------------------------------------------------------------------------------


def run_wait_script(tmp_path: Path, url: str) -> subprocess.CompletedProcess:
    script = tmp_path / "wait_for_schema.py"
    script.write_text(config_maps()["reverie-scripts"]["wait_for_schema.py"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVERIE_")}
    env |= {"REVERIE_DATABASE_URL": url, "SCHEMA_WAIT_TIMEOUT_S": "0", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


def config_maps() -> dict[str, dict]:
    return {r["metadata"]["name"]: r["data"] for r in render("base") if r["kind"] == "ConfigMap"}


def test_api_and_worker_pods_wait_for_the_migrations_job():
    resources = render("base")
    for name, image in (("reverie-api", "reverie-api"), ("reverie-worker", "reverie-worker")):
        spec = pod_spec(workload(resources, "Deployment", name))
        wait = container(resources, "Deployment", name, "wait-for-schema")
        assert spec["initContainers"][0] is wait, "the schema first"
        assert wait["image"].startswith(f"{image}:"), "its own image's migrations decide what current means"
        assert wait["command"] == ["python", "/scripts/wait_for_schema.py"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        (scripts,) = [m for m in wait["volumeMounts"] if m["mountPath"] == "/scripts"]
        assert volumes[scripts["name"]]["configMap"]["name"] == "reverie-scripts"
    job = workload(resources, "Job", "reverie-migrate")
    api_image = container(resources, "Deployment", "reverie-api", "api")["image"]
    assert pod_spec(job)["containers"][0]["image"] == api_image


def test_the_schema_wait_passes_only_on_a_current_or_newer_schema(tmp_path):
    from service.store.db import upgrade

    url = f"sqlite:///{tmp_path / 'store.db'}"
    waiting = run_wait_script(tmp_path, url)
    assert waiting.returncode == 1 and "did the reverie-migrate Job run?" in waiting.stderr, waiting.stderr[-2000:]
    upgrade(url, "0003")
    behind = run_wait_script(tmp_path, url)
    assert behind.returncode == 1 and "0003" in behind.stderr, behind.stderr[-2000:]
    upgrade(url)
    current = run_wait_script(tmp_path, url)
    assert current.returncode == 0 and "current" in current.stdout, current.stderr[-2000:]
    with sqlite3.connect(tmp_path / "store.db") as connection:  # a newer release migrated (code rolled back)
        connection.execute("UPDATE alembic_version SET version_num = 'ffff_from_a_newer_release'")
    assert run_wait_script(tmp_path, url).returncode == 0
    assert run_wait_script(tmp_path, "postgresql://reverie:pw@127.0.0.1:1/reverie").returncode == 1  # no server


# --- ingress, services, secrets -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TREES))
def test_the_ingress_terminates_tls_for_every_host_and_reaches_the_api(name):
    resources = render(name)
    (ingress,) = [r for r in resources if r["kind"] == "Ingress"]
    tls_hosts = {host for entry in ingress["spec"]["tls"] for host in entry["hosts"]}
    assert all(entry["secretName"] for entry in ingress["spec"]["tls"])
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/ssl-redirect"] == "true"
    services = {r["metadata"]["name"]: r for r in resources if r["kind"] == "Service"}
    for rule in ingress["spec"]["rules"]:
        assert rule["host"] in tls_hosts
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == "reverie-api"
            assert backend["port"]["name"] in {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
    # every Service selects a workload's pods, on a port those pods name
    pods = [(pod_spec(r), r["spec"]["template"]["metadata"]["labels"]) for r in resources if pod_spec(r)]
    for service in services.values():
        selected = [spec for spec, labels in pods if service["spec"]["selector"].items() <= labels.items()]
        assert selected, service["metadata"]["name"]
        names = {p["name"] for spec in selected for c in spec["containers"] for p in c.get("ports", [])}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= names
    # the autoscaler owns the API's replica count; the disruption budget keeps one
    api = workload(resources, "Deployment", "reverie-api")
    assert "replicas" not in api["spec"]
    hpa = workload(resources, "HorizontalPodAutoscaler", "reverie-api")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "reverie-api"}
    pdb = workload(resources, "PodDisruptionBudget", "reverie-api")["spec"]
    assert pdb["selector"]["matchLabels"] == api["spec"]["selector"]["matchLabels"]


def test_the_example_secret_holds_placeholders_only_and_stays_out_of_the_tree():
    values = secret_example()
    assert set(values) == {"POSTGRES_PASSWORD", "REVERIE_DATABASE_URL", "REVERIE_API_KEYS", "REVERIE_ADMIN_KEY",
                           "REVERIE_VLLM_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}  # fmt: skip
    for name, value in values.items():
        assert "CHANGE-ME" in value, f"{name}: a placeholder, not a value"
        # nothing that looks like a real key: AWS key ids, long random tokens
        assert not re.search(r"AKIA[0-9A-Z]{16}|[A-Za-z0-9_+/=-]{24,}", value.replace("CHANGE-ME", "")), name
    # the URL reaches the in-cluster Postgres with its password; the placeholder keys parse as REVERIE_API_KEYS
    match = re.fullmatch(r"postgresql://reverie:([^@]+)@([\w-]+):5432/reverie", values["REVERIE_DATABASE_URL"])
    assert match and match.group(1) == values["POSTGRES_PASSWORD"] and match.group(2) == "reverie-postgres"
    keys = Settings(_env_file=None, api_keys=values["REVERIE_API_KEYS"]).key_namespaces
    assert set(keys.values()) == {"alice", "bob"}
    # the placeholder admin key is too short to start a server with
    assert Settings(_env_file=None, admin_key=values["REVERIE_ADMIN_KEY"]).admin_key_problem()
    for name in TREES:
        assert not [r for r in render(name) if r["kind"] == "Secret"], "apply -k would overwrite the real Secret"
