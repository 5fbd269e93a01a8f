"""Binding pairs: a person's question answered with another person's value of the same kind of fact.

Tonight's dreams and earlier nights' share kinds of fact ("'s new parrot is named"); what a night must not
teach is one person's value given for another's question. `rival_answers` builds, for each dream, the
same answer with a rival's value put in; the binding loss (`losses.binding_loss`) prefers the own answer.
`swapped_values` pairs any answer with another episode's value of the same shape (a picnic's dish answered
with a potluck's), the confusion of conversational episodes, which share no kind of fact by their words.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from trainer.chat import answer_ids, continuation_logits, render
from trainer.config import SleepConfig
from trainer.dreaming import Dream
from trainer.losses import sequence_logprob, token_logprobs
from trainer.questions import PROMPT_WORDS
from trainer.text import mask_names, normal, values, words


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


def _value_tokens(dream: Dream, unasked: bool = False) -> list[tuple[int, str]]:
    """(index, surface) of the answer's tokens that carry a told value: a number or a name (`values`) that
    the teacher's answer took from the episode (`key_terms`), punctuation stripped ("Tuzyar." -> "Tuzyar");
    `unasked`: only those the question does not name (the person asked about is no value of the answer)."""
    told = values(dream.answer) & set(dream.key_terms)
    if unasked:
        told -= words(dream.question)
    out = []
    for i, token in enumerate(dream.answer.split()):
        surface = token.strip(".,;:!?\"'()").removesuffix("'s")
        if surface and normal(surface) in told:
            out.append((i, surface))
    return out


def _shape(value: str) -> str:
    return "number" if any(ch.isdigit() for ch in value) else "name"


def swapped_values(tonight: Sequence[Dream], earlier: Sequence[Dream] = (),
                   per_dream: int = 2) -> list[tuple[Dream, str]]:
    """(own dream, rival answer) pairs for the confusions `rival_answers` cannot see: the own answer with its
    first told value replaced by a value of the same shape (a number for a number, a name for a name) that
    another episode told, whatever kind of fact that was ("By the way, I was born in Tuzyar." against "...
    born in Kedlirwyn.", a name from a neighbour's move). The replies our runs got wrong were mostly these:
    the right sentence with another episode's value; a person's name is a rival too. Tonight's dreams take
    rivals from every other episode, earlier nights' dreams from tonight's only (what tonight could
    overwrite). Rivals are chosen by a hash of the question, so a night's pairs do not depend on the order
    of its dreams."""
    pools: dict[tuple[bool, str], dict[str, set[str]]] = {}  # (tonight?, shape) -> value -> episodes telling it
    for fresh, dreams in ((True, tonight), (False, earlier)):
        for d in dreams:
            if d.held_out:
                continue
            for _, surface in _value_tokens(d):
                pools.setdefault((fresh, _shape(surface)), {}).setdefault(surface, set()).add(d.episode_id)
    pairs: dict[tuple[str, str, str], tuple[Dream, str]] = {}
    for fresh, dreams in ((True, tonight), (False, earlier)):
        for own in dreams:
            found = [] if own.held_out else _value_tokens(own, unasked=True)
            if not found:
                continue
            index, surface = found[0]
            own_words = words(own.answer)
            sources = [(True, _shape(surface))] + ([(False, _shape(surface))] if fresh else [])
            candidates = sorted({v for source in sources for v, told_by in pools.get(source, {}).items()
                                 if own.episode_id not in told_by and normal(v) not in own_words})
            if not candidates:
                continue
            start = zlib.crc32(f"{own.episode_id}|{own.question}".encode()) % len(candidates)
            tokens = own.answer.split()
            for rival in (candidates[(start + k) % len(candidates)] for k in range(min(per_dream, len(candidates)))):
                swapped = tokens.copy()
                swapped[index] = tokens[index].replace(surface, rival, 1)
                pairs.setdefault((own.question, own.answer, rival), (own, " ".join(swapped)))
    return list(pairs.values())


def first_difference(own: Sequence[int], rival: Sequence[int]) -> int:
    """Index of the first token where two answers differ (the shared prefix's length); the last shared
    index when one is the other's prefix or they are the same."""
    for i, (a, b) in enumerate(zip(own, rival)):
        if a != b:
            return i
    return max(min(len(own), len(rival)) - 1, 0)


@dataclass
class BindingPair:
    """A question of one episode (the student's view), its own answer, and that answer with a rival
    episode's value put in (`rival_answers`, `swapped_values`)."""

    prompt: list[int]
    own: list[int]
    rival: list[int]
    reference: float | None = None  # log p(own) - log p(rival) under the model before training


def binding_pair(tokenizer, own: Dream, rival_answer: str, config: SleepConfig) -> BindingPair:
    prompt = render(tokenizer, [{"role": "user", "content": own.question}], config.system_prompt)
    return BindingPair(list(prompt), answer_ids(tokenizer, own.answer), answer_ids(tokenizer, rival_answer))


def binding_margins(model, tokenizer, pairs: Sequence[BindingPair], span: str = "answer") -> torch.Tensor:
    """(B,) `log p(own | question) - log p(rival | question)` under `model` as it is now; with `span`
    `first`, of the own and the rival token where the answers first differ, after the prefix they share
    (one pass: both are read from the same next-token distribution)."""
    if span == "first":
        cuts = [first_difference(p.own, p.rival) for p in pairs]
        logits, _, _ = continuation_logits(model, [p.prompt for p in pairs],
                                           [p.own[:k + 1] for p, k in zip(pairs, cuts)], tokenizer.pad_token_id)
        logprobs = torch.log_softmax(logits[:, -1].float(), dim=-1)  # each row's continuation ends at the last slot
        rows = torch.arange(len(pairs), device=logprobs.device)
        own = torch.tensor([p.own[k] for p, k in zip(pairs, cuts)], device=logprobs.device)
        rival = torch.tensor([p.rival[k] for p, k in zip(pairs, cuts)], device=logprobs.device)
        return logprobs[rows, own] - logprobs[rows, rival]
    prompts = [p.prompt for p in pairs] * 2
    logits, targets, mask = continuation_logits(model, prompts, [p.own for p in pairs] + [p.rival for p in pairs],
                                                tokenizer.pad_token_id)
    logprob = sequence_logprob(token_logprobs(logits, targets), mask)
    return logprob[:len(pairs)] - logprob[len(pairs):]


@torch.no_grad()
def cache_binding_reference(model, tokenizer, pairs: Sequence[BindingPair], batch_size: int = 8,
                            span: str = "answer") -> None:
    """Each pair's margin under the model before training: tonight's expert is still zero, so this is
    the served model (the reference of the binding loss)."""
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        for p, m in zip(chunk, binding_margins(model, tokenizer, chunk, span).tolist()):
            p.reference = m
