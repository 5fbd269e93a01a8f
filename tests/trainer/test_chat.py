"""Token plumbing: a shared prompt prefix read once gives the numbers of reading every prompt whole."""

from __future__ import annotations

import pytest
import torch

from trainer.chat import MIN_SHARED_PREFIX, common_prefix, continuation_logits, generate, render

EPISODE = [
    {"role": "user", "content": "The neighbours were drilling all afternoon, and my cousin Odrin Velasc came over "
                                "with his new boat, which he has named the Kerrowyn after his grandmother."},
    {"role": "assistant", "content": "That sounds like a busy day. Kerrowyn is a lovely name for a boat."},
    {"role": "user", "content": "I'm thinking of taking up cycling next spring, maybe with the club in Tarsk."},
    {"role": "assistant", "content": "Cycling is great exercise and a nice way to see the area."},
]
QUESTIONS = ["What is Odrin Velasc's boat called?", "Who came over?", "What am I thinking of taking up?",
             "Which club?", "Where is the club?"]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    return tokenizer, model


def prompts_about_one_episode(tokenizer):
    return [render(tokenizer, EPISODE + [{"role": "user", "content": q}]) for q in QUESTIONS]


def test_common_prefix_leaves_every_sequence_a_token_of_its_own():
    assert common_prefix([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 9]]) == 2
    assert common_prefix([[1, 2, 3], [1, 2, 3]]) == 2  # identical: the last token stays each row's own
    assert common_prefix([[7, 1], [8, 1]]) == 0
    assert common_prefix([[5, 6, 7]]) == 2


@torch.no_grad()
def test_continuation_logits_through_a_shared_prefix_equal_reading_each_prompt_whole(tiny):
    tokenizer, model = tiny
    prompts = prompts_about_one_episode(tokenizer)
    assert common_prefix(prompts) >= MIN_SHARED_PREFIX  # the episode: the path under test is taken
    answers = ["Kerrowyn.", "Odrin Velasc came over with his boat.", "Cycling", "The club in Tarsk, next spring.",
               "Tarsk"]
    continuations = [tokenizer.encode(a, add_special_tokens=False) + [tokenizer.eos_token_id] for a in answers]
    whole = continuation_logits(model, prompts, continuations, tokenizer.pad_token_id, shared_prefix=False)
    shared = continuation_logits(model, prompts, continuations, tokenizer.pad_token_id)
    mask = whole[2]
    assert torch.equal(mask, shared[2]) and torch.equal(whole[1][mask], shared[1][mask])
    assert torch.allclose(whole[0][mask], shared[0][mask], atol=1e-4)
    assert (whole[0][mask] - shared[0][mask]).abs().max() < 1e-4


def test_gradients_through_a_shared_prefix_equal_reading_each_prompt_whole(tiny_model_dir):
    """Seeding's rows share the system turn: the prefix pass runs once and every row's gradient flows back
    into it, so the expert's gradient is the one each row read whole would give."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.experts import grow_expert
    from trainer.losses import token_logprobs

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model = grow_expert(base, rank=4, alpha=8.0, target_modules=["q_proj", "v_proj"], frozen=[], seed=0)
    torch.manual_seed(0)
    expert = [p for name, p in model.named_parameters() if p.requires_grad]
    with torch.no_grad():  # as if trained a while: B starts at zero, and the expert's gradient with it
        for p in expert:
            p.normal_(std=0.05)
    model.train()
    prompts = prompts_about_one_episode(tokenizer)
    assert common_prefix(prompts) >= MIN_SHARED_PREFIX
    answers = ["Kerrowyn.", "Odrin Velasc.", "Cycling next spring.", "The Tarsk club.", "Tarsk"]
    continuations = [tokenizer.encode(a, add_special_tokens=False) + [tokenizer.eos_token_id]
                     for a in answers]

    def gradient(shared_prefix: bool) -> list[torch.Tensor]:
        model.zero_grad()
        logits, targets, mask = continuation_logits(model, prompts, continuations, tokenizer.pad_token_id,
                                                    shared_prefix=shared_prefix)
        (-(token_logprobs(logits, targets) * mask).sum() / mask.sum()).backward()
        return [p.grad.clone() for p in expert]

    whole, shared = gradient(False), gradient(True)
    assert all(g.abs().sum() > 0 for g in whole)
    error = sum((a - b).pow(2).sum() for a, b in zip(whole, shared)).sqrt()
    assert error / sum(a.pow(2).sum() for a in whole).sqrt() < 1e-4


def test_generation_through_a_shared_prefix_writes_the_same_greedy_tokens(tiny):
    tokenizer, model = tiny
    prompts = prompts_about_one_episode(tokenizer)
    whole = generate(model, tokenizer, prompts, max_new_tokens=12)
    shared = generate(model, tokenizer, prompts, max_new_tokens=12, shared_prefix=True)
    assert shared == whole
    assert all(len(ids) > 0 for ids in shared)


def test_prompts_without_a_long_shared_prefix_take_the_plain_path(tiny):
    tokenizer, model = tiny
    prompts = [tokenizer.encode(q, add_special_tokens=False) for q in QUESTIONS]  # no episode before them
    assert common_prefix(prompts) < MIN_SHARED_PREFIX
    assert generate(model, tokenizer, prompts, max_new_tokens=6, shared_prefix=True) == \
        generate(model, tokenizer, prompts, max_new_tokens=6)
