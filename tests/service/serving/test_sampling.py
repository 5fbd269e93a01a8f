"""Pure decoding helpers on hand-made cases: token choice, stop-string cuts, incremental detokenising."""

from __future__ import annotations

import torch

import math

import pytest

from service.serving.engines.sampling import (
    REPLACEMENT_CHAR,
    IncrementalDetokenizer,
    TokenBytes,
    penalized_logits,
    sample_next_token,
    stop_cut,
    token_logprobs,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_greedy_is_argmax_with_ties_to_lowest_id():
    assert sample_next_token(torch.tensor([0.1, 2.0, -1.0]), temperature=0) == 1
    assert sample_next_token(torch.tensor([3.0, 3.0, 1.0]), temperature=0) == 0


def test_same_seed_same_tokens_different_seeds_differ():
    logits = torch.zeros(1000)

    def draws(seed):
        generator = _gen(seed)
        return [sample_next_token(logits, temperature=1.0, generator=generator) for _ in range(20)]

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)


def test_top_p_keeps_the_smallest_set_reaching_the_mass():
    # probabilities 0.5, 0.3, 0.2: the first two reach 0.75, only all three reach 0.85.
    logits = torch.tensor([0.5, 0.3, 0.2]).log()
    picks = {sample_next_token(logits, temperature=1.0, top_p=0.75, generator=_gen(s)) for s in range(200)}
    assert picks == {0, 1}
    picks = {sample_next_token(logits, temperature=1.0, top_p=0.85, generator=_gen(s)) for s in range(200)}
    assert picks == {0, 1, 2}


def test_tiny_top_p_and_low_temperature_reduce_to_the_top_token():
    logits = torch.tensor([1.0, 1.5, 0.2, 1.4])
    nucleus = {sample_next_token(logits, temperature=1.0, top_p=1e-6, generator=_gen(s)) for s in range(50)}
    cold = {sample_next_token(logits, temperature=1e-3, generator=_gen(s)) for s in range(50)}
    assert nucleus == cold == {1}


def test_stop_cut():
    assert stop_cut("hello world", ["wor"]) == (6, True)
    assert stop_cut("a STOP b END", ["END", "STOP"]) == (2, True)  # the earliest occurrence wins
    assert stop_cut("hello wo", ["world"]) == (6, False)  # "wo" may still become "world": held back
    assert stop_cut("hello", ["world"]) == (5, False)
    assert stop_cut("ab", ["abc", "bcd"]) == (0, False)  # the longest possible beginning is held
    assert stop_cut("", ["x"]) == (0, False)
    assert stop_cut("text", []) == (4, False)
    assert stop_cut("text", [""]) == (4, False)


def _byte_decode(ids: list[int]) -> str:
    return bytes(ids).decode("utf-8", errors="replace")


def test_detokenizer_holds_partial_utf8_characters():
    text = "héllo, 世界 😀!"
    detok = IncrementalDetokenizer(_byte_decode, prompt_ids=list(b"prompt: "))
    deltas = [detok.push(b) for b in text.encode()]
    assert "".join(deltas) == text
    assert not any(REPLACEMENT_CHAR in d for d in deltas)
    # the four bytes of the emoji give three empty deltas, then the whole character
    emoji_at = len("héllo, 世界 ".encode())
    assert deltas[emoji_at : emoji_at + 4] == ["", "", "", "😀"]


def test_detokenizer_uses_context_for_leading_space_rules():
    # A sentencepiece-like decoder drops the leading space of the first piece only.
    vocab = {1: "▁Hello", 2: "▁world", 3: "!"}
    decode = lambda ids: "".join(vocab[i] for i in ids).replace("▁", " ").removeprefix(" ")  # noqa: E731
    detok = IncrementalDetokenizer(decode, prompt_ids=[1])
    assert [detok.push(2), detok.push(3)] == [" world", "!"]


def test_penalties_and_bias_by_hand():
    logits = torch.tensor([1.0, 1.0, 1.0, 1.0])
    counts = torch.tensor([2.0, 1.0, 0.0, 0.0])
    # frequency 0.5 per occurrence, presence 0.25 once a token appeared, bias added as it is
    bias = torch.tensor([0, 0, 0, -100.0])
    out = penalized_logits(logits, counts, presence_penalty=0.25, frequency_penalty=0.5, bias=bias)
    assert out.tolist() == [1 - 1.0 - 0.25, 1 - 0.5 - 0.25, 1.0, -99.0]
    # negative penalties encourage repeats; nothing asked for returns the logits untouched
    assert penalized_logits(logits, counts, presence_penalty=-1.0).tolist() == [2.0, 2.0, 1.0, 1.0]
    assert penalized_logits(logits, counts) is logits


def test_token_logprobs_by_hand():
    logits = torch.tensor([0.5, 0.3, 0.2]).log()
    chosen, top = token_logprobs(logits, 1, 2)
    assert chosen == pytest.approx(math.log(0.3))
    assert [i for i, _ in top] == [0, 1] and [v for _, v in top] == pytest.approx([math.log(0.5), math.log(0.3)])
    assert token_logprobs(logits + 7.0, 2, 0) == (pytest.approx(math.log(0.2)), [])  # shift-invariant, no top


def test_token_bytes_are_exact_for_pieces_of_a_character(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    token_bytes = TokenBytes(tokenizer)
    text = "héllo 🐝 world"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    views = [token_bytes(token_id) for token_id in ids]
    assert b"".join(bytes(data) for _, data in views).decode("utf-8") == text
    # the bee's four bytes are split over tokens: a piece shows its bytes escaped, not U+FFFD
    assert any("\\xf0\\x9f" in shown for shown, _ in views)
    assert not any(REPLACEMENT_CHAR in shown for shown, _ in views)
    assert token_bytes(ids[0]) == ("h", (104,))
