"""Refuse an adapter folder before it is published or served: wrong kind, wrong base, rank over the
engine's limit, missing or non-finite tensors, shapes that do not fit the base model."""

from __future__ import annotations

import json
from pathlib import Path


class AdapterCheckError(ValueError):
    pass


def _same_base(declared: str | None, served: Path) -> bool:
    if not declared:
        return False
    declared_path = Path(declared).expanduser()
    if declared_path.exists() and served.exists():
        return declared_path.resolve() == served.resolve()
    return declared.rstrip("/").split("/")[-1] == str(served).rstrip("/").split("/")[-1]


def check_adapter(folder: Path, *, base_model: Path, max_rank: int) -> dict:
    """Validate a PEFT LoRA folder against the served base; returns its adapter_config."""
    import torch
    from safetensors.torch import load_file

    folder = Path(folder)
    config_path = folder / "adapter_config.json"
    if not config_path.is_file():
        raise AdapterCheckError(f"{folder} has no adapter_config.json")
    try:
        config = json.loads(config_path.read_text())
    except ValueError as exc:
        raise AdapterCheckError(f"{config_path} is not valid JSON: {exc}") from exc
    if config.get("peft_type") != "LORA":
        raise AdapterCheckError(f"{folder} is a {config.get('peft_type')!r} adapter, not LoRA")
    if not _same_base(config.get("base_model_name_or_path"), Path(base_model)):
        raise AdapterCheckError(
            f"{folder} was trained on {config.get('base_model_name_or_path')!r}, not the served base {str(base_model)!r}"
        )
    rank = int(config.get("r", 0))
    if not 0 < rank <= max_rank:
        raise AdapterCheckError(f"{folder} has rank {rank}; the engine serves ranks up to {max_rank}")
    weights_path = folder / "adapter_model.safetensors"
    if not weights_path.is_file():
        raise AdapterCheckError(f"{folder} has no adapter_model.safetensors")
    try:
        tensors = load_file(weights_path)
    except Exception as exc:  # safetensors raises its own error types for every kind of damage
        raise AdapterCheckError(f"{weights_path} cannot be read: {exc}") from exc
    if not tensors:
        raise AdapterCheckError(f"{weights_path} holds no tensors")
    for name, tensor in tensors.items():
        if not torch.isfinite(tensor).all():
            raise AdapterCheckError(f"{name} in {weights_path} has NaN or infinite values")
        if "lora_A" in name and tensor.shape[0] > rank or "lora_B" in name and tensor.shape[-1] > rank:
            raise AdapterCheckError(f"{name} in {weights_path} has shape {tuple(tensor.shape)}, above rank {rank}")
    base_config = json.loads((Path(base_model) / "config.json").read_text()) if (Path(base_model) / "config.json").is_file() else {}
    hidden = base_config.get("hidden_size")
    if hidden:
        for name, tensor in tensors.items():
            if "lora_A" in name and ("q_proj" in name or "o_proj" in name or "up_proj" in name or "gate_proj" in name):
                if tensor.shape[-1] != hidden:
                    raise AdapterCheckError(
                        f"{name} expects inputs of width {tensor.shape[-1]}; the base model's hidden size is {hidden}"
                    )
    return config
