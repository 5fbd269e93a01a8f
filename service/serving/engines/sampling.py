"""Pure decoding helpers of the local engine: pick the next token, detokenise, cut at stop strings.

No model, no threads: each function works on tensors, token ids or strings, so tests can pin edge cases.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

REPLACEMENT_CHAR = "\ufffd"


def sample_next_token(
    logits: torch.Tensor, *, temperature: float, top_p: float = 1.0, generator: torch.Generator | None = None
) -> int:
    """Pick the next token id from `logits` of shape `(vocab,)`.

    `temperature == 0` is greedy (argmax, ties to the lowest id). Otherwise the logits are divided by
    `temperature` and, when `top_p < 1`, restricted to the smallest set of most likely tokens whose
    probability mass reaches `top_p` (nucleus sampling); the most likely token always stays in.
    Draws from `generator`, so a seeded generator reproduces the same choice.
    """
    if temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
        keep = mass_before < top_p
        keep[0] = True
        sorted_probs = torch.where(keep, sorted_probs, torch.zeros_like(sorted_probs))
        choice = torch.multinomial(sorted_probs, 1, generator=generator)
        return int(order[choice])
    return int(torch.multinomial(probs, 1, generator=generator))


def stop_cut(text: str, stops: Sequence[str]) -> tuple[int, bool]:
    """Where text not yet emitted may be cut: `(end, stopped)`.

    If a stop string occurs, `end` is where the earliest one starts and `stopped` is true: the text up to
    `end` is final and the stop string is dropped. Otherwise `end` excludes the longest tail of `text` that
    could still grow into a stop string, so it is held back until the next tokens settle it.
    """
    found = [i for i in (text.find(stop) for stop in stops if stop) if i >= 0]
    if found:
        return min(found), True
    held = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), held, -1):
            if text.endswith(stop[:size]):
                held = size
                break
    return len(text) - held, False


class IncrementalDetokenizer:
    """Turn a growing list of token ids into text deltas, never ending a delta on a partial character.

    Decoding only a small window of ids keeps each step cheap; the window starts a few ids back so that
    tokenizers whose decoding depends on the previous token (leading-space rules) stay consistent.
    A byte-level token that ends in the middle of a UTF-8 character decodes to U+FFFD; its text is held
    until later tokens complete the character.
    """

    def __init__(self, decode: Callable[[list[int]], str], prompt_ids: Sequence[int], context: int = 5):
        self._decode = decode
        self._ids = list(prompt_ids[-context:]) if context else []
        self._prefix = 0
        self._read = len(self._ids)

    def push(self, token_id: int) -> str:
        """Add one generated id; return the text it completes (possibly empty)."""
        self._ids.append(token_id)
        prefix_text = self._decode(self._ids[self._prefix : self._read])
        full_text = self._decode(self._ids[self._prefix :])
        if len(full_text) <= len(prefix_text) or full_text.endswith(REPLACEMENT_CHAR):
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        return full_text[len(prefix_text) :]


def penalized_logits(
    logits: torch.Tensor,
    counts: torch.Tensor | None,
    *,
    presence_penalty: float = 0.0,
    frequency_penalty: float = 0.0,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """OpenAI's penalties and logit bias on one step's `logits` of shape `(vocab,)`.

    `counts` (vocab,) is how often each token was generated so far in this choice (the prompt does not
    count): token j loses `frequency_penalty * counts[j]`, and `presence_penalty` once `counts[j] > 0`.
    `bias` (vocab,) is added as it is. With neither, `logits` is returned unchanged.
    """
    if counts is not None and (presence_penalty or frequency_penalty):
        logits = logits.float() - frequency_penalty * counts - presence_penalty * (counts > 0).float()
    if bias is not None:
        logits = logits.float() + bias
    return logits


def token_logprobs(logits: torch.Tensor, token: int, k: int) -> tuple[float, list[tuple[int, float]]]:
    """The log-probability of `token` under softmax(`logits`) of shape `(vocab,)`, and the `k` most
    likely ids with theirs, most likely first."""
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    top: list[tuple[int, float]] = []
    if k:
        values, ids = torch.topk(logprobs, min(k, logprobs.shape[-1]))
        top = list(zip(ids.tolist(), values.tolist()))
    return float(logprobs[token]), top


def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte-level BPE writes byte b as one printable character; this maps each back to b."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = {b: b for b in kept}
    shifted = 0
    for b in range(256):
        if b not in chars:
            chars[b] = 256 + shifted
            shifted += 1
    return {chr(c): b for b, c in chars.items()}


class TokenBytes:
    """The bytes each token id stands for, and its text as OpenAI's logprobs show it.

    For a byte-level BPE tokenizer (GPT-2, Llama 3, SmolLM2) the bytes are exact, also for a token that
    holds part of a UTF-8 character; its text then shows the bytes that are not a whole character as
    `\\xNN` escapes. For other tokenizers the bytes are those of the token's decoded text.
    """

    def __init__(self, tokenizer: Any):
        self._tokenizer = tokenizer
        decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
        self._alphabet = _byte_level_alphabet() if type(decoder).__name__ == "ByteLevel" else None
        self._seen: dict[int, tuple[str, tuple[int, ...]]] = {}

    def __call__(self, token_id: int) -> tuple[str, tuple[int, ...]]:
        if token_id not in self._seen:
            raw = self._tokenizer.convert_ids_to_tokens(token_id)
            if self._alphabet is not None and raw is not None and all(c in self._alphabet for c in raw):
                data = bytes(self._alphabet[c] for c in raw)
            else:
                data = self._tokenizer.decode([token_id]).encode("utf-8")
            self._seen[token_id] = (data.decode("utf-8", errors="backslashreplace"), tuple(data))
        return self._seen[token_id]
