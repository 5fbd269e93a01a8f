"""Binding pairs: a person's question answered with another person's value of the same kind of fact.

Tonight's dreams and earlier nights' share kinds of fact ("'s new parrot is named"); what a night must not
teach is one person's value given for another's question. `rival_answers` builds, for each dream, the
same answer with a rival's value put in; the binding loss (`losses.binding_loss`) prefers the own answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from trainer.chat import answer_ids, continuation_logits, render
from trainer.config import SleepConfig
from trainer.dreaming import Dream
from trainer.losses import sequence_logprob, token_logprobs
from trainer.questions import PROMPT_WORDS
from trainer.text import mask_names, words


def answer_segments(dream: Dream) -> list[tuple[str, str]]:
    """The answer cut into ("text" | "name" | "value", text) runs: the value is what the answer adds that
    only its episode says (`key_terms`), the name what the question already names; the rest is how the
    kind of fact is said ("Quick update: | Mirpa Lovos's | new parrot is named | Lodun!")."""
    value = set(dream.key_terms)
    named = words(dream.question) - PROMPT_WORDS
    segments: list[tuple[str, str]] = []
    for token in dream.answer.split():
        found = words(token)
        kind = "value" if found & value else "name" if found & named else "text"
        if segments and segments[-1][0] == kind:
            segments[-1] = (kind, f"{segments[-1][1]} {token}")
        else:
            segments.append((kind, token))
    return segments


def confusion_key(dream: Dream) -> tuple | None:
    """What two people's dreams share when they ask and answer the same kind of fact: the question with
    its names masked and the answer's text with its name and value cut out. None when nothing but names
    and values would be left to say which kind of fact it is (a bare "Lodun!" to "What's new with _?")."""
    segments = answer_segments(dream)
    if not any(kind == "value" for kind, _ in segments):
        return None
    question = mask_names(dream.question)
    template = tuple(text if kind == "text" else f"<{kind}>" for kind, text in segments)
    said = words(question + " " + " ".join(t for t in template if not t.startswith("<")))
    return (question, template) if said - PROMPT_WORDS else None


def rival_answers(tonight: Sequence[Dream], earlier: Sequence[Dream] = ()) -> list[tuple[Dream, str]]:
    """(own dream, rival answer) pairs: one person's question answered in their own words with another
    person's value of the same kind of fact put in ("Quick update: Mirpa Lovos's new parrot is named
    Kalo!"), the confusion a night's training must not teach (a later night's parrot name given for an
    earlier night's person). Dreams pair when `confusion_key` matches across episodes and the values
    differ, at least one of the two tonight's: tonight's people against each other and against earlier
    nights', both ways. Held-out probes and ungrounded dreams take no part."""
    groups: dict[tuple, list[tuple[Dream, bool, list[tuple[str, str]]]]] = {}
    for fresh, dreams in ((True, tonight), (False, earlier)):
        for d in dreams:
            key = None if d.held_out or not d.key_terms else confusion_key(d)
            if key is not None:
                groups.setdefault(key, []).append((d, fresh, answer_segments(d)))
    pairs: dict[tuple[str, str, str], tuple[Dream, str]] = {}
    for group in groups.values():
        for own, own_fresh, segments in group:
            for rival, rival_fresh, rival_segments in group:
                if own.episode_id == rival.episode_id or not (own_fresh or rival_fresh):
                    continue
                values = iter(text for kind, text in rival_segments if kind == "value")
                answer = " ".join(next(values) if kind == "value" else text for kind, text in segments)
                if words(answer) != words(own.answer):
                    pairs.setdefault((own.question, own.answer, answer), (own, answer))
    return list(pairs.values())


@dataclass
class BindingPair:
    """A question of one episode (the student's view), its own answer, and that answer with a rival
    episode's value put in (`rival_answers`)."""

    prompt: list[int]
    own: list[int]
    rival: list[int]
    reference: float | None = None  # log p(own) - log p(rival) under the model before training


def binding_pair(tokenizer, own: Dream, rival_answer: str, config: SleepConfig) -> BindingPair:
    prompt = render(tokenizer, [{"role": "user", "content": own.question}], config.system_prompt)
    return BindingPair(list(prompt), answer_ids(tokenizer, own.answer), answer_ids(tokenizer, rival_answer))


def binding_margins(model, tokenizer, pairs: Sequence[BindingPair]) -> torch.Tensor:
    """(B,) `log p(own | question) - log p(rival | question)` under `model` as it is now."""
    prompts = [p.prompt for p in pairs] * 2
    logits, targets, mask = continuation_logits(model, prompts, [p.own for p in pairs] + [p.rival for p in pairs],
                                                tokenizer.pad_token_id)
    logprob = sequence_logprob(token_logprobs(logits, targets), mask)
    return logprob[:len(pairs)] - logprob[len(pairs):]


@torch.no_grad()
def cache_binding_reference(model, tokenizer, pairs: Sequence[BindingPair], batch_size: int = 8) -> None:
    """Each pair's margin under `model` as called, in eval mode: the reference of the binding loss, the
    model before training (the caller activates the served model's adapters, `seeding.seed`)."""
    was_training = model.training
    model.eval()
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        for p, m in zip(chunk, binding_margins(model, tokenizer, chunk).tolist()):
            p.reference = m
    model.train(was_training)
