"""bench/expert_scale.py scales only the newest expert of a concatenated adapter, and back again."""

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from bench.expert_scale import scale_newest
from trainer.experts import lora_modules

pytestmark = pytest.mark.model


def test_the_newest_experts_columns_are_scaled_from_their_saved_values(tiny_model_dir):
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(0)
    saved = {}
    for name, module in lora_modules(model):  # two experts of rank 4 side by side: columns 0-3 and 4-7
        torch.nn.init.normal_(module.lora_B["default"].weight)
        saved[name] = module.lora_B["default"].weight.detach().clone()
    originals: dict = {}
    scale_newest(model, 4, 0.5, originals)
    scale_newest(model, 4, 0.25, originals)  # from what was saved, not from the last scale
    for name, module in lora_modules(model):
        b = module.lora_B["default"].weight
        assert torch.equal(b[:, :4], saved[name][:, :4])
        assert torch.allclose(b[:, 4:], 0.25 * saved[name][:, 4:])
    scale_newest(model, 4, 1.0, originals)
    assert all(torch.equal(m.lora_B["default"].weight, saved[n]) for n, m in lora_modules(model))
