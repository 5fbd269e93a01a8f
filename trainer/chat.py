"""Token plumbing shared by dreaming, seeding and evaluation: chat rendering, left-padded batches,
batched generation and aligned continuation logits.

A *pair* is a prompt (token ids ending with the assistant header) and a continuation (the answer's ids,
ending with the end-of-turn token). In a batch every continuation ends at the last position (the rows are
left-padded; through a shared prefix each row's rest is right-padded and its logits are gathered to the
end); `continuation_logits` returns the logits that predict each continuation token.

Prompts in one batch share a prefix: dreaming asks many questions of one episode, and every training
row starts with the chat template's system turn (24 of a seeding row's ~50 tokens on SmolLM2). With
`shared_prefix` `continuation_logits` (by default) and `generate` run that shared prefix once and repeat
its KV cache over the batch (transformers' documented prompt-cache reuse); under autograd the repeat sums
each row's gradient back into the one prefix pass. Same numbers within float error (about 5e-5 on logits,
3e-6 relative on an expert's gradient, the same greedy tokens on SmolLM2); a dream night's batches run
about 2-4x faster, a seeding step's forward and backward about a third faster (`bench/prefix_sharing.py`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from trainer.tool_turns import presented

Messages = list[dict[str, str]]


def render(tokenizer, messages: Messages, system_prompt: str | None = None) -> list[int]:
    """Token ids of a chat ending with the assistant's generation prompt (the serving format). An agent's
    calls and tool results are shown in plain user/assistant turns (`trainer.tool_turns.presented`), so
    any chat template renders them."""
    if system_prompt is not None:
        messages = [{"role": "system", "content": system_prompt}, *[m for m in messages if m["role"] != "system"]]
    out = tokenizer.apply_chat_template(presented(messages), tokenize=True, add_generation_prompt=True)
    if hasattr(out, "keys") and "input_ids" in out:
        out = out["input_ids"]
    return list(out)


def end_of_turn(tokenizer) -> int:
    return tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.pad_token_id


def answer_ids(tokenizer, text: str) -> list[int]:
    """A continuation: the answer's tokens and the end-of-turn token."""
    return tokenizer.encode(text, add_special_tokens=False) + [end_of_turn(tokenizer)]


def pad_left(sequences: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) ids and attention mask, left-padded."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, seq in enumerate(sequences):
        if seq:
            ids[i, width - len(seq):] = torch.tensor(list(seq), dtype=torch.long)
            mask[i, width - len(seq):] = 1
    return ids.to(device), mask.to(device)


# Below this many shared tokens a separate prefix pass saves less than it costs (seeding's system turn of 24
# saves a third of a step's forward and backward).
MIN_SHARED_PREFIX = 16


def common_prefix(sequences: Sequence[Sequence[int]]) -> int:
    """Length of the longest prefix every sequence shares, leaving each at least one token of its own."""
    first, limit = sequences[0], min(len(s) for s in sequences) - 1
    n = 0
    while n < limit and all(s[n] == first[n] for s in sequences):
        n += 1
    return n


def prefix_cache(model, prefix: Sequence[int], rows: int):
    """The KV cache of `prefix`, computed once and repeated for `rows` rows of a batch that continues it."""
    device = next(model.parameters()).device
    cache = model(input_ids=torch.tensor([list(prefix)], device=device), use_cache=True).cache
    cache.batch_repeat_interleave(rows)
    return cache


def continuation_logits(
    model, prompts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]], pad_id: int,
    shared_prefix: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits predicting each continuation token.

    `shared_prefix`: the prompts' common prefix, when it is long enough, is run once and its cache reused
    by every row, with or without autograd (module docstring); the result has the same layout, and the
    vocabulary projection runs only where a continuation token is predicted on either path.

    Returns:
        logits (B, L, V), targets (B, L) and mask (B, L) with L the longest continuation; row i's
        continuation occupies its last len_i positions (left-aligned padding is masked out).
    """
    device = next(model.parameters()).device
    longest = max(len(c) for c in continuations)
    shared = common_prefix(prompts) if shared_prefix and len(prompts) > 1 else 0
    if shared >= MIN_SHARED_PREFIX:
        return _prefixed_continuation_logits(model, prompts, continuations, pad_id, shared, longest)
    ids, attention = pad_left([list(p) + list(c) for p, c in zip(prompts, continuations)], pad_id, device)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=attention, position_ids=positions, logits_to_keep=longest + 1)
    logits = out.logits[:, :-1]
    targets = ids[:, -longest:]
    mask = torch.zeros_like(targets, dtype=torch.bool)
    for i, c in enumerate(continuations):
        mask[i, longest - len(c):] = True
    return logits, targets, mask


def _prefixed_continuation_logits(model, prompts, continuations, pad_id: int, shared: int, longest: int):
    """`continuation_logits` after one pass over the `shared` first tokens. Each row is its own rest of
    the prompt and its continuation, right-padded: under the causal mask no real token sees a pad, and
    the rows' positions simply continue the prefix's."""
    device = next(model.parameters()).device
    cache = prefix_cache(model, prompts[0][:shared], len(prompts))
    rows = [list(p[shared:]) + list(c) for p, c in zip(prompts, continuations)]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long, device=device)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
    positions = (shared + torch.arange(width, device=device)).expand(len(rows), -1)
    attention = torch.ones((len(rows), shared + width), dtype=torch.long, device=device)
    # row i's logits at the positions predicting its continuation, aligned to the end of `longest` (its
    # padding slots repeat its first position and are masked): the vocabulary projection runs on no others
    keep = torch.zeros((len(rows), longest), dtype=torch.long, device=device)
    targets = torch.full((len(rows), longest), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(rows), longest), dtype=torch.bool, device=device)
    for i, (p, c) in enumerate(zip(prompts, continuations)):
        start = len(p) - shared - 1  # the logit at the prompt's last token predicts the first answer token
        keep[i] = start
        keep[i, longest - len(c):] = torch.arange(start, start + len(c), device=device)
        targets[i, longest - len(c):] = torch.tensor(list(c), dtype=torch.long)
        mask[i, longest - len(c):] = True
    logits = model(input_ids=ids, attention_mask=attention, position_ids=positions, cache=cache,
                   logits_to_keep=keep).logits
    return logits, targets, mask


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    batch_size: int = 16,
    generator_seed: int | None = None,
    shared_prefix: bool = False,
) -> list[list[int]]:
    """Greedy (temperature 0) or sampled continuations, each cut after the end-of-turn token.

    `shared_prefix`: a batch whose prompts share a long enough prefix runs it once (module docstring); the
    rests of the prompts are left-padded after it, the pads masked. Callers order prompts so that those of
    one context are neighbours."""
    device = next(model.parameters()).device
    eot = end_of_turn(tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eot
    results: list[list[int]] = []
    was_training = model.training
    model.eval()
    if generator_seed is not None:
        torch.manual_seed(generator_seed)
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start:start + batch_size]
        shared = common_prefix(chunk) if shared_prefix else 0
        cache = None
        if shared >= MIN_SHARED_PREFIX:
            rests, attention = pad_left([p[shared:] for p in chunk], pad, device)
            ids = torch.cat([torch.tensor([list(chunk[0][:shared])], device=device).expand(len(chunk), -1), rests], 1)
            attention = torch.cat([torch.ones((len(chunk), shared), dtype=torch.long, device=device), attention], 1)
            cache = prefix_cache(model, chunk[0][:shared], len(chunk))
        else:
            ids, attention = pad_left(chunk, pad, device)
        if temperature > 0:
            # a non-finite logit (a bf16 overflow) would otherwise kill the process with a device-side assert
            kwargs = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0,
                      "remove_invalid_values": True}
        else:
            kwargs = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        if cache is not None:
            kwargs["cache"] = cache
        out = model.generate(input_ids=ids, attention_mask=attention, max_new_tokens=max_new_tokens,
                             pad_token_id=pad, eos_token_id=eot, **kwargs)
        for row in out[:, ids.shape[1]:].tolist():
            cut = row.index(eot) + 1 if eot in row else len(row)
            results.append(row[:cut])
    model.train(was_training)
    return results


def decode(tokenizer, ids: Sequence[int]) -> str:
    return tokenizer.decode(list(ids), skip_special_tokens=True).strip()


def load_model(path, config):
    """Tokenizer and model on the configured device and dtype, in eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=config.resolved_dtype())
    return tokenizer, model.to(config.resolved_device()).eval()


def answers(model, tokenizer, questions: Sequence[str], config, context=None) -> list[str]:
    """Greedy replies to questions asked alone (closed-book), or after `context` messages (one list of
    messages per question), with the serving system prompt and `config.eval_max_new_tokens`."""
    chats = [(context[i] if context else []) + [{"role": "user", "content": q}] for i, q in enumerate(questions)]
    out = generate(model, tokenizer, [render(tokenizer, c, config.system_prompt) for c in chats],
                   max_new_tokens=config.eval_max_new_tokens, batch_size=config.generation_batch_size)
    return [decode(tokenizer, ids) for ids in out]
