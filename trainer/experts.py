"""Growth bookkeeping: LoRA experts grown with B = 0, concatenated on the rank axis, merged by SVD.

The served adapter is one standard PEFT LoRA folder. Its factors are the experts concatenated along
the rank axis with each expert's scaling folded into B (`lora_alpha == r`, scaling 1), so
`B_cat @ A_cat = sum_i s_i * B_i @ A_i` exactly. `reverie_experts.json` beside it records the rank
slices (which night grew which expert); peft and vLLM ignore it.

While training, the model holds up to three adapters: `previous` (the served stack, frozen; also the
teacher), optionally `memory` (`previous` merged down to fit the rank budget, frozen) and `expert`
(tonight's, the only trainable one).

Grown-weights mode instead adds decoder layers whose output projections start at zero (the function is
unchanged) and trains only them; the result is a new base folder. The teachers are the model before
growth: `adapters()` skips tonight's layers, as it turns tonight's expert off in LoRA mode.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from safetensors.torch import save_file

from trainer.config import VLLM_LORA_RANKS

EXPERTS_FILE = "reverie_experts.json"
LAYERS_FILE = "reverie_layers.json"  # in a grown base folder: which night grew which layers
GROWN = "reverie_grown_layers"  # model attribute: indices of tonight's grown layers (the student's own)
PREVIOUS, MEMORY, EXPERT = "previous", "memory", "expert"

# {module path inside the peft model: (A (r, in), B (out, r))}, scaling already folded into B.
Factors = dict[str, tuple[torch.Tensor, torch.Tensor]]


@dataclass
class MergeReport:
    """What an SVD merge cost: Frobenius error of the summed delta, absolute and relative, worst module."""

    rank_before: int
    rank_after: int
    max_error: float
    max_relative_error: float


def allowed_max_lora_rank(rank: int) -> int:
    """The smallest vLLM `--max-lora-rank` value that serves an adapter of this rank."""
    for allowed in VLLM_LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise ValueError(f"rank {rank} is above vLLM's largest --max-lora-rank {VLLM_LORA_RANKS[-1]}.")


def read_experts(adapter_dir: str | Path) -> list[dict]:
    """The expert slices of an adapter folder (one entry per expert: name, rank)."""
    adapter_dir = Path(adapter_dir)
    path = adapter_dir / EXPERTS_FILE
    if path.is_file():
        return json.loads(path.read_text())["experts"]
    rank = json.loads((adapter_dir / "adapter_config.json").read_text())["r"]
    return [{"name": "imported", "rank": rank}]


def lora_modules(model: torch.nn.Module) -> Iterator[tuple[str, LoraLayer]]:
    for name, module in model.named_modules():
        if isinstance(module, LoraLayer):
            yield name, module


def grow_expert(
    model: torch.nn.Module,
    *,
    rank: int,
    alpha: float,
    target_modules: Sequence[str],
    frozen: Sequence[str] = (),
    seed: int = 0,
    name: str = EXPERT,
) -> PeftModel:
    """Add the trainable adapter `name` (A random, B = 0: the function is unchanged to the bit).

    `model` is a plain transformers model or a PeftModel whose adapters named in `frozen` stay active
    and frozen. Returns the PeftModel with `frozen + [name]` active and only `name` trainable.
    """
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=list(target_modules))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(model, PeftModel):
            model.add_adapter(name, config)
        else:
            model = get_peft_model(model, config, adapter_name=name)
    set_active(model, [*frozen, name], trainable=name)
    return model


def set_active(model: PeftModel, names: Sequence[str], trainable: str | None = EXPERT) -> None:
    """Make `names` the active adapters (their sum is applied); only `trainable` gets gradients."""
    model.base_model.set_adapter(list(names))
    for name, param in model.named_parameters():
        param.requires_grad = trainable is not None and f".{trainable}." in name


@contextmanager
def adapters(model: torch.nn.Module, names: Sequence[str] | None) -> Iterator[torch.nn.Module]:
    """Run a block as a teacher: other adapters active (None: the bare base model) and tonight's grown
    layers, if any, skipped (see `grow_student_layers`); restores the student after."""
    with skipping_layers(model, getattr(model, GROWN, ())):
        if not isinstance(model, PeftModel):
            yield model
            return
        before = list(model.base_model.active_adapters)
        try:
            if names is None:
                with model.disable_adapter():
                    yield model
            else:
                set_active(model, names)
                yield model
        finally:
            set_active(model, before)


@torch.no_grad()
def scale_adapter(model: PeftModel, adapter: str, factor: float) -> None:
    """Multiply one adapter's update `B @ A` by `factor` (its B factors, so a save keeps it)."""
    for _, module in lora_modules(model):
        if adapter in module.lora_B:
            module.lora_B[adapter].weight.mul_(factor)


def adapter_factors(model: PeftModel, adapter: str) -> Factors:
    """Copy one adapter's factors out of a peft model, scaling folded into B, as float32 on CPU."""
    factors: Factors = {}
    for name, module in lora_modules(model):
        if adapter in module.lora_A:
            a = module.lora_A[adapter].weight.detach().float().cpu()
            b = module.lora_B[adapter].weight.detach().float().cpu() * module.scaling[adapter]
            factors[name] = (a.clone(), b.clone())
    return factors


def concatenate(stack: Sequence[Factors]) -> Factors:
    """Experts side by side on the rank axis: `B_cat @ A_cat` is exactly the sum of `B_i @ A_i`. An
    expert that does not adapt a module (experts grown before `target_modules` changed) takes zero factors
    of its rank there, so every module of the folder has the one rank that a PEFT config can state."""
    keys = list(dict.fromkeys(k for factors in stack for k in factors))
    ranks = [factors_rank(factors) if factors else 0 for factors in stack]
    out: Factors = {}
    for key in keys:
        a_like, b_like = next(factors[key] for factors in stack if key in factors)
        parts = [factors.get(key) or (a_like.new_zeros(rank, a_like.shape[1]),
                                      b_like.new_zeros(b_like.shape[0], rank))
                 for factors, rank in zip(stack, ranks)]
        out[key] = (torch.cat([a for a, _ in parts], 0), torch.cat([b for _, b in parts], 1))
    return out


def adapted_modules(factors: Factors) -> list[str]:
    """The module names (`q_proj`, ...) that factors adapt, as a PEFT config's `target_modules`."""
    return sorted({key.rsplit(".", 1)[-1] for key in factors})


def factors_rank(factors: Factors) -> int:
    """The rank of an expert's factors (every module has the same)."""
    return next(iter(factors.values()))[0].shape[0]


def delta(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The weight update of one LoRA module: (out, in)."""
    return b.double() @ a.double()


def svd_truncate(a: torch.Tensor, b: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Best rank-`rank` factors of `B @ A` (Eckart-Young) without forming it: QR of both factors.

    Args:
        a: (r, in), b: (out, r).
    Returns:
        (A_k (k, in), B_k (out, k), Frobenius error ||BA - B_k A_k||), k = min(rank, r).
    """
    qb, rb = torch.linalg.qr(b.double())  # (out, r), (r, r)
    qa, ra = torch.linalg.qr(a.double().T)  # (in, r), (r, r)
    u, s, vh = torch.linalg.svd(rb @ ra.T)
    k = min(rank, s.numel())
    root = s[:k].sqrt()
    new_b = (qb @ u[:, :k]) * root
    new_a = root[:, None] * (vh[:k] @ qa.T)
    error = float(s[k:].square().sum().sqrt())
    return new_a.to(a.dtype), new_b.to(b.dtype), error


def merge(factors: Factors, rank: int) -> tuple[Factors, MergeReport]:
    """Merge a stack (already concatenated) into one expert of at most `rank` by SVD truncation."""
    merged: Factors = {}
    worst, worst_relative, rank_before = 0.0, 0.0, 0
    for key, (a, b) in factors.items():
        rank_before = max(rank_before, a.shape[0])
        new_a, new_b, error = svd_truncate(a, b, rank)
        norm = float(delta(a, b).norm())
        worst = max(worst, error)
        worst_relative = max(worst_relative, error / norm if norm > 0 else 0.0)
        merged[key] = (new_a, new_b)
    return merged, MergeReport(rank_before, rank, worst, worst_relative)


def load_factors(model: PeftModel, adapter: str, factors: Factors) -> None:
    """Add an adapter holding given factors (scaling 1) on the modules they adapt to a peft model."""
    rank = factors_rank(factors)
    model.add_adapter(adapter, LoraConfig(r=rank, lora_alpha=rank, lora_dropout=0.0,
                                          target_modules=adapted_modules(factors)))
    modules = dict(lora_modules(model))
    with torch.no_grad():
        for key, (a, b) in factors.items():
            layer = modules[key]
            layer.lora_A[adapter].weight.copy_(a)
            layer.lora_B[adapter].weight.copy_(b)


def save_adapter(
    out_dir: str | Path,
    factors: Factors,
    experts: list[dict],
    *,
    base_model_name_or_path: str,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write a standard PEFT LoRA folder (adapter_config.json + adapter_model.safetensors) atomically.

    The keys are peft's (`base_model.model.<module>.lora_A.weight`); `lora_alpha == r` so the
    scaling is 1 and the factors are the summed experts as given; `target_modules` are the modules the
    factors adapt.
    """
    out_dir = Path(out_dir)
    rank = factors_rank(factors)
    if sum(e["rank"] for e in experts) != rank:
        raise ValueError(f"the experts' ranks sum to {sum(e['rank'] for e in experts)}, the factors have {rank}.")
    config = LoraConfig(
        r=rank,
        lora_alpha=rank,
        lora_dropout=0.0,
        target_modules=adapted_modules(factors),
        base_model_name_or_path=str(base_model_name_or_path),
        task_type="CAUSAL_LM",
    )
    tensors = {}
    for key, (a, b) in factors.items():
        tensors[f"{key}.lora_A.weight"] = a.to(dtype).contiguous()
        tensors[f"{key}.lora_B.weight"] = b.to(dtype).contiguous()
    with _replacing(out_dir) as tmp:
        config.save_pretrained(tmp)
        save_file(tensors, tmp / "adapter_model.safetensors", metadata={"format": "pt"})
        (tmp / EXPERTS_FILE).write_text(json.dumps({"rank": rank, "experts": experts}, indent=2))
    return out_dir


@contextmanager
def _replacing(out_dir: Path) -> Iterator[Path]:
    """Yield an empty sibling folder to write; it then replaces `out_dir` in one rename (a reader never
    sees a half-written folder)."""
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    yield tmp
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)


def adapter_rank(adapter_dir: str | Path) -> int:
    return int(json.loads((Path(adapter_dir) / "adapter_config.json").read_text())["r"])


# --- grown-weights mode ------------------------------------------------------------------------


def grow_layers(model: torch.nn.Module, count: int = 1) -> list[int]:
    """Add `count` decoder layers (LLaMA-Pro block expansion): each is a copy of the layer below it with
    its attention output and MLP down projections zeroed, so it adds nothing to the residual stream and
    the function is preserved. Returns the indices of the new layers (spread evenly).
    """
    import copy

    layers = model.model.layers
    n = len(layers)
    if count < 1 or count > n:
        raise ValueError(f"can grow 1..{n} layers, not {count}.")
    after = [round((i + 1) * n / count) - 1 for i in range(count)]
    new_layers, new_indices = [], []
    for i, layer in enumerate(layers):
        new_layers.append(layer)
        if i in after:
            grown = copy.deepcopy(layer)
            with torch.no_grad():
                grown.self_attn.o_proj.weight.zero_()
                grown.mlp.down_proj.weight.zero_()
                for proj in (grown.self_attn.o_proj, grown.mlp.down_proj):
                    if getattr(proj, "bias", None) is not None:
                        proj.bias.zero_()
            new_indices.append(len(new_layers))
            new_layers.append(grown)
    model.model.layers = torch.nn.ModuleList(new_layers)
    for index, layer in enumerate(model.model.layers):
        layer.self_attn.layer_idx = index
    model.config.num_hidden_layers = len(new_layers)
    if getattr(model.config, "layer_types", None):
        types = list(model.config.layer_types)
        for index in new_indices:
            types.insert(index, types[index - 1])
        model.config.layer_types = types
    return new_indices


def grow_student_layers(model: torch.nn.Module, count: int = 1) -> list[int]:
    """Tonight's student in grown-weights mode: `grow_layers`, then only the new layers train, and every
    teacher view (`adapters`) skips them, so the teachers are the model before growth. Returns the indices."""
    new = grow_layers(model, count)
    for param in model.parameters():
        param.requires_grad = False
    for index in new:
        for param in model.model.layers[index].parameters():
            param.requires_grad = True
    setattr(model, GROWN, tuple(new))
    return new


@contextmanager
def skipping_layers(model: torch.nn.Module, indices: Sequence[int]) -> Iterator[torch.nn.Module]:
    """Run a block with these decoder layers bypassed: the residual stream passes them unchanged.

    The other layers keep their `layer_idx` (their KV-cache slots, sized by `num_hidden_layers`), so
    the block computes exactly the model as it was before the skipped layers were grown.
    """
    if not indices:
        yield model
        return
    owner = (model.get_base_model() if isinstance(model, PeftModel) else model).model
    full, skip = owner.layers, set(indices)
    owner.layers = torch.nn.ModuleList([layer for i, layer in enumerate(full) if i not in skip])
    try:
        yield model
    finally:
        owner.layers = full


def read_growth(model_dir: str | Path) -> list[dict]:
    """The growth record of a base folder (one entry per night that grew layers; empty for a plain base)."""
    path = Path(model_dir) / LAYERS_FILE
    return json.loads(path.read_text())["growth"] if path.is_file() else []


def save_model(out_dir: str | Path, model: torch.nn.Module, tokenizer, growth: list[dict]) -> Path:
    """Write a plain transformers folder (config, safetensors weights, tokenizer) atomically, with the
    growth record `reverie_layers.json` beside it; `AutoModelForCausalLM.from_pretrained` loads it."""
    out_dir = Path(out_dir)
    with _replacing(out_dir) as tmp:
        model.save_pretrained(tmp)  # safetensors
        tokenizer.save_pretrained(tmp)
        (tmp / LAYERS_FILE).write_text(json.dumps({"layers": model.config.num_hidden_layers, "growth": growth},
                                                  indent=2))
    return out_dir
