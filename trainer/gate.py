"""The eval gate: measure what the served model knows, then judge a candidate against it (design.md 4.5).

Before training, `read_served` asks the served model tonight's held-out probes and a sample of earlier
nights' dreams (`retention_pool`), greedily and as likelihoods. After training, `judge` asks the
candidate the same questions plus held-out general prompts whose reference replies are the base
model's (`general_reference`), and `verdict` turns the numbers into reasons to refuse it (none: accept).
Recall is judged as a gain over the served model on the same probes and retention as a ratio to its
recall of the same earlier dreams, so a hard night does not read as a failed one. A candidate refused
only for what it changed elsewhere may be judged once more with tonight's expert scaled down
(`softer_scale`, `judge_scaled`).
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from trainer.chat import answers
from trainer.config import SleepConfig
from trainer.dreaming import Dream
from trainer.text import words
from trainer.experts import EXPERT, adapters, scale_adapter
from trainer.likelihood import Likelihood, LikelihoodShift, likelihoods


def recalled(reply: str, key_terms: Sequence[str]) -> bool:
    """A reply recalls a dream when it names one of the dream's key terms."""
    return bool(words(reply) & set(key_terms))


def recalls(model, tokenizer, dreams: Sequence[Dream], config: SleepConfig) -> list[bool]:
    """Whether the closed-book greedy reply to each dream's question names one of its key terms."""
    replies = answers(model, tokenizer, [d.question for d in dreams], config)
    return [recalled(r, d.key_terms) for d, r in zip(dreams, replies)]


@dataclass
class ServedReading:
    """What the served model answers before tonight: the reference the candidate is judged against."""

    probes: list[Dream]  # tonight's held-out probes
    pool: list[Dream]  # earlier dreams sampled for retention (read as likelihoods)
    greedy_pool: list[Dream]  # those of them also asked greedily (none when the gate reads likelihoods)
    replies: dict[str, str]  # question -> the served model's greedy closed-book reply
    recall: float | None  # of tonight's probes
    pool_recalled: list[bool]  # per `greedy_pool` dream
    likely: list[Likelihood]  # per `probes + pool` answer

    @property
    def known(self) -> int:
        """How many earlier dreams asked greedily the served model answers: the evidence behind retention."""
        return sum(self.pool_recalled)


def read_served(model, tokenizer, probes: Sequence[Dream], earlier_dreams: Sequence[dict],
                asked_tonight: Collection[str], teacher: Sequence[str] | None,
                config: SleepConfig) -> ServedReading:
    """Ask the served model (`teacher`'s adapters on `model`) tonight's probes and earlier dreams."""
    probes = list(probes)
    pool = retention_pool(earlier_dreams, config.gate_retention_sample, random.Random(config.seed),
                          asked_tonight=asked_tonight)
    # Greedy replies to the earlier dreams are most of the gate's cost (two 32-token generations each);
    # a gate that judges on likelihoods reads their retention from one teacher-forced pass instead.
    greedy_pool = pool if asks_earlier_greedily(config) else []
    asked = probes + greedy_pool
    with adapters(model, teacher):
        replies = answers(model, tokenizer, [d.question for d in asked], config)
    hits = [recalled(r, d.key_terms) for d, r in zip(asked, replies)]
    with adapters(model, teacher):
        likely = likelihoods(model, tokenizer, _items(probes + pool), config.system_prompt,
                             config.generation_batch_size)
    return ServedReading(
        probes=probes, pool=pool, greedy_pool=greedy_pool,
        replies=dict(zip([d.question for d in asked], replies)),
        recall=sum(hits[:len(probes)]) / len(probes) if probes else None,
        pool_recalled=hits[len(probes):], likely=likely)


def asks_earlier_greedily(config: SleepConfig) -> bool:
    return config.gate_reading != "likelihood"


@dataclass
class GeneralReference:
    """Held-out general prompts and the base model's replies: what the candidate must still say."""

    prompts: list[str]
    replies: list[str]
    likely: list[Likelihood]  # the base's likelihood of its own replies

    @property
    def items(self) -> list[tuple[str, str, tuple]]:
        return [(q, a, ()) for q, a in zip(self.prompts, self.replies)]  # no key terms: every token counts


def general_reference(model, tokenizer, prompts: Sequence[str], base_replies: Sequence[str],
                      config: SleepConfig) -> GeneralReference:
    """The base model's likelihoods of its own `base_replies` to the gate's general `prompts`."""
    reference = GeneralReference(list(prompts), list(base_replies), [])
    with adapters(model, None):
        reference.likely = likelihoods(model, tokenizer, reference.items, config.system_prompt,
                                       config.generation_batch_size)
    return reference


@dataclass
class GateNumbers:
    recall: float | None  # candidate's recall of tonight's held-out probes
    served_recall: float | None  # the served model's recall of the same probes
    probes: int
    retention: float | None  # candidate's recall of the earlier dreams asked over the served model's
    retention_set: int  # how many of them the served model answers: the evidence behind `retention`
    general: float | None  # agreement with the base model's replies to held-out general prompts
    shift: LikelihoodShift | None = None  # the graded reading of the same three checks


@dataclass
class GateReport:
    reasons: list[str]  # why the candidate must not replace the served model (empty: accept)
    metrics: dict  # recall, retention, general agreement and the likelihood shift, as the run reports them
    numbers: GateNumbers  # what the verdict read (`softer_scale` reads it again)


def judge(model, tokenizer, served: ServedReading, general: GeneralReference, config: SleepConfig) -> GateReport:
    """Ask the candidate (`model` with every adapter active) what `served` was asked, and judge it.
    Sets `recalled` on tonight's probes (the retention pool of later nights starts from those)."""
    probes, pool, greedy_pool = served.probes, served.pool, served.greedy_pool
    replies = answers(model, tokenizer, [d.question for d in probes + greedy_pool] + general.prompts, config)
    for d, reply in zip(probes, replies):
        d.recalled = recalled(reply, d.key_terms)
    recall = sum(d.recalled for d in probes) / len(probes) if probes else None
    candidate = [recalled(r, d.key_terms) for d, r in zip(greedy_pool, replies[len(probes):])]
    retention = retention_ratio(served.pool_recalled, candidate)
    now = replies[len(probes) + len(greedy_pool):]
    agreement = (sum(_same_answer(a, b) for a, b in zip(now, general.replies)) / len(general.prompts)
                 if general.prompts else None)
    likely = likelihoods(model, tokenizer, _items(probes + pool) + general.items, config.system_prompt,
                         config.generation_batch_size)
    shift = LikelihoodShift.between(served.likely + general.likely, likely, len(probes), len(pool))
    numbers = GateNumbers(recall=recall, served_recall=served.recall, probes=len(probes), retention=retention,
                          retention_set=served.known, general=agreement, shift=shift)
    greedy_retention = greedy_retention_counts(greedy_pool, served.pool_recalled, candidate)
    if not asks_earlier_greedily(config):  # the same keys, each None: not asked, rather than asked and never answered
        greedy_retention = dict.fromkeys(greedy_retention)
    metrics = {
        "recall": recall,
        "served_recall": served.recall,  # the served model's recall of the same probes, before tonight
        "retention": retention,
        "general_agreement": agreement,
        "probes": len(probes),
        "retention_asked": len(pool),
        **greedy_retention,
        # the graded reading: mean change in log-probability per key-term token (nats), candidate - served
        "likelihood": shift.to_dict(),
    }
    return GateReport(verdict(numbers, config), metrics, numbers)


def judge_scaled(model, tokenizer, served: ServedReading, general: GeneralReference,
                 config: SleepConfig, refused: GateReport, scale: float) -> GateReport:
    """Tonight's expert (`EXPERT`) scaled by `scale` for good (the candidate saved is the scaled one) and
    judged again (`softer_scale` says when); the metrics keep why it was refused at full scale, and its
    readings there."""
    scale_adapter(model, EXPERT, scale)
    again = judge(model, tokenizer, served, general, config)
    again.metrics["expert_scale"] = scale
    again.metrics["full_scale"] = {"reasons": refused.reasons, **{k: refused.metrics[k] for k in (
        "recall", "general_agreement", "likelihood")}}
    return again


def _items(dreams: Sequence[Dream]) -> list[tuple[str, str, list[str]]]:
    return [(d.question, d.answer, d.key_terms) for d in dreams]


def retention_pool(earlier_dreams: Sequence[dict], size: int, rng: random.Random,
                   asked_tonight: Collection[str] = ()) -> list[Dream]:
    """Up to `size` earlier dreams for the gate's retention check: the held-out probes that the model
    which learned them recalled (never trained: the cleanest evidence) first, then trained dreams, each
    group in random order so every night is represented. A question asked twice (a teacher answer and a
    quote) is one question: asked once, recalled when the reply names a key term of either. Questions
    that did not single out their episode (`Dream.specific`), or that tonight asks again of another
    episode, test no one memory and are left out."""
    skip = set(asked_tonight)
    candidates = [Dream.from_dict(d) for d in earlier_dreams
                  if d.get("key_terms") and d.get("specific", True) and d["question"] not in skip]
    probes = [d for d in candidates if d.held_out and d.recalled]
    trained = [d for d in candidates if not d.held_out]
    rng.shuffle(probes)
    rng.shuffle(trained)
    pool: dict[str, Dream] = {}
    for d in probes + trained:
        if d.question in pool:
            first = pool[d.question]
            first.key_terms = list(dict.fromkeys(first.key_terms + d.key_terms))
        elif len(pool) < size:
            pool[d.question] = d
    return list(pool.values())


def retention_ratio(served: Sequence[bool], candidate: Sequence[bool]) -> float | None:
    """The candidate's recall of earlier dreams over the served model's, on the same questions (the
    benchmark's retention; above 1 when it answers more). Counting only the questions the served model
    answered would see every answer lost and none gained: answers near the edge flip both ways under any
    update, so that fraction reads well below 1 for a model that forgot nothing. None: nothing known."""
    known = sum(served)
    return sum(candidate) / known if known else None


def greedy_retention_counts(pool: Sequence[Dream], served: Sequence[bool], candidate: Sequence[bool]) -> dict:
    """What the greedy replies to the earlier dreams asked say: how many the served model answered (the
    evidence behind `retention`), how many of those the candidate lost, how many it answers that the served
    model did not, and the same per prompt form."""
    return {
        "retention_set": sum(served),
        "retention_lost": sum(s and not c for s, c in zip(served, candidate)),
        "retention_gained": sum(c and not s for s, c in zip(served, candidate)),
        "retention_by_form": retention_by_form(pool, served, candidate),
    }


def prompt_form(dream: Dream) -> str:
    """What an earlier dream is: 'held-out' (a probe) or 'trained', asking a 'question' or a 'cloze' prompt."""
    return f"{'held-out' if dream.held_out else 'trained'} {'cloze' if dream.cloze else 'question'}"


def retention_by_form(pool: Sequence[Dream], served: Sequence[bool], candidate: Sequence[bool]) -> dict:
    """Per `prompt_form`: how many earlier dreams were asked, and how many the served model and the
    candidate answered: which kind of prompt a night's forgetting shows in."""
    out: dict[str, dict[str, int]] = {}
    for d, s, c in zip(pool, served, candidate):
        row = out.setdefault(prompt_form(d), {"asked": 0, "served": 0, "candidate": 0})
        row["asked"] += 1
        row["served"] += s
        row["candidate"] += c
    return out


def verdict(gate: GateNumbers, config: SleepConfig) -> list[str]:
    """Why the candidate must not replace the served model (empty: accept). Below `gate_min_probes` a
    number is noise, not evidence: it is only reported. With `gate_reading: likelihood` the same three
    checks read the change in the answers' log-probability instead; with `open` nothing is refused."""
    return list(failed_checks(gate, config).values())


def reads_likelihood(gate: GateNumbers, config: SleepConfig) -> bool:
    """Whether the checks read the likelihood shift (configured, and measured) or the greedy numbers."""
    return config.gate_reading == "likelihood" and gate.shift is not None


def failed_checks(gate: GateNumbers, config: SleepConfig) -> dict[str, str]:
    """`verdict`'s reasons keyed by the check that gave each: `recall`, `recall_floor`, `retention` or
    `general`."""
    if config.gate_reading == "open":
        return {}
    if reads_likelihood(gate, config):
        return likelihood_failures(gate.shift, config)
    reasons = {}
    if gate.recall is not None and gate.probes >= config.gate_min_probes:
        gain = gate.recall - (gate.served_recall or 0.0)
        if gain < config.min_recall_gain - 1e-9:
            reasons["recall"] = (f"recall of tonight's {gate.probes} held-out probes {gate.recall:.2f} is "
                                 f"{gain:+.2f} over the served model's {gate.served_recall or 0.0:.2f} "
                                 f"(< {config.min_recall_gain:+.2f})")
        if gate.recall < config.min_recall:
            reasons["recall_floor"] = (f"recall of tonight's held-out probes {gate.recall:.2f} < "
                                       f"{config.min_recall}")
    if (gate.retention is not None and gate.retention_set >= config.gate_min_probes
            and gate.retention < config.min_retention - 1e-9):
        reasons["retention"] = (f"retention of earlier dreams {gate.retention:.2f} (recall over the served "
                                f"model's, which answers {gate.retention_set}) < {config.min_retention}")
    if gate.general is not None and gate.general < 1 - config.max_general_drop - 1e-9:
        reasons["general"] = (f"general agreement with the base {gate.general:.2f} < "
                              f"{1 - config.max_general_drop:.2f}")
    return reasons


def likelihood_failures(shift: LikelihoodShift, config: SleepConfig) -> dict[str, str]:
    """`failed_checks` on the graded reading: changes in nats per token, candidate minus served model."""
    reasons = {}
    if (shift.recall_gain is not None and shift.probes >= config.gate_min_probes
            and shift.recall_gain <= config.min_recall_logprob_gain):
        reasons["recall"] = (f"tonight's {shift.probes} held-out answers gained {shift.recall_gain:+.3f} "
                             f"nats per key-term token over the served model "
                             f"(needs > {config.min_recall_logprob_gain:+.3f})")
    if (shift.retention_change is not None and shift.retention_asked >= config.gate_min_probes
            and shift.retention_change < -config.max_retention_logprob_drop):
        reasons["retention"] = (f"{shift.retention_asked} earlier dreams' answers changed "
                                f"{shift.retention_change:+.3f} nats per key-term token (may lose at most "
                                f"{config.max_retention_logprob_drop:.3f})")
    if shift.general_change is not None and shift.general_change < -config.max_general_logprob_drop:
        reasons["general"] = (f"the base's general replies changed {shift.general_change:+.3f} nats per "
                              f"token (may lose at most {config.max_general_logprob_drop:.3f})")
    return reasons


def allowed_share(gate: GateNumbers, check: str, config: SleepConfig) -> float:
    """The share of a failed check's change that its bound allows (below 1; 0 for recall: tonight's gain
    is what the candidate is for, so no smaller change of it passes)."""
    if check.startswith("recall"):
        return 0.0
    if reads_likelihood(gate, config):
        if check == "retention":
            return config.max_retention_logprob_drop / -gate.shift.retention_change
        return config.max_general_logprob_drop / -gate.shift.general_change
    if check == "retention":
        return (1 - config.min_retention) / max(1e-9, 1 - gate.retention)
    return config.max_general_drop / max(1e-9, 1 - gate.general)


def softer_scale(gate: GateNumbers, config: SleepConfig) -> float | None:
    """The scale of tonight's expert to try once more when the candidate was refused only for what it
    changed elsewhere (the base's general replies, earlier dreams) and not for tonight's recall: the
    largest share of each failed change its bound allows, less a tenth for margin, as if the change
    shrank in proportion to the expert (it shrinks at least that fast near the base's own replies, whose
    log-probability is at a maximum). None: nothing to try (accepted, recall failed, or the scale would be
    below `min_expert_scale`)."""
    failed = failed_checks(gate, config)
    if not failed or config.min_expert_scale is None:
        return None
    scale = 0.9 * min(allowed_share(gate, check, config) for check in failed)
    return scale if scale >= config.min_expert_scale else None


def _same_answer(a: str, b: str) -> bool:
    """Two replies agree when they share most content words (the gate's general check)."""
    wa, wb = words(a), words(b)
    if not wa and not wb:
        return True
    return len(wa & wb) / max(len(wb), 1) >= 0.5
