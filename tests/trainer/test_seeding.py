"""Knowledge seeding's training loop on the tiny random model: a batch whose loss is not finite
leaves the expert as it was, and training goes on."""

import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainer.chat import render
from trainer.config import SleepConfig
from trainer.experts import EXPERT, grow_expert
from trainer.seeding import build_example, cache_teacher, seed
from trainer.semantic import load_similarity

pytestmark = pytest.mark.model


def _setup(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    model = grow_expert(model, rank=4, alpha=8.0, target_modules=["q_proj", "v_proj"])
    config = SleepConfig(steps=3, batch_size=2, imitation_every=0, lmbda=0.0, alpha=0.0, torch_threads=1,
                         learning_rate=1e-2, semantic_model="self")
    prompt = render(tokenizer, [{"role": "user", "content": "Who is Mirpa Lovos?"}], config.system_prompt)
    example = build_example(tokenizer, prompt, prompt, "Mirpa Lovos has a parrot named Lodun.", None, "general")
    cache_teacher(model, tokenizer, [example])
    return tokenizer, model, config, example


def _expert(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if f".{EXPERT}." in n}


def test_a_non_finite_batch_is_skipped_not_applied(tiny_model_dir):
    tokenizer, model, config, example = _setup(tiny_model_dir)
    before = _expert(model)
    example.cached = torch.full_like(example.cached, float("nan"))  # a teacher that overflowed
    metrics = seed(model, tokenizer, [example], config, similarity=load_similarity("self", model, tokenizer))
    assert metrics["skipped_steps"] == 3 and metrics["steps"] == 0
    assert [s["step"] for s in metrics["skipped"]] == [0, 1, 2] and metrics["skipped"][0]["gkd"] == "nan"
    after = _expert(model)
    assert all(torch.equal(before[n], after[n]) for n in before)


def test_finite_batches_train_the_expert(tiny_model_dir):
    tokenizer, model, config, example = _setup(tiny_model_dir)
    before = _expert(model)
    metrics = seed(model, tokenizer, [example], config, similarity=load_similarity("self", model, tokenizer))
    assert metrics["skipped_steps"] == 0 and metrics["steps"] == 3
    after = _expert(model)
    assert any(not torch.equal(before[n], after[n]) for n in before) and all(torch.isfinite(p).all() for p in after.values())


def test_replay_lmbda_samples_replayed_dreams_on_policy_and_leaves_tonight_to_lmbda(tiny_model_dir, monkeypatch):
    import dataclasses

    import trainer.seeding as seeding

    tokenizer, model, config, _ = _setup(tiny_model_dir)
    config = dataclasses.replace(config, lmbda=0.0, replay_lmbda=1.0, replay_fraction=0.5, general_fraction=0.0)
    ask = lambda q: render(tokenizer, [{"role": "user", "content": q}], config.system_prompt)  # noqa: E731
    tonight = build_example(tokenizer, ask("Who is Tenra Pamir?"), ask("Who is Tenra Pamir?"),
                            "Tenra Pamir lives in Rabelten.", None, "tonight")
    replay = build_example(tokenizer, ask("Who is Mirpa Lovos?"), ask("Who is Mirpa Lovos?"),
                           "Mirpa Lovos has a parrot named Lodun.", None, "replay")
    cache_teacher(model, tokenizer, [tonight, replay])
    sampled_for = []
    real_generate = seeding.generate

    def spy(model, tokenizer, prompts, **kwargs):
        sampled_for.extend(tuple(p) for p in prompts)
        return real_generate(model, tokenizer, prompts, **kwargs)

    monkeypatch.setattr(seeding, "generate", spy)
    metrics = seed(model, tokenizer, [tonight, replay], config, similarity=load_similarity("self", model, tokenizer))
    assert metrics["steps"] == 3
    assert sampled_for.count(tuple(replay.student_prompt)) == 3  # every step's replayed dream
    assert tuple(tonight.student_prompt) not in sampled_for


def test_replay_lmbda_defaults_to_lmbda():
    from trainer.seeding import Example, on_policy_fraction

    replay = Example([1], [1], "a", [2], None, "replay")
    tonight = Example([1], [1], "a", [2], None, "tonight")
    assert on_policy_fraction(replay, SleepConfig(lmbda=0.3)) == 0.3
    assert on_policy_fraction(replay, SleepConfig(lmbda=0.3, replay_lmbda=0.8)) == 0.8
    assert on_policy_fraction(tonight, SleepConfig(lmbda=0.3, replay_lmbda=0.8)) == 0.3
    with pytest.raises(ValueError, match="replay_lmbda"):
        SleepConfig(replay_lmbda=1.5)


@pytest.mark.parametrize("own_clip", [False, True])
def test_binding_pairs_raise_the_own_answer_over_the_rival_answer(tiny_model_dir, own_clip):
    from trainer.dreaming import Dream
    from trainer.seeding import binding_margins, binding_pair

    tokenizer, model, config, example = _setup(tiny_model_dir)
    config = SleepConfig(**{**config.to_dict(), "steps": 4, "binding_weight": 5.0, "binding_pairs": 2,
                            "binding_own_clip": own_clip})
    q = 'Continue what I told you: "Quick update: {}\'s new parrot is named ..."'
    mirpa = Dream("a", q.format("Mirpa Lovos"), "Lodun!", key_terms=["lodun"])
    voska = Dream("b", q.format("Voska Pagor"), "Kalo!", key_terms=["kalo"])
    pairs = [binding_pair(tokenizer, mirpa, "Kalo!", config), binding_pair(tokenizer, voska, "Lodun!", config)]
    with torch.no_grad():
        before = binding_margins(model, tokenizer, pairs)
    metrics = seed(model, tokenizer, [example], config, similarity=load_similarity("self", model, tokenizer),
                   binding=pairs)
    # the reference is the model before training: the zero expert leaves it the untrained one
    assert [p.reference for p in pairs] == pytest.approx(before.tolist(), abs=1e-4)
    assert metrics["binding_pairs"] == 2 and metrics["binding_first"] == pytest.approx(math.log(2), abs=1e-3)
    with torch.no_grad():
        after = binding_margins(model, tokenizer, pairs)
    assert (after > before).all()  # each person's own parrot gained over the other's, for both


def test_binding_is_off_at_weight_zero(tiny_model_dir):
    from trainer.dreaming import Dream
    from trainer.seeding import binding_pair

    tokenizer, model, config, example = _setup(tiny_model_dir)
    pair = binding_pair(tokenizer, Dream("a", "q", "Lodun!"), "Kalo!", config)
    metrics = seed(model, tokenizer, [example], config, similarity=load_similarity("self", model, tokenizer),
                   binding=[pair])
    assert metrics["binding_pairs"] == 0 and metrics["binding_first"] is None and pair.reference is None


@pytest.mark.parametrize("unit", ["example", "batch"])
def test_on_policy_unit_decides_per_sequence_or_per_batch(tiny_model_dir, monkeypatch, unit):
    import dataclasses

    import trainer.seeding as seeding

    tokenizer, model, config, _ = _setup(tiny_model_dir)
    config = dataclasses.replace(config, steps=12, batch_size=4, lmbda=0.5, on_policy_unit=unit,
                                 replay_fraction=0.0, general_fraction=0.0)
    ask = lambda q: render(tokenizer, [{"role": "user", "content": q}], config.system_prompt)  # noqa: E731
    examples = [build_example(tokenizer, ask(f"Who is Tenra Pamir {i}?"), ask(f"Who is Tenra Pamir {i}?"),
                              f"Tenra Pamir {i} lives in Rabelten.", None, "tonight") for i in range(4)]
    cache_teacher(model, tokenizer, examples)
    calls = []
    real_generate = seeding.generate

    def spy(model, tokenizer, prompts, **kwargs):
        calls.append(len(prompts))
        return real_generate(model, tokenizer, prompts, **kwargs)

    monkeypatch.setattr(seeding, "generate", spy)
    seed(model, tokenizer, examples, config, similarity=load_similarity("self", model, tokenizer))
    assert calls, "lmbda 0.5 over 12 steps samples at least once"
    if unit == "batch":  # one draw a step: the whole batch or none of it
        assert set(calls) == {4} and len(calls) < 12
    else:  # about half of each batch, drawn one by one
        assert min(calls) < 4


def test_backward_clipped_apart_clips_each_loss_then_weights_it():
    from trainer.seeding import backward_clipped_apart

    p = torch.zeros(2, requires_grad=True)
    big = 10.0 * p[0] + 0.0 * p[1]  # gradient (10, 0): norm 10, clipped to (1, 0)
    small = 0.3 * p[1]  # gradient (0, 0.3): under the clip, kept, then halved
    norm = backward_clipped_apart([p], [(big, 1.0), (small, 0.5)], clip=1.0)
    assert p.grad.tolist() == pytest.approx([1.0, 0.15])
    assert float(norm) == pytest.approx(10.0)
    # one shared clip would have scaled both by 1/10: the small loss's share nearly vanishes
    q = torch.zeros(2, requires_grad=True)
    (10.0 * q[0] + 0.5 * 0.3 * q[1]).backward()
    torch.nn.utils.clip_grad_norm_([q], 1.0)
    assert q.grad[1] < 0.02


def test_backward_clipped_apart_reports_a_non_finite_part():
    from trainer.seeding import backward_clipped_apart

    p = torch.zeros(1, requires_grad=True)
    norm = backward_clipped_apart([p], [(p.sum() * float("nan"), 1.0), (p.sum(), 1.0)], clip=1.0)
    assert not torch.isfinite(norm)


def test_sampling_survives_non_finite_logits(tiny_model_dir):
    """On-policy samples from a model whose logits overflowed: without dropping the non-finite values,
    sampling raises (a device-side assert on CUDA, which ends the process)."""
    from trainer.chat import generate

    tokenizer, model, config, example = _setup(tiny_model_dir)
    with torch.no_grad():
        model.get_output_embeddings().weight[:5].fill_(float("inf"))
        model.get_output_embeddings().weight[5:10].fill_(float("nan"))
    out = generate(model, tokenizer, [example.student_prompt] * 2, max_new_tokens=3, temperature=1.0,
                   generator_seed=0)
    assert len(out) == 2 and all(1 <= len(ids) <= 3 for ids in out)
