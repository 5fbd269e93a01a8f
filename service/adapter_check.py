"""The one adapter validator: refuse an adapter folder before it is published or served.

Wrong kind (not LoRA, trained biases, an invalid LoRA config), wrong base, rank out of range, missing,
unreadable or non-finite weights, shapes above the rank or not fitting the base model. The sleep
worker checks a candidate against the base model's folder before publishing it; an engine checks a
folder before loading it, and `check_fits_model` against the very layers it will adapt. Every refusal
is an `AdapterError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.errors import AdapterError

_WIDTH_CHECKED = ("q_proj", "o_proj", "up_proj", "gate_proj")  # lora_A of these reads the hidden state


@dataclass
class CheckedAdapter:
    config: dict
    weights: dict[str, Any]  # tensor name -> torch.Tensor


def _same_base(declared: str | None, served: Path) -> bool:
    if not declared:
        return False
    declared_path = Path(declared).expanduser()
    if declared_path.exists() and served.exists():
        return declared_path.resolve() == served.resolve()
    return declared.rstrip("/").split("/")[-1] == str(served).rstrip("/").split("/")[-1]


def _read_config(folder: Path) -> dict:
    from peft import LoraConfig

    config_path = folder / "adapter_config.json"
    if not config_path.is_file():
        raise AdapterError(f"{folder} has no adapter_config.json; is it a PEFT adapter folder?")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise AdapterError(f"{config_path} is not valid JSON: {exc}") from exc
    if config.get("peft_type") != "LORA":
        raise AdapterError(f"{folder} holds a {config.get('peft_type')!r} adapter, not LoRA; only LoRA is served")
    if config.get("bias", "none") != "none":
        # Disabling a LoRA with trained biases does not give the base model back, and namespaces
        # without an adapter must get exactly the base model.
        raise AdapterError(f"{folder} trains biases (bias={config['bias']!r}); serving needs bias='none'")
    try:
        LoraConfig.from_pretrained(str(folder))
    except Exception as exc:
        raise AdapterError(f"{config_path} is not a valid LoRA config: {exc}") from exc
    return config


def _read_weights(folder: Path) -> dict[str, Any]:
    import torch
    from safetensors.torch import load_file

    weights_path = folder / "adapter_model.safetensors"
    legacy_path = folder / "adapter_model.bin"
    try:
        if weights_path.is_file():
            weights = load_file(str(weights_path))
        elif legacy_path.is_file():
            weights = torch.load(legacy_path, map_location="cpu", weights_only=True)
        else:
            raise AdapterError(f"{folder} has no adapter_model.safetensors")
    except AdapterError:
        raise
    except Exception as exc:  # safetensors and torch raise their own error types for every kind of damage
        raise AdapterError(f"the weights in {folder} cannot be read: {exc}") from exc
    if not weights:
        raise AdapterError(f"the weights in {folder} hold no tensors")
    return weights


def check_adapter(folder: Path, *, base_model: Path | None = None, max_rank: int | None = None) -> CheckedAdapter:
    """Validate a PEFT LoRA folder; returns its config and weights.

    `base_model`: the served base's folder; the adapter must declare it and fit its hidden size.
    `max_rank`: the highest rank the engine serves.
    """
    import torch

    folder = Path(folder)
    config = _read_config(folder)
    if base_model is not None and not _same_base(config.get("base_model_name_or_path"), Path(base_model)):
        raise AdapterError(
            f"{folder} was trained on {config.get('base_model_name_or_path')!r}, not the served base {str(base_model)!r}"
        )
    rank = int(config.get("r", 0))
    if rank <= 0 or (max_rank is not None and rank > max_rank):
        raise AdapterError(f"{folder} has rank {rank}; the engine serves ranks from 1 up to {max_rank or 'its limit'}")
    weights = _read_weights(folder)
    for name, tensor in weights.items():
        if not torch.isfinite(tensor).all():
            raise AdapterError(f"{name} in {folder} has NaN or infinite values")
        if "lora_A" in name and tensor.shape[0] > rank or "lora_B" in name and tensor.shape[-1] > rank:
            raise AdapterError(f"{name} in {folder} has shape {tuple(tensor.shape)}, above rank {rank}")
    base_config_path = Path(base_model) / "config.json" if base_model is not None else None
    hidden = json.loads(base_config_path.read_text()).get("hidden_size") if base_config_path and base_config_path.is_file() else None
    if hidden:
        for name, tensor in weights.items():
            if "lora_A" in name and any(part in name for part in _WIDTH_CHECKED) and tensor.shape[-1] != hidden:
                raise AdapterError(
                    f"{name} expects inputs of width {tensor.shape[-1]}; the base model's hidden size is {hidden}"
                )
    return CheckedAdapter(config=config, weights=weights)


def check_fits_model(folder: Path, weights: dict[str, Any], model: Any) -> None:
    """Every LoRA matrix must target an existing linear layer of the loaded `model` with matching sizes."""
    import torch

    layers = dict(model.named_modules())
    seen = 0
    for key, tensor in weights.items():
        for part, dim in ((".lora_A.weight", 1), (".lora_B.weight", 0)):
            if not key.endswith(part):
                continue
            seen += 1
            module_name = key.removeprefix("base_model.model.")[: -len(part)]
            layer = layers.get(module_name)
            # Once wrapped, the original linear layer lives on as `base_layer`.
            layer = getattr(layer, "base_layer", layer)
            if not isinstance(layer, torch.nn.Linear):
                raise AdapterError(f"{folder} adapts {module_name!r}, no linear layer of this base model")
            expected = layer.in_features if dim == 1 else layer.out_features
            if tensor.ndim != 2 or tensor.shape[dim] != expected:
                raise AdapterError(
                    f"{folder} does not fit this base model: {key} has shape {tuple(tensor.shape)}, "
                    f"the layer needs {expected} along dimension {dim}"
                )
    if not seen:
        raise AdapterError(f"{folder} holds no LoRA weights")
