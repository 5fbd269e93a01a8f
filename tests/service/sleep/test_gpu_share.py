"""One GPU for serving and training, without a GPU.

The worker checks before each night on a GPU that the trainer fits in the memory vLLM left free, and
fails the run at once when it does not; its estimate is the arithmetic of docs/deploy.md ("One GPU: serve
while training"), and its activation term is measured again here against what autograd really keeps.
Cards too small to share: the worker puts vLLM to sleep around training and always wakes it, on success
and on failure; vLLM's sleep mode needs a GPU, so a small loopback server answers `/sleep` and `/wake_up`
here and records the order of calls against the training itself."""

from __future__ import annotations

import re

import pytest
import torch
import yaml
from fastapi import FastAPI

from service.config import Settings
from service.sleep.gpu_share import (
    GiB, TrainerDoesNotFitError, TrainerFit, VLLMSleeper, activation_bytes, gpu_night, trainer_need,
)
from service.sleep.job import SleepOutcome
from service.sleep.worker import Worker, build_worker
from service.store import episodes as episode_store
from service.store import runs as run_store
from service.store.db import make_engine, make_sessionmaker, upgrade
from tests.adapters import make_lora
from tests.factories import completed, make_record
from tests.servers import REPO, server_in_thread
from trainer.config import SleepConfig

pytestmark = [pytest.mark.model]

# Llama-3.1-8B and -70B as their config.json describe them (bf16, untied embeddings, GQA with 8 KV heads)
LLAMA_8B = {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "vocab_size": 128256,
            "num_attention_heads": 32, "num_key_value_heads": 8, "tie_word_embeddings": False}
LLAMA_70B = {**LLAMA_8B, "hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80, "num_attention_heads": 64}
CARD_80GB, CARD_141GB = 79.6 * GiB, 139.8 * GiB  # what an H100 80GB and an H200 report


def gpu_default(**overrides) -> SleepConfig:
    return SleepConfig.from_yaml("gpu-default", **overrides)


def saved_bytes_per_token(layers: int, hidden: int, intermediate: int) -> float:
    """What autograd keeps for a training forward of a bf16 Llama with the trainer's fp32 LoRA experts."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=1, vocab_size=64, attn_implementation="sdpa")
    torch.manual_seed(0)
    model = get_peft_model(LlamaForCausalLM(config).to(torch.bfloat16), LoraConfig(r=4, target_modules=[
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])).train()
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            kept[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(input_ids=torch.randint(0, 64, (2, 64)), logits_to_keep=1)
    return sum(kept.values()) / 128


@pytest.mark.parametrize("hidden,intermediate", [(256, 896), (512, 1792)])
def test_the_activation_term_is_what_autograd_keeps(hidden, intermediate):
    per_layer = saved_bytes_per_token(3, hidden, intermediate) - saved_bytes_per_token(2, hidden, intermediate)
    assert per_layer == pytest.approx(activation_bytes(hidden, intermediate), rel=0.03)


def test_the_estimate_is_the_docs_arithmetic_and_the_compose_share_leaves_room_for_it():
    need = trainer_need(LLAMA_8B, gpu_default())
    assert need.weights / GiB == pytest.approx(14.96, abs=0.01)  # 8.03 B parameters in bf16
    assert need.describe() == "47.9 GiB (weights 15.0, adapters 1.7, activations 27.0, logits 2.2, overhead 2.0)"
    smaller = trainer_need(LLAMA_8B, gpu_default(batch_size=8))
    assert f"{smaller.total / GiB:.1f}" == "37.8"
    big = trainer_need(LLAMA_70B, gpu_default())
    assert big.weights / GiB == pytest.approx(131.4, abs=0.1) and f"{big.total / GiB:.0f}" == "279"
    assert big.total > CARD_141GB  # a 70B model's night alone does not fit one H200, let alone beside vLLM
    doc = (REPO / "docs" / "deploy.md").read_text()
    assert "47.9 GiB" in doc and "37.8 GiB" in doc and "279 GiB" in doc
    # the one-GPU compose's vLLM share leaves the 8B night its room on an 80 GB card; vLLM's share holds
    # the weights, four rank-128 LoRA slots (2.5 GiB) and a KV cache
    command = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["vllm"]["command"]
    share = float(re.search(r"--gpu-memory-utilization=\$\{\w+:-([\d.]+)\}", " ".join(command)).group(1))
    assert need.total <= (1 - share) * CARD_80GB
    assert share * CARD_80GB - need.weights - 2.5 * GiB >= 6 * GiB


def make_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    sessions = make_sessionmaker(make_engine(url))
    with sessions.begin() as session:
        episode_store.upsert_episodes(session=session, records=[completed(make_record())])
    with sessions() as session:
        run_store.enqueue_run(session=session, namespace="default", trigger="manual")
    return sessions


def sleep_endpoints(calls: list[str]) -> FastAPI:
    app = FastAPI()

    @app.post("/sleep")
    def sleep(level: int = 1):
        calls.append(f"sleep(level={level})")
        return {}

    @app.post("/wake_up")
    def wake_up():
        calls.append("wake_up")
        return {}

    @app.get("/readyz")
    def ready():
        return {}

    return app


@pytest.mark.parametrize("free_gib", [70, 1])
@pytest.mark.parametrize("sleep_mode", [False, True])
def test_a_night_checks_the_free_gpu_memory_first(tmp_path, tiny_model_dir, free_gib, sleep_mode):
    """gpu-default trains on cuda: with too little free memory the run fails before anything is trained,
    saying what it needs, what is free and what to change; vLLM, if put to sleep, is woken either way."""
    calls: list[str] = []
    candidate = make_lora(tiny_model_dir, tmp_path / "candidate", seed=5)
    sessions = make_store(tmp_path)

    def mem_get_info(device):
        calls.append(f"mem_get_info({device})")
        return free_gib * GiB, 80 * GiB

    def consolidate(job, progress):
        calls.append("train")
        return SleepOutcome(adapter_dir=candidate, accepted=True, rank=4)

    fit = TrainerFit(lambda: tiny_model_dir, "gpu-default", mem_get_info=mem_get_info)
    with server_in_thread(sleep_endpoints(calls)) as vllm_url:
        sleeper = VLLMSleeper(vllm_url) if sleep_mode else None
        worker = Worker(session_factory=sessions, consolidator=consolidate, base_model=lambda: tiny_model_dir,
                        adapters_dir=tmp_path / "adapters", around_training=lambda: gpu_night(fit, sleeper))
        run = worker.run_once()
    night = ["mem_get_info(cuda)"] + (["train"] if free_gib == 70 else [])
    assert calls == (["sleep(level=1)", *night, "wake_up"] if sleep_mode else night)
    if free_gib == 70:
        assert run.state == "published"
    else:
        assert run.state == "failed"
        assert "TrainerDoesNotFitError: the night needs about" in run.error
        assert "cuda has 1.0 GiB free of 80.0" in run.error and "VLLM_GPU_MEMORY_UTILIZATION" in run.error
        assert "deploy/compose.gpu-sleep.yml" in run.error


def test_the_setting_replaces_the_estimate_or_turns_the_check_off(tiny_model_dir):
    asked: list[str] = []

    def mem_get_info(device):
        asked.append(str(device))
        return 4 * GiB, 80 * GiB

    TrainerFit(lambda: tiny_model_dir, "gpu-default", need_gib=3.5, mem_get_info=mem_get_info).check()
    with pytest.raises(TrainerDoesNotFitError, match=r"about 5 GiB \(REVERIE_TRAIN_GPU_MEMORY_GIB\)"):
        TrainerFit(lambda: tiny_model_dir, "gpu-default", need_gib=5, mem_get_info=mem_get_info).check()
    TrainerFit(lambda: tiny_model_dir, "gpu-default", need_gib=0, mem_get_info=mem_get_info).check()
    TrainerFit(lambda: tiny_model_dir, "cpu-default", need_gib=500, mem_get_info=mem_get_info).check()  # no GPU
    assert asked == ["cuda", "cuda"]


def test_the_worker_of_the_settings_checks_with_torch(tmp_path, tiny_model_dir, monkeypatch):
    """`reverie worker` and the embedded worker: the check reads torch.cuda.mem_get_info (no GPU here)."""
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (4 * GiB, 80 * GiB))
    sessions = make_store(tmp_path)
    for need_gib, fits in ((None, True), (3, True), (5, False)):  # the tiny model's estimate: 2.9 GiB
        settings = Settings(_env_file=None, data_dir=tmp_path, model=str(tiny_model_dir), sleep_config="gpu-default",
                            train_gpu_memory_gib=need_gib)
        night = build_worker(settings, sessions).around_training()
        if fits:
            with night:
                pass
        else:
            with pytest.raises(TrainerDoesNotFitError, match="cuda has 4.0 GiB free of 80.0"), night:
                pass
