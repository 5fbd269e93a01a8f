"""Selection: which of tonight's scored dreams train, and which are held out as the gate's probes.

Per episode, the dreams that restate something only that episode told, about one of its values; the
best-grounded always trains, probes come from the rest (cloze prompts first), then the top-k by score and
a few random others. A probe's question never trains, in any phrasing.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from trainer.config import SleepConfig
from trainer.text import words

if TYPE_CHECKING:
    from trainer.dreaming import Dream


def select(dreams: list[Dream], config: SleepConfig, rng: random.Random,
           values_by_id: dict[str, set[str]] | None = None) -> list[Dream]:
    """Per episode: hold out probes, keep the top-k by score plus b random others, of the dreams whose
    answer restates something only that episode told (`key_terms`).

    `values_by_id`: each episode's told values (`text.values`, distinctive ones). Where an episode has
    any, only the dreams whose question or key terms name one train or probe: a fact among small talk is
    dreamed about its value or its person ("What do you know about Kaett Dunvos?" -> "a ferry pilot"),
    not about the weather ("What is my laptop called?" -> "My laptop keeps making a weird noise."). An
    episode with none keeps every grounded dream."""
    kept: list[Dream] = []
    by_episode: dict[str, list[Dream]] = {}
    for d in dreams:
        by_episode.setdefault(d.episode_id, []).append(d)
    for eid, group in by_episode.items():
        episode_values = (values_by_id or {}).get(eid, set())

        def carries(d: Dream) -> bool:  # restates something only this episode told, about one of its values
            if not episode_values or not d.key_terms:
                return bool(d.key_terms)
            return bool((set(d.key_terms) | words(d.question)) & episode_values)

        # per question the best-scored answer the teacher wrote, and the quote: two phrasings of a fact
        best: dict[tuple[str, bool], Dream] = {}
        for d in group:
            key = (d.question, d.source == "quote")
            if key not in best or d.score > best[key].score:
                best[key] = d
        group = sorted((d for d in best.values() if carries(d)), key=lambda d: -d.score)
        if not group:
            continue
        # the best-grounded dream always trains; probes come from the rest, cloze prompts first: a probe's
        # question never trains, and a cloze is the phrasing no user asks, so it costs recall least
        grounded = [d for d in group[1:] if d.specific and d.question != group[0].question]
        wanted = min(config.held_out_per_episode, len(grounded))
        clozes, questions = [d for d in grounded if d.cloze], [d for d in grounded if not d.cloze]
        probes = rng.sample(clozes, min(wanted, len(clozes)))
        probes += rng.sample(questions, wanted - len(probes))
        for p in probes:
            p.held_out = True
        asked = {p.question for p in probes}  # a probe's question is never trained, in any phrasing
        rest = [d for d in group if d.question not in asked]
        top, others = rest[: config.keep_top_k], rest[config.keep_top_k:]
        kept += probes + top + rng.sample(others, min(config.keep_random, len(others)))
    training = {id(d) for d in kept if not d.held_out}
    for d in dreams:
        if id(d) not in training:
            d.teacher_logits = None
    return kept
