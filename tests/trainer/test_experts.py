"""Growth bookkeeping on the tiny random model: bit-exact growth, exact concatenation, bounded merge."""

import json

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from trainer.experts import (
    EXPERT,
    PREVIOUS,
    adapted_modules,
    adapter_factors,
    adapters,
    allowed_max_lora_rank,
    concatenate,
    delta,
    grow_expert,
    grow_layers,
    grow_student_layers,
    merge,
    read_experts,
    save_adapter,
    set_active,
    svd_truncate,
)

pytestmark = pytest.mark.model
TARGETS = ["q_proj", "v_proj", "down_proj"]


def _model(path):
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def _ids():
    return torch.tensor([[1, 42, 7, 300, 12, 9, 2000, 5]])


@torch.no_grad()
def _logits(model):
    return model(input_ids=_ids()).logits


def _randomise(model, adapter, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if f"lora_B.{adapter}." in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.05)


def test_growth_is_bit_identical(tiny_model_dir):
    model = _model(tiny_model_dir)
    before = _logits(model)
    grown = grow_expert(model, rank=4, alpha=8, target_modules=TARGETS)
    assert torch.equal(_logits(grown), before)
    # and on top of a non-zero previous stack
    _randomise(grown, EXPERT, 0)
    stacked = _logits(grown)
    assert not torch.equal(stacked, before)
    grown.base_model.model  # noqa: B018 - same object
    grown.add_adapter("second", grown.peft_config[EXPERT])
    set_active(grown, [EXPERT, "second"], trainable="second")
    assert torch.equal(_logits(grown), stacked)


def test_only_the_expert_trains(tiny_model_dir, tmp_path):
    model = _model(tiny_model_dir)
    model = grow_expert(model, rank=4, alpha=8, target_modules=TARGETS)
    _randomise(model, EXPERT, 1)
    prev = adapter_factors(model, EXPERT)
    save_adapter(tmp_path / "a", prev, [{"name": "n1", "rank": 4}], base_model_name_or_path="base")
    model = PeftModel.from_pretrained(_model(tiny_model_dir), tmp_path / "a", adapter_name=PREVIOUS)
    model = grow_expert(model, rank=2, alpha=4, target_modules=TARGETS, frozen=[PREVIOUS])
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(f".{EXPERT}." in n for n in trainable)
    frozen_before = {n: p.clone() for n, p in model.named_parameters() if not p.requires_grad}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        loss = model(input_ids=_ids(), labels=_ids()).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        with adapters(model, [PREVIOUS]):  # the teacher view must not unfreeze anything
            pass
    assert all(torch.equal(p, frozen_before[n]) for n, p in model.named_parameters() if not p.requires_grad)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == trainable
    assert adapter_factors(model, EXPERT)[next(iter(prev))][1].abs().sum() > 0


def test_experts_of_other_modules_concatenate_into_one_rank(tiny_model_dir, tmp_path):
    """An expert grown on fewer modules (target_modules changed between nights) takes zero factors where
    it adapts nothing: one rank for every module, still exactly the sum, and a folder peft loads."""
    model = grow_expert(_model(tiny_model_dir), rank=4, alpha=8, target_modules=TARGETS)
    _randomise(model, EXPERT, 2)
    mlp_only = model.peft_config[EXPERT].__class__(r=2, lora_alpha=6, target_modules=["down_proj"])
    model.add_adapter("mlp", mlp_only)
    _randomise(model, "mlp", 3)
    set_active(model, [EXPERT, "mlp"], trainable=None)
    expected = _logits(model)
    first, second = adapter_factors(model, EXPERT), adapter_factors(model, "mlp")
    assert set(second) < set(first)
    stack = concatenate([first, second])
    assert {a.shape[0] for a, _ in stack.values()} == {6}
    for key, (a, b) in stack.items():
        second_delta = delta(*second[key]) if key in second else 0
        assert torch.allclose(delta(a, b), delta(*first[key]) + second_delta, atol=1e-12)
    assert adapted_modules(stack) == sorted(TARGETS)
    folder = save_adapter(tmp_path / "adapter", stack, [{"name": "n1", "rank": 4}, {"name": "n2", "rank": 2}],
                          base_model_name_or_path="served/base")
    loaded = PeftModel.from_pretrained(_model(tiny_model_dir), folder)
    assert torch.allclose(_logits(loaded), expected, atol=1e-5)


def test_concatenated_folder_is_exactly_the_sum(tiny_model_dir, tmp_path):
    model = grow_expert(_model(tiny_model_dir), rank=4, alpha=8, target_modules=TARGETS)
    _randomise(model, EXPERT, 2)
    model.add_adapter("two", model.peft_config[EXPERT].__class__(r=2, lora_alpha=6, target_modules=TARGETS))
    _randomise(model, "two", 3)
    set_active(model, [EXPERT, "two"], trainable=None)
    expected = _logits(model)
    first, second = adapter_factors(model, EXPERT), adapter_factors(model, "two")
    stack = concatenate([first, second])
    for key, (a, b) in stack.items():
        assert a.shape[0] == 6
        assert torch.allclose(delta(a, b), delta(*first[key]) + delta(*second[key]), atol=1e-12)
    folder = save_adapter(tmp_path / "adapter", stack, [{"name": "n1", "rank": 4}, {"name": "n2", "rank": 2}],
                          base_model_name_or_path="served/base")
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "served/base" and config["r"] == 6
    assert [e["rank"] for e in read_experts(folder)] == [4, 2]
    loaded = PeftModel.from_pretrained(_model(tiny_model_dir), folder)
    assert torch.allclose(_logits(loaded), expected, atol=1e-5)
    assert not torch.allclose(_logits(loaded), _logits(_model(tiny_model_dir)), atol=1e-3)


def test_svd_merge_error_is_reported_and_optimal():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(12, 40, generator=gen), torch.randn(30, 12, generator=gen)
    full = delta(a, b)
    new_a, new_b, error = svd_truncate(a, b, 8)
    assert new_a.shape == (8, 40) and new_b.shape == (30, 8)
    actual = float((full - delta(new_a, new_b)).norm())
    assert error == pytest.approx(actual, rel=1e-6)
    # Eckart-Young: the error is the tail of the singular values, below the whole delta
    s = torch.linalg.svdvals(full)
    assert error == pytest.approx(float(s[8:].square().sum().sqrt()), rel=1e-6)
    assert error < float(full.norm())
    # a stack whose true rank fits merges with no loss
    low_a, low_b = torch.cat([a[:3], a[:3]]), torch.cat([b[:, :3], b[:, :3]], 1)  # rank 3 written as 6
    merged, report = merge({"m": (low_a, low_b)}, 4)
    assert report.max_relative_error < 1e-6
    assert torch.allclose(delta(*merged["m"]), delta(low_a, low_b), atol=1e-4)
    _, report = merge({"m": (a, b)}, 8)
    assert 0 < report.max_relative_error < 1 and report.rank_before == 12 and report.rank_after == 8


def test_vllm_rank_values():
    assert allowed_max_lora_rank(8) == 8
    assert allowed_max_lora_rank(9) == 16
    assert allowed_max_lora_rank(300) == 320
    with pytest.raises(ValueError, match="above"):
        allowed_max_lora_rank(513)


def test_grown_layers_preserve_the_function(tiny_model_dir, tmp_path):
    model = _model(tiny_model_dir)
    before = _logits(model)
    gen_before = model.generate(_ids(), max_new_tokens=5, do_sample=False)
    new = grow_layers(model, 1)
    assert model.config.num_hidden_layers == 3 and new == [2]
    assert torch.equal(_logits(model), before)
    assert torch.equal(model.generate(_ids(), max_new_tokens=5, do_sample=False), gen_before)
    model.save_pretrained(tmp_path / "grown")
    again = _model(tmp_path / "grown")
    assert torch.equal(_logits(again), before)


def test_teacher_view_skips_tonights_grown_layers(tiny_model_dir):
    model = _model(tiny_model_dir)
    before = _logits(model)
    gen_before = model.generate(_ids(), max_new_tokens=5, do_sample=False)
    new = grow_student_layers(model, 2)
    assert new == [1, 3] and len(model.model.layers) == 4
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith(("model.layers.1.", "model.layers.3.")) for n in trainable)
    with torch.no_grad():  # as if trained: the grown layers now change the function
        for i in new:
            model.model.layers[i].self_attn.o_proj.weight.normal_(0, 0.5)
    student = _logits(model)
    assert not torch.equal(student, before)
    with adapters(model, None):  # every teacher is the model before growth, KV cache included
        assert len(model.model.layers) == 2
        assert torch.equal(_logits(model), before)
        assert torch.equal(model.generate(_ids(), max_new_tokens=5, do_sample=False), gen_before)
    assert len(model.model.layers) == 4 and torch.equal(_logits(model), student)
