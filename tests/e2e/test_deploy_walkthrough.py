"""docs/deploy.md, "Without Docker", followed step by step on this machine: a fresh Postgres database,
`reverie db upgrade`, a vLLM (CPU) server, `reverie serve --engine vllm` and `reverie worker` as
separate processes; chat, sleep, and the new adapter served by vLLM.

The commands are read from the doc's fenced block and run as written; only what differs on a test
machine is substituted: the database (a fresh one), ports (free loopback ones), the data dir (tmp), the
model (the cached SmolLM2 folder) and the trainer config (a few steps, a gate that lets it through).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from tests import vllm_server
from tests.db import fresh_postgres_database
from tests.servers import REPO, free_port, wait_ready

pytestmark = [pytest.mark.vllm, pytest.mark.db, pytest.mark.slow]

DOC = REPO / "docs" / "deploy.md"
# What the doc exports and the test sets to this machine's values.
SUBSTITUTED = {
    "REVERIE_DATABASE_URL",
    "REVERIE_DATA_DIR",
    "REVERIE_API_KEYS",
    "REVERIE_ADMIN_KEY",
    "REVERIE_VLLM_URL",
    "REVERIE_MODEL",
}
SLEEP_CONFIG = {  # SmolLM2 on a CPU in well under a minute; the gate lets a two-step adapter through
    "device": "cpu", "dtype": "float32", "torch_threads": 2, "seed": 0,
    "steps": 2, "batch_size": 2, "learning_rate": 1.0e-3,
    "entities_per_episode": 1, "template_questions": 2, "cloze_questions": 0, "model_questions": 0,
    "answers_per_question": 1,
    "keep_top_k": 2, "keep_random": 0, "held_out_per_episode": 1,
    "dream_max_new_tokens": 8, "eval_max_new_tokens": 8, "on_policy_max_new_tokens": 8, "question_max_new_tokens": 8,
    "imitation_every": 0, "imitation_group": 2, "lmbda": 0.0, "alpha": 0.0,  # no sampling while training
    "general_prompts": 1, "gate_general_prompts": 1, "max_seq_len": 256,
    "expert_rank": 4, "max_lora_rank": 8, "semantic_model": "self",
    "min_recall": 0.0, "min_recall_gain": -1.0, "min_retention": 0.0, "max_general_drop": 1.0,
}  # fmt: skip


def without_docker_block() -> str:
    section = DOC.read_text().split("## Without Docker", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match, "docs/deploy.md: no ```bash block under 'Without Docker'"
    return match.group(1)


def parse_steps(block: str) -> tuple[set[str], list[dict]]:
    """The block's exported names and its steps: `reverie ...` and the vLLM server, in order."""
    exported: set[str] = set()
    steps: list[dict] = []
    for line in block.replace("\\\n", " ").splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if not line or line.startswith("#"):
            continue
        background = line.endswith("&")
        line = line.rstrip("&").strip()
        if inner := re.search(r"\$\((reverie [^)]*)\)", line):
            steps.append(
                {"kind": "reverie", "argv": shlex.split(inner.group(1))[1:], "env": {}, "background": False}
            )
            exported.update(re.findall(r"export (\w+)=", line))
            continue
        words = shlex.split(line, posix=True)
        if words[0] == "export":
            exported.update(word.split("=", 1)[0] for word in words[1:])
            continue
        env = {}
        while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
            key, _, value = words.pop(0).partition("=")
            env[key] = value
        if words and words[0] == "reverie":
            steps.append({"kind": "reverie", "argv": words[1:], "env": env, "background": background})
        elif "vllm.entrypoints.openai.api_server" in words:
            steps.append({"kind": "vllm", "argv": words, "env": env, "background": background})
    return exported, steps


def flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def reverie(argv: list[str], env: dict, log_path: Path, background: bool):
    command = [sys.executable, "-m", "service.cli", *argv]
    with open(log_path, "ab") as log:
        if background:
            return subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        return subprocess.run(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log, timeout=120, check=True
        )


def test_doc_block_names_the_production_commands():
    exported, steps = parse_steps(without_docker_block())
    kinds = [s["argv"][:2] if s["kind"] == "reverie" else ["vllm"] for s in steps]
    assert kinds == [["model", "prepare"], ["db", "upgrade"], ["vllm"], ["serve", "--engine"], ["worker"]], (
        kinds
    )
    assert SUBSTITUTED <= exported, SUBSTITUTED - exported
    serve = steps[3]
    assert (
        flag(serve["argv"], "--engine") == "vllm" and serve["env"].get("REVERIE_EMBEDDED_WORKER") == "false"
    )
    vllm = steps[2]
    assert vllm["env"].get("VLLM_ALLOW_RUNTIME_LORA_UPDATING") == "True" and "--enable-lora" in vllm["argv"]
    # The test's vLLM server (tests/vllm_server.py) runs with the doc's LoRA arguments, on loopback.
    assert flag(vllm["argv"], "--max-lora-rank") == str(vllm_server.MAX_LORA_RANK)
    assert flag(vllm["argv"], "--max-loras") == "4" and flag(vllm["argv"], "--host") == "127.0.0.1"
    assert all(s["background"] for s in steps[2:]) and not any(s["background"] for s in steps[:2])


def wait_for(predicate, timeout_s: float, what: str, logs: list[Path]):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in logs if p.exists())
    raise TimeoutError(f"{what}\n{tails}")


def test_without_docker_walkthrough(tmp_path, smollm2_dir):
    vllm_server.require_vllm()
    _, steps = parse_steps(without_docker_block())
    prepare, upgrade, _, serve_step, worker_step = steps  # vLLM: VLLMServer
    config = tmp_path / "sleep-smollm2.yaml"
    config.write_text(yaml.safe_dump(SLEEP_CONFIG))
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    admin = {"Authorization": "Bearer walkthrough-admin"}
    logs = [tmp_path / name for name in ("reverie.log", "vllm.log", "serve.log", "worker.log")]
    processes: list[subprocess.Popen] = []

    with fresh_postgres_database() as database_url:
        env = {
            **os.environ,
            "REVERIE_DATABASE_URL": database_url,
            "REVERIE_DATA_DIR": str(tmp_path / "data"),
            "REVERIE_API_KEYS": "sk-alice:alice",
            "REVERIE_ADMIN_KEY": "walkthrough-admin",
            "REVERIE_MODEL": str(smollm2_dir),
            # test-only: loopback port, no night job, a quick adapter sync, the tiny trainer config
            "REVERIE_HOST": "127.0.0.1",
            "REVERIE_PORT": str(port),
            "REVERIE_SCHEDULER": "false",
            "REVERIE_ADAPTER_SYNC_INTERVAL_S": "1",
            "REVERIE_SLEEP_CONFIG": str(config),
            "REVERIE_LOG_FORMAT": "text",
        }
        # 2. the base model (a prepared HF folder is used as it is)
        prepared = reverie(prepare["argv"], {**env, **prepare["env"]}, logs[0], background=False)
        assert prepared.stdout.decode().strip() == str(smollm2_dir)
        # 3. migrations first
        reverie(upgrade["argv"], {**env, **upgrade["env"]}, logs[0], background=False)

        # 4. vLLM (the doc's arguments, see the test above), on a free loopback port
        server = vllm_server.VLLMServer(smollm2_dir, logs[1])
        server.start()
        try:
            env["REVERIE_VLLM_URL"] = server.url
            # 5. the API and 6. the worker, as separate processes
            processes.append(
                reverie(serve_step["argv"], {**env, **serve_step["env"]}, logs[2], background=True)
            )
            wait_ready(base_url, timeout_s=120, process=processes[0])
            processes.append(
                reverie(worker_step["argv"], {**env, **worker_step["env"]}, logs[3], background=True)
            )

            client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="sk-alice", max_retries=0)

            def chat(text: str) -> str:
                reply = client.chat.completions.create(
                    model="reverie", messages=[{"role": "user", "content": text}], max_tokens=8, temperature=0
                )
                return reply.id.removeprefix("chatcmpl-")

            chat("My neighbour Orla Venn keeps three llamas in Tromsø.")
            chat("Orla Venn's oldest llama is called Biscuit.")

            queued = httpx.post(f"{base_url}/sleep", json={"namespace": "alice"}, headers=admin, timeout=10)
            assert queued.status_code == 202, queued.text
            run_id = queued.json()["id"]

            def finished():
                response = httpx.get(f"{base_url}/sleep/{run_id}", headers=admin, timeout=10)
                run = response.json() if response.status_code == 200 else {}
                return run if run.get("state") in ("published", "rejected", "failed", "cancelled") else None

            run = wait_for(finished, 240, "the sleep run did not finish", logs)
            assert run["state"] == "published", run["error"]

            def loaded_v1():
                items = httpx.get(
                    f"{base_url}/admin/api/adapters", params={"namespace": "alice"}, headers=admin, timeout=10
                ).json()["items"]
                return [(a["version"], a["state"], a["loaded"]) for a in items] == [
                    (1, "active", True)
                ] and items

            adapters = wait_for(loaded_v1, 60, "adapter v1 was not loaded by the API", logs)
            assert adapters[0]["name"] == "mem-alice-v1"
            assert Path(adapters[0]["path"]).is_relative_to(tmp_path / "data" / "adapters")
            served = httpx.get(f"{server.url}/v1/models", timeout=10).json()["data"]
            assert "mem-alice-v1" in {m["id"] for m in served}  # vLLM itself serves it

            episode_id = chat("Where does Orla Venn keep her llamas?")
            episode = httpx.get(
                f"{base_url}/admin/api/episodes/{uuid.UUID(episode_id)}", headers=admin, timeout=10
            )
            assert episode.status_code == 200, episode.text
            assert episode.json()["adapter_version"] == 1
            listed = httpx.get(
                f"{base_url}/admin/api/episodes", params={"namespace": "alice"}, headers=admin, timeout=10
            ).json()["items"]
            assert listed[0]["id"] == str(uuid.UUID(episode_id)) and listed[0]["adapter_version"] == 1
        finally:
            for process in reversed(processes):
                if process.poll() is None:
                    process.terminate()
                    try:
                        process.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()
            server.stop()
