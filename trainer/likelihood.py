"""The gate's graded reading: how likely a model finds a known answer, asked closed-book.

A greedy reply names a key term or it does not. With the 15-20 probes a night writes, one flip moves
recall by five points, and an update that raises an answer's probability without making it the argmax
reads as nothing. The mean log-probability of the answer's tokens, teacher-forced after the question
asked alone, moves with every update; the served model and the candidate are read on the same answers
and compared answer by answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from trainer.chat import answer_ids, continuation_logits, end_of_turn, render
from trainer.text import key_term_spans
from trainer.losses import token_logprobs

Item = tuple[str, str, Sequence[str]]  # (question, answer, key terms)


@dataclass(frozen=True)
class Likelihood:
    answer: float  # mean log-probability per token of the whole answer, end of turn included
    key: float | None  # the same over the tokens that spell one of its key terms (None: no token does)

    @property
    def reading(self) -> float:
        """What the gate compares: the key terms where the answer has them (the fact), else the answer."""
        return self.key if self.key is not None else self.answer


def key_token_mask(tokenizer, answer: str, key_terms: Sequence[str]) -> list[bool] | None:
    """Per token of `answer_ids(tokenizer, answer)`: whether it overlaps a key term. None when the
    tokenizer gives no character offsets (a slow tokenizer)."""
    if not getattr(tokenizer, "is_fast", False):
        return None
    spans = key_term_spans(answer, key_terms)
    offsets = tokenizer(answer, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return [any(s < end and start < e for s, e in spans) for start, end in offsets] + [False]


@torch.no_grad()
def likelihoods(model, tokenizer, items: Sequence[Item], system_prompt: str | None = None,
                batch_size: int = 8) -> list[Likelihood]:
    """The likelihood of each answer after its question asked alone, in the serving format."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_of_turn(tokenizer)
    was_training = model.training
    model.eval()
    out: list[Likelihood] = []
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        prompts = [render(tokenizer, [{"role": "user", "content": q}], system_prompt) for q, _, _ in chunk]
        continuations = [answer_ids(tokenizer, a) for _, a, _ in chunk]
        logits, targets, _ = continuation_logits(model, prompts, continuations, pad)
        logprobs = token_logprobs(logits, targets)
        width = targets.shape[1]
        for i, (_, answer, keys) in enumerate(chunk):
            row = logprobs[i, width - len(continuations[i]):]
            mask = key_token_mask(tokenizer, answer, keys) if keys else None
            key = None
            if mask is not None and len(mask) == len(row) and any(mask):
                key = row[torch.tensor(mask, device=row.device)].mean().item()
            out.append(Likelihood(answer=row.mean().item(), key=key))
    model.train(was_training)
    return out


def mean_change(before: Sequence[Likelihood], after: Sequence[Likelihood]) -> float | None:
    """The mean over items of after's reading minus before's (nats per token); None without items."""
    if len(before) != len(after):
        raise ValueError(f"{len(before)} readings before and {len(after)} after: not the same items")
    if not before:
        return None
    return sum(a.reading - b.reading for b, a in zip(before, after)) / len(before)


@dataclass(frozen=True)
class LikelihoodShift:
    """The candidate's readings minus the served model's, on the gate's three sets of answers."""

    recall_gain: float | None  # tonight's held-out probes: what it learned
    retention_change: float | None  # earlier nights' dreams: what it kept
    general_change: float | None  # the base's replies to the held-out general prompts: what it still does
    probes: int
    retention_asked: int

    @classmethod
    def between(cls, before: Sequence[Likelihood], after: Sequence[Likelihood], probes: int,
                retention_asked: int) -> LikelihoodShift:
        """`before` and `after` list the same answers: `probes` probes, then `retention_asked` earlier
        dreams, then the general replies."""
        cut = probes + retention_asked
        return cls(recall_gain=mean_change(before[:probes], after[:probes]),
                   retention_change=mean_change(before[probes:cut], after[probes:cut]),
                   general_change=mean_change(before[cut:], after[cut:]),
                   probes=probes, retention_asked=retention_asked)

    def to_dict(self) -> dict:
        return {"recall_gain": self.recall_gain, "retention_change": self.retention_change,
                "general_change": self.general_change}
