"""The preservation penalty: hand-computed on one module, zero in the general inputs' null space."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from trainer.experts import EXPERT, grow_expert, lora_modules
from trainer.preservation import general_keys, preservation_penalty, summarise

TARGETS = ["q_proj", "k_proj", "v_proj", "down_proj"]
GENERAL = [[1, 42, 7, 300, 12, 9, 2000, 5], [1, 77, 8, 19, 640]]


def test_summarise_keeps_the_second_moment_and_its_top_directions():
    inputs = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 2.0, 0.0], [1.0, 0.0, 0.0]])
    basis = summarise(inputs, rank=8)
    assert basis.shape == (3, 3)
    assert torch.allclose(basis @ basis.T, inputs.T @ inputs / 4, atol=1e-6)  # diag(0.5, 2, 0)
    top = summarise(inputs, rank=1)
    assert torch.allclose(top @ top.T, torch.diag(torch.tensor([0.0, 2.0, 0.0])), atol=1e-6)


@pytest.fixture
def grown(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    return grow_expert(model, rank=2, alpha=4, target_modules=TARGETS)


@pytest.mark.model
def test_a_grown_expert_costs_nothing_and_q_k_v_share_their_inputs(grown):
    keys = general_keys(grown, GENERAL, rank=4)
    assert len(keys) == 2 * len(TARGETS)  # every adapted module of both layers
    layer = "base_model.model.model.layers.0."
    assert keys[layer + "self_attn.q_proj"].basis is keys[layer + "self_attn.v_proj"].basis
    assert keys[layer + "self_attn.q_proj"].basis is not keys[layer + "mlp.down_proj"].basis
    assert keys[layer + "mlp.down_proj"].basis.shape == (128, 4)
    assert preservation_penalty(grown, keys).item() == 0.0  # B = 0


@pytest.mark.model
def test_penalty_is_the_added_output_energy_relative_to_the_layers_own(grown):
    keys = general_keys(grown, GENERAL, rank=4)
    name, module = next((n, m) for n, m in lora_modules(grown) if n.endswith("layers.1.mlp.down_proj"))
    keys = {name: keys[name]}
    torch.manual_seed(0)
    with torch.no_grad():
        module.lora_B[EXPERT].weight.normal_()
    a, b = module.lora_A[EXPERT].weight, module.lora_B[EXPERT].weight
    basis, weight = keys[name].basis, module.get_base_layer().weight
    expected = ((2.0 * b @ a @ basis).pow(2).sum() / (weight @ basis).pow(2).sum()).item()  # scaling 4 / 2
    assert preservation_penalty(grown, keys).item() == pytest.approx(expected, rel=1e-5)
    penalty = preservation_penalty(grown, keys)
    penalty.backward()
    assert module.lora_A[EXPERT].weight.grad.abs().sum() > 0  # it trains the expert

    # an expert that reads only directions the general inputs never take adds nothing there
    q, _ = torch.linalg.qr(basis)  # the general inputs' span (4 of 128 dimensions)
    with torch.no_grad():
        a.copy_(a - (a @ q) @ q.T)
    assert preservation_penalty(grown, keys).item() == pytest.approx(0.0, abs=1e-10)
