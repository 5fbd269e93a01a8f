"""One GPU for serving and training.

The default shares it: vLLM keeps serving within its `--gpu-memory-utilization` share and the night
trains beside it in what is left. `TrainerFit` checks at the start of each night on a GPU that the
trainer will fit there, and fails the run at once, with the numbers, when it will not (rather than
running out of memory an hour in). Cards too small to share: `VLLMSleeper` puts vLLM to sleep (weights
offloaded, KV cache freed) while the worker trains and wakes it afterwards, whatever happened in between;
vLLM must run with `--enable-sleep-mode` (and, for these endpoints, `VLLM_SERVER_DEV_MODE=1`).

The estimate and its assumptions: docs/deploy.md, "One GPU: serve while training".
"""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import httpx

log = logging.getLogger(__name__)

GiB = 1 << 30
# A trained row: the closed-book question and its answer (the episode is in the teacher's context only,
# under no_grad), padded to the longest row of its batch.
ROW_TOKENS = 128
# CUDA context, cuBLAS workspace and the caching allocator's slack.
OVERHEAD = 2 * GiB
# fp32 (rows, answer, vocab) tensors the GKD loss holds at once: student and teacher logits, their
# log-softmaxes, the mixture and its log.
LOGIT_COPIES = 6


def activation_bytes(hidden: int, intermediate: int) -> int:
    """Bytes autograd keeps per trained token and decoder layer of a Llama-shaped model with a bf16 base
    and PEFT's fp32 LoRA on all seven projections: each adapted projection's input in fp32, the gated
    MLP's three bf16 intermediates, the norms' fp32 inputs, attention's q, k, v and output. Measured with
    `torch.autograd.graph.saved_tensors_hooks` on transformers 5.25 and peft 0.21 (an 8B-shaped layer:
    295,496 bytes; this formula: 294,912); tests/service/sleep/test_gpu_share.py measures it again."""
    return 10 * intermediate + 37 * hidden


@dataclass(frozen=True)
class TrainerNeed:
    """Peak GPU memory of one night, in bytes, by part."""

    weights: int  # the trainer's own copy of the base model, in the trainer's dtype
    adapters: int  # the served stack and tonight's expert in fp32, the expert's gradients and AdamW moments
    activations: int  # a training step's saved activations, or dreaming's KV cache if that is larger
    logits: int
    overhead: int = OVERHEAD

    @property
    def total(self) -> int:
        return self.weights + self.adapters + self.activations + self.logits + self.overhead

    def describe(self) -> str:
        parts = ", ".join(f"{name} {getattr(self, name) / GiB:.1f}"
                          for name in ("weights", "adapters", "activations", "logits", "overhead"))
        return f"{self.total / GiB:.1f} GiB ({parts})"


def trainer_need(model: dict, config) -> TrainerNeed:
    """The night's peak for a Llama-shaped model (its `config.json` as a dict) under a trainer config.

    KeyError when the model config lacks the sizes this needs."""
    h, i, layers, vocab = (model[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "vocab_size"))
    heads = model["num_attention_heads"]
    head_dim = model.get("head_dim") or h // heads
    q, kv = heads * head_dim, (model.get("num_key_value_heads") or heads) * head_dim
    element = config.resolved_dtype().itemsize
    embeddings = vocab * h * (1 if model.get("tie_word_embeddings") else 2)
    params = layers * (2 * h * q + 2 * h * kv + 3 * h * i + 2 * h) + embeddings + h
    # a LoRA of rank r adds r x (d_in + d_out) parameters to each adapted projection
    sides = {"q_proj": h + q, "k_proj": h + kv, "v_proj": h + kv, "o_proj": q + h,
             "gate_proj": h + i, "up_proj": h + i, "down_proj": i + h}
    per_rank = layers * sum(sides.get(name, 0) for name in config.target_modules)
    # rows in one step's graph: the GKD batch, the imitation samples, the binding pairs' two answers
    rows = config.batch_size + (config.imitation_group if config.alpha > 0 and config.imitation_every else 0)
    rows += 2 * config.binding_pairs if config.binding_weight > 0 else 0
    training = rows * ROW_TOKENS * layers * activation_bytes(h, i)
    # dreaming's KV cache: a generation batch of episodes in context, then the answers
    dream_tokens = config.generation_batch_size * (config.max_seq_len + config.dream_max_new_tokens)
    dreaming = dream_tokens * 2 * layers * kv * element
    return TrainerNeed(
        weights=params * element,
        adapters=per_rank * (4 * config.max_lora_rank + 12 * config.expert_rank),
        activations=max(training, dreaming),
        logits=config.batch_size * (config.dream_max_new_tokens + 1) * vocab * 4 * LOGIT_COPIES,
    )


class TrainerDoesNotFitError(RuntimeError):
    """The night would not fit in the GPU memory left free; raised before anything is loaded."""


class TrainerFit:
    """Checks, before each night on a GPU, that the trainer fits in the memory left free there.

    `need_gib`: what the night needs (REVERIE_TRAIN_GPU_MEMORY_GIB); None: `trainer_need`'s estimate;
    0: no check. `mem_get_info(device) -> (free, total)` is torch.cuda's unless given."""

    def __init__(self, model_dir: Callable[[], Path], sleep_config: str, need_gib: float | None = None,
                 mem_get_info: Callable | None = None):
        self.model_dir = model_dir
        self.sleep_config = sleep_config
        self.need_gib = need_gib
        self.mem_get_info = mem_get_info

    def estimate(self, config) -> TrainerNeed | None:
        try:
            return trainer_need(json.loads((self.model_dir() / "config.json").read_text()), config)
        except (OSError, KeyError, TypeError, ValueError) as exc:
            log.warning("cannot estimate the trainer's GPU memory (%s: %s); set REVERIE_TRAIN_GPU_MEMORY_GIB "
                        "to have it checked", type(exc).__name__, exc)
            return None

    def check(self) -> None:
        """TrainerDoesNotFitError when the night needs more than the GPU has free; nothing on a CPU."""
        from trainer.config import SleepConfig

        config = SleepConfig.from_yaml(self.sleep_config)
        device = config.resolved_device()
        if not device.startswith("cuda") or self.need_gib == 0:
            return
        if self.need_gib is not None:
            needed, described = int(self.need_gib * GiB), f"{self.need_gib:g} GiB (REVERIE_TRAIN_GPU_MEMORY_GIB)"
        elif (estimate := self.estimate(config)) is not None:
            needed, described = estimate.total, estimate.describe()
        else:
            return
        import torch

        free, total = (self.mem_get_info or torch.cuda.mem_get_info)(torch.device(device))
        if free < needed:
            raise TrainerDoesNotFitError(
                f"the night needs about {described} of GPU memory and {device} has {free / GiB:.1f} GiB free of "
                f"{total / GiB:.1f}: lower vLLM's --gpu-memory-utilization (VLLM_GPU_MEMORY_UTILIZATION) or the "
                "trainer's batch_size, train on another GPU (deploy/compose.gpu-split.yml), or let vLLM sleep "
                "while the worker trains (deploy/compose.gpu-sleep.yml); REVERIE_TRAIN_GPU_MEMORY_GIB replaces "
                "the estimate (0: no check). See docs/deploy.md, 'One GPU: serve while training'."
            )
        log.info("the night needs about %s; %s has %.1f GiB free", described, device, free / GiB)


def release_cuda_cache() -> None:
    """Hand the night's cached GPU memory back to the driver (vLLM needs it to wake up)."""
    import sys

    torch = sys.modules.get("torch")  # never import torch only to find nothing to release
    if torch is not None and torch.cuda.is_available():
        gc.collect()
        torch.cuda.empty_cache()


class VLLMSleeper:
    def __init__(self, base_url: str, *, api_key: str | None = None, level: int = 1, timeout_s: float = 300):
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.level = level
        self.timeout_s = timeout_s

    def _post(self, path: str, **params) -> None:
        response = httpx.post(f"{self.base_url}{path}", params=params, headers=self.headers, timeout=self.timeout_s)
        response.raise_for_status()

    @contextmanager
    def asleep(self) -> Iterator[None]:
        """Serving pauses for the duration of the block (requests wait in vLLM or get 503)."""
        self._post("/sleep", level=self.level)
        log.info("vLLM is asleep for training (level %d)", self.level)
        try:
            yield
        finally:
            release_cuda_cache()
            self._post("/wake_up")
            log.info("vLLM is awake")


@contextmanager
def gpu_night(fit: TrainerFit | None, sleeper: VLLMSleeper | None) -> Iterator[None]:
    """Around one night's training: vLLM asleep if configured, then the fit check, then the night."""
    with sleeper.asleep() if sleeper is not None else nullcontext():
        if fit is not None:
            fit.check()
        yield
