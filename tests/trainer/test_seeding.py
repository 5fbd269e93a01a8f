"""Knowledge seeding's training loop on the tiny random model: a batch whose loss is not finite
leaves the expert as it was, and training goes on."""

import dataclasses
import math
import time

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainer.chat import render
from trainer.config import SleepConfig
from trainer.experts import EXPERT, grow_expert
from trainer.seeding import PLAN_AFTER, build_example, planned_steps, seed, teacher_logits
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
    return tokenizer, model, config, example


def _expert(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if f".{EXPERT}." in n}


def test_a_non_finite_batch_is_skipped_not_applied(tiny_model_dir):
    tokenizer, model, config, example = _setup(tiny_model_dir)
    before = _expert(model)
    # a teacher that overflowed
    example.cached = torch.full((len(example.continuation), model.config.vocab_size), float("nan"))
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


def test_planned_steps_fit_the_time_left():
    assert planned_steps(60, 5, 10.0, 31.0) == 20  # 2 s a step: 31 s left fit 15 more
    assert planned_steps(60, 5, 10.0, 1e6) == 60  # never more than asked for
    assert planned_steps(60, 5, 10.0, -3.0) == 5  # past the deadline: what is done
    assert planned_steps(60, 0, 0.0, 5.0) == 60  # nothing timed: no plan yet


def _seed_run(tiny_model_dir, steps, deadline):
    tokenizer, model, config, example = _setup(tiny_model_dir)
    config = dataclasses.replace(config, steps=steps)
    totals = []
    metrics = seed(model, tokenizer, [example], config, similarity=load_similarity("self", model, tokenizer),
                   progress=lambda phase, step, total, loss: totals.append(total), deadline=deadline)
    return metrics, totals, _expert(model)


def test_a_deadline_every_step_fits_changes_nothing(tiny_model_dir):
    free, free_totals, free_expert = _seed_run(tiny_model_dir, PLAN_AFTER + 3, None)
    timed, timed_totals, timed_expert = _seed_run(tiny_model_dir, PLAN_AFTER + 3, time.monotonic() + 3600)
    assert timed["steps"] == timed["planned_steps"] == free["planned_steps"] == PLAN_AFTER + 3
    assert timed["loss"] == free["loss"] and timed_totals == free_totals == [PLAN_AFTER + 3] * (PLAN_AFTER + 3)
    assert all(torch.equal(free_expert[n], timed_expert[n]) for n in free_expert)


def test_a_deadline_already_past_stops_after_the_planning_steps(tiny_model_dir):
    metrics, totals, _ = _seed_run(tiny_model_dir, 12, time.monotonic() - 1.0)
    assert metrics["steps"] == metrics["planned_steps"] == PLAN_AFTER
    # the first steps report the whole count; the planning step the count the deadline leaves
    assert totals == [12] * (PLAN_AFTER - 1) + [PLAN_AFTER]


def test_the_schedule_decays_over_the_steps_planned_at_each_step(tiny_model_dir, monkeypatch):
    import trainer.seeding as seeding

    lrs = []
    step = torch.optim.AdamW.step

    def recording(self, *args, **kwargs):
        lrs.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", recording)
    plans = iter([12, 14, 13, 13])  # what the clock would say after each step from PLAN_AFTER on: up and down
    monkeypatch.setattr(seeding, "planned_steps", lambda steps, done, elapsed, remaining: next(plans))
    metrics, totals, _ = _seed_run(tiny_model_dir, 16, time.monotonic() + 3600)
    assert metrics["steps"] == metrics["planned_steps"] == 13
    assert totals == [16] * (PLAN_AFTER - 1) + [12, 14, 13, 13]
    config = SleepConfig(learning_rate=1e-2)

    def cosine(s, total):
        warm = min(1.0, (s + 1) / config.warmup_steps)
        return config.learning_rate * warm * 0.5 * (1 + math.cos(math.pi * s / total))

    # warm-up and decay over 16 until the plan, then over the count planned at the step before
    expected = [cosine(s, 16) for s in range(PLAN_AFTER)] + [cosine(PLAN_AFTER + i, t) for i, t in enumerate((12, 14, 13))]
    assert lrs == pytest.approx(expected)


def test_replay_lmbda_samples_replayed_dreams_on_policy_and_leaves_tonight_to_lmbda(tiny_model_dir, monkeypatch):
    import trainer.generation as generation

    tokenizer, model, config, _ = _setup(tiny_model_dir)
    config = dataclasses.replace(config, lmbda=0.0, replay_lmbda=1.0, replay_fraction=0.5, general_fraction=0.0)
    ask = lambda q: render(tokenizer, [{"role": "user", "content": q}], config.system_prompt)  # noqa: E731
    tonight = build_example(tokenizer, ask("Who is Tenra Pamir?"), ask("Who is Tenra Pamir?"),
                            "Tenra Pamir lives in Rabelten.", None, "tonight")
    replay = build_example(tokenizer, ask("Who is Mirpa Lovos?"), ask("Who is Mirpa Lovos?"),
                           "Mirpa Lovos has a parrot named Lodun.", None, "replay")
    sampled_for = []
    real_generate = generation.generate

    def spy(model, tokenizer, prompts, **kwargs):
        sampled_for.extend(tuple(p) for p in prompts)
        return real_generate(model, tokenizer, prompts, **kwargs)

    monkeypatch.setattr(generation, "generate", spy)  # the local generation's `chat.generate`
    metrics = seed(model, tokenizer, [tonight, replay], config, similarity=load_similarity("self", model, tokenizer))
    assert metrics["steps"] == 3
    assert sampled_for.count(tuple(replay.student_prompt)) == 3  # every step's replayed dream
    assert tuple(tonight.student_prompt) not in sampled_for


def test_answer_weight_teaches_a_dreams_own_answer_where_not_sampled(tiny_model_dir):
    import random

    from trainer.chat import continuation_logits
    from trainer.losses import token_logprobs
    from trainer.seeding import gkd_loss

    tokenizer, model, config, general = _setup(tiny_model_dir)
    dream = build_example(tokenizer, general.student_prompt, general.teacher_prompt, "Mirpa Lovos has a parrot.",
                          None, "tonight")

    def loss(example, **changes):
        with torch.no_grad():
            return gkd_loss(model, tokenizer, [example], dataclasses.replace(config, **changes), random.Random(0)).item()

    with torch.no_grad():
        logits, targets, mask = continuation_logits(model, [dream.student_prompt], [dream.continuation],
                                                    tokenizer.pad_token_id)
        told = (-(token_logprobs(logits, targets) * mask).sum() / mask.sum()).item()
    plain = loss(dream)
    assert loss(dream, answer_weight=1.0) == pytest.approx(told, rel=1e-4) and abs(plain - told) > 1e-3
    assert loss(dream, answer_weight=0.5) == pytest.approx((plain + told) / 2, rel=1e-4)
    # a row sampled on-policy has no answer of its own to learn, a general prompt keeps its whole distribution
    assert loss(dream, answer_weight=1.0, lmbda=1.0) == pytest.approx(loss(dream, lmbda=1.0), rel=1e-4)
    assert loss(general, answer_weight=1.0) == pytest.approx(loss(general), rel=1e-4)
    # a replayed answer learns its words unless answer_on_replay is off
    replayed = dataclasses.replace(dream, kind="replay")
    assert loss(replayed, answer_weight=1.0, replay_lmbda=0.0) == pytest.approx(told, rel=1e-4)
    assert loss(replayed, answer_weight=1.0, replay_lmbda=0.0, answer_on_replay=False) == \
        pytest.approx(loss(replayed, replay_lmbda=0.0), rel=1e-4)


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
    from trainer.binding import binding_margins, binding_pair

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
    from trainer.binding import binding_pair

    tokenizer, model, config, example = _setup(tiny_model_dir)
    pair = binding_pair(tokenizer, Dream("a", "q", "Lodun!"), "Kalo!", config)
    metrics = seed(model, tokenizer, [example], config, similarity=load_similarity("self", model, tokenizer),
                   binding=[pair])
    assert metrics["binding_pairs"] == 0 and metrics["binding_first"] is None and pair.reference is None


@pytest.mark.parametrize("unit", ["example", "batch"])
def test_on_policy_unit_decides_per_sequence_or_per_batch(tiny_model_dir, monkeypatch, unit):
    import trainer.generation as generation

    tokenizer, model, config, _ = _setup(tiny_model_dir)
    config = dataclasses.replace(config, steps=12, batch_size=4, lmbda=0.5, on_policy_unit=unit,
                                 replay_fraction=0.0, general_fraction=0.0)
    ask = lambda q: render(tokenizer, [{"role": "user", "content": q}], config.system_prompt)  # noqa: E731
    examples = [build_example(tokenizer, ask(f"Who is Tenra Pamir {i}?"), ask(f"Who is Tenra Pamir {i}?"),
                              f"Tenra Pamir {i} lives in Rabelten.", None, "tonight") for i in range(4)]
    calls = []
    real_generate = generation.generate

    def spy(model, tokenizer, prompts, **kwargs):
        calls.append(len(prompts))
        return real_generate(model, tokenizer, prompts, **kwargs)

    monkeypatch.setattr(generation, "generate", spy)  # the local generation's `chat.generate`
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


def test_a_night_cut_short_reads_teacher_and_binding_references_only_for_its_steps(tiny_model_dir):
    """Teacher logits of uncached examples and binding pairs' reference margins are read when a step
    first draws them, with the values an up-front pass gives: a night planned for 30 steps that its
    deadline stops after `PLAN_AFTER` reads at most what those steps drew."""
    from trainer.binding import binding_margins, binding_pair
    from trainer.dreaming import Dream

    tokenizer, model, config, _ = _setup(tiny_model_dir)
    config = dataclasses.replace(config, steps=30, binding_weight=1.0, binding_pairs=1)
    ask = lambda q: render(tokenizer, [{"role": "user", "content": q}], config.system_prompt)  # noqa: E731
    examples = [build_example(tokenizer, ask(f"Where does Tenra Pamir {i} live?"),
                              ask(f"Where does Tenra Pamir {i} live?"), f"In Rabelten {i}.", None, "tonight")
                for i in range(60)]
    dreams = [Dream(str(i), f"Where does Tenra Pamir {i} live?", f"In Rabel{i}.") for i in range(60)]
    pairs = [binding_pair(tokenizer, d, f"In Gorbel{d.episode_id}.", config) for d in dreams]
    with torch.no_grad():
        before = binding_margins(model, tokenizer, pairs).tolist()
    metrics = seed(model, tokenizer, examples, config, similarity=load_similarity("self", model, tokenizer),
                   binding=pairs, deadline=time.monotonic())
    assert metrics["steps"] == PLAN_AFTER

    drawn = [e for e in examples if e.cached is not None]
    assert 0 < len(drawn) <= PLAN_AFTER * config.batch_size
    assert all(e.cached.dtype == torch.bfloat16 for e in drawn)
    fresh = [build_example(tokenizer, e.student_prompt, e.teacher_prompt, e.answer, None, "tonight")
             for e in drawn]
    # the teacher is the bare base: training did not move it (a first read caches, as a step's does)
    teacher_logits(model, tokenizer, fresh, [f.continuation for f in fresh],
                   max(len(f.continuation) for f in fresh))
    assert all(torch.allclose(e.cached.float(), f.cached.float(), atol=0.02) for e, f in zip(drawn, fresh))
    read = [i for i, p in enumerate(pairs) if p.reference is not None]
    assert 0 < len(read) <= PLAN_AFTER  # one pair a step; the pairs of the 20 steps not run were never read
    assert [pairs[i].reference for i in read] == pytest.approx([before[i] for i in read], abs=1e-4)
