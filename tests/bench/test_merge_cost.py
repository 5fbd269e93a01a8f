"""bench/merge_cost.py puts the stack cut by SVD into the adapter: the update it applies is the cut's."""

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from bench.merge_cost import load_cut
from trainer.experts import adapter_factors, delta, lora_modules, merge

pytestmark = pytest.mark.model


def test_the_adapter_applies_the_cut_stack_and_the_full_rank_again(tiny_model_dir):
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(0)
    for _, module in lora_modules(model):
        torch.nn.init.normal_(module.lora_B["default"].weight)
    factors = adapter_factors(model, "default")  # scaling (16 / 8) folded into B
    cut, _ = merge(factors, 3)
    error = load_cut(model, factors, 3)
    assert 0 < error < 1
    now = adapter_factors(model, "default")
    for name, (a, b) in now.items():
        assert torch.count_nonzero(a[3:]) == 0 and torch.count_nonzero(b[:, 3:]) == 0
        assert torch.allclose(delta(a, b), delta(*cut[name]), atol=1e-4)
        assert not torch.allclose(delta(a, b), delta(*factors[name]), atol=1e-2)  # the cut changed it
    assert load_cut(model, factors, 8) == pytest.approx(0, abs=1e-5)  # all of it: the stack as it was
    for name, (a, b) in adapter_factors(model, "default").items():
        assert torch.allclose(delta(a, b), delta(*factors[name]), atol=1e-4)
