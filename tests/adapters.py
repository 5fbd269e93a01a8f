"""Hand-made LoRA adapters for tests: real PEFT folders that really change the model's output."""

from __future__ import annotations

from pathlib import Path

import torch


def make_lora(base_dir: Path, target: Path, seed: int, rank: int = 4, scale: float = 0.5) -> Path:
    """A LoRA on `base_dir` with random (nonzero) B, saved with `save_pretrained`."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, scale)
    peft_model.save_pretrained(target)
    return target
