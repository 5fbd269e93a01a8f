"""One night's sleep, top to bottom: setup, dream, seed, evaluate, save (design.md section 4).

    result = sleep(episodes, base_model="models/SmolLM2-135M-Instruct", adapter_dir=None,
                   earlier_dreams=[], config=SleepConfig.from_yaml("cpu-default"), out_dir="runs/night-1")

`episodes` are dicts with `messages` (the chat) and `id`; nothing else of them is read. The result
carries the candidate adapter folder (standard PEFT LoRA), the metrics, the dreams to keep for the
next nights (held-out probes included: they measure retention later) and the gate's verdict.
With `growth_mode: layers` the candidate is a new base folder instead (`model_dir`, no adapter).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from trainer import prompts, seal
from trainer.chat import decode, generate, render
from trainer.config import SleepConfig
from trainer.dreaming import Dream, dream, rival_answers, words
from trainer.experts import (
    EXPERT,
    MEMORY,
    PREVIOUS,
    adapter_factors,
    adapters,
    concatenate,
    grow_expert,
    grow_student_layers,
    load_factors,
    merge,
    read_experts,
    read_growth,
    save_adapter,
    save_model,
)
from trainer.likelihood import LikelihoodShift, likelihoods
from trainer.seeding import Example, binding_pair, build_example, cache_teacher, dream_example, seed
from trainer.semantic import load_similarity

Progress = Callable[[str, int, int, float | None], None]


@dataclass
class SleepResult:
    adapter_dir: Path | None  # the candidate PEFT LoRA folder; None in `layers` growth mode
    accepted: bool
    metrics: dict
    dreams: list[dict] = field(default_factory=list)  # to keep: pass back as `earlier_dreams` next night
    reasons: list[str] = field(default_factory=list)  # why the gate rejected it (empty when accepted)
    model_dir: Path | None = None  # `layers` growth mode: the candidate base folder (None in `lora` mode)


def load_model(path: str | Path, config: SleepConfig):
    """Tokenizer and model on the configured device and dtype, in eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=config.resolved_dtype())
    return tokenizer, model.to(config.resolved_device()).eval()


def answers(model, tokenizer, questions: Sequence[str], config: SleepConfig, context=None) -> list[str]:
    """Greedy replies to questions asked alone (closed-book), or after `context` messages."""
    chats = [(context[i] if context else []) + [{"role": "user", "content": q}] for i, q in enumerate(questions)]
    out = generate(model, tokenizer, [render(tokenizer, c, config.system_prompt) for c in chats],
                   max_new_tokens=config.eval_max_new_tokens, batch_size=config.generation_batch_size)
    return [decode(tokenizer, ids) for ids in out]


def recalled(reply: str, key_terms: Sequence[str]) -> bool:
    return bool(words(reply) & set(key_terms))


def recalls(model, tokenizer, dreams: Sequence[Dream], config: SleepConfig) -> list[bool]:
    """Whether the closed-book greedy reply to each dream's question names one of its key terms."""
    replies = answers(model, tokenizer, [d.question for d in dreams], config)
    return [recalled(r, d.key_terms) for d, r in zip(dreams, replies)]


def sleep(
    episodes: Sequence[dict],
    *,
    base_model: str | Path,
    adapter_dir: str | Path | None,
    earlier_dreams: Sequence[dict] = (),
    config: SleepConfig,
    out_dir: str | Path,
    served_base: str | None = None,
    night: str | None = None,
    progress: Progress | None = None,
    show_progress: bool = False,
) -> SleepResult:
    """Consolidate `episodes` into a new expert on top of `adapter_dir` (None: the first night).

    With `config.growth_mode == "layers"`, `config.grown_layers` decoder layers are grown instead (output
    projections zero: the function is unchanged) and trained alone, every teacher being the model
    before growth; the candidate is a new base folder, `out_dir / "model"` (`SleepResult.model_dir`,
    `adapter_dir` None). The next night passes that folder as `base_model`, with `adapter_dir=None`. An
    `adapter_dir` given in this mode is a LoRA adapter over `base_model` (the stack served before a
    switch of mode): it is merged into the weights before growing, so the new base carries it.
    """
    started = time.monotonic()
    out_dir = Path(out_dir)
    night = night or time.strftime("%Y-%m-%dT%H:%M:%S")
    report = progress or (lambda *_: None)
    seconds: dict[str, float] = {}
    layers_mode = config.growth_mode == "layers"

    # --- setup ------------------------------------------------------------------------------------
    report("setup", 0, 1, None)
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    tokenizer, model = load_model(base_model, config)
    experts: list[dict] = []
    teacher: list[str] | None = None  # the current model: previous stack, or the bare base
    frozen: list[str] = []
    merge_report = None
    if adapter_dir is not None and layers_mode:
        from peft import PeftModel

        if not (Path(adapter_dir) / "adapter_config.json").is_file():
            raise ValueError(f"{adapter_dir} is not a LoRA adapter: in growth_mode 'layers' the previous "
                             "night's model folder is passed as base_model, with adapter_dir=None.")
        model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload().eval()
    elif adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir), adapter_name=PREVIOUS).eval()
        experts = read_experts(adapter_dir)
        teacher, frozen = [PREVIOUS], [PREVIOUS]
        previous_rank = sum(e["rank"] for e in experts)
        if previous_rank + config.expert_rank > config.max_lora_rank:
            merged, merge_report = merge(adapter_factors(model, PREVIOUS), config.max_lora_rank - config.expert_rank)
            targets = sorted(model.peft_config[PREVIOUS].target_modules)
            load_factors(model, MEMORY, merged, targets)
            frozen = [MEMORY]
            experts = [{"name": "merged", "rank": merge_report.rank_after, "merged": [e["name"] for e in experts]}]
    writer = seal.load_writer(model, adapter_dir, config)  # SEAL: the previous night's dream writer, if any
    similarity = load_similarity(config.semantic_model, model, tokenizer)
    report("setup", 1, 1, None)
    seconds["setup"] = time.monotonic() - started

    # --- dream: the current model, with each episode in context, writes tonight's dreams ------------
    t0 = time.monotonic()
    with adapters(model, teacher):
        dreams = dream(model, tokenizer, episodes, config, night=night, progress=progress, writer=writer)
    seal.unload_writer(model, writer)
    probes = [d for d in dreams if d.held_out]
    trained = [d for d in dreams if not d.held_out]
    seconds["dream"] = time.monotonic() - t0

    # --- what the served model knows now: the gate judges the candidate against it ------------------
    t0 = time.monotonic()
    pool = retention_pool(earlier_dreams, config.gate_retention_sample, random.Random(config.seed),
                          asked_tonight={d.question for d in dreams})
    # Greedy replies to the earlier dreams are most of the gate's cost (two 32-token generations each);
    # a gate that judges on likelihoods reads their retention from one teacher-forced pass instead.
    asks_earlier_greedily = config.gate_reading != "likelihood"
    greedy_pool = pool if asks_earlier_greedily else []
    with adapters(model, teacher):
        served_replies = answers(model, tokenizer, [d.question for d in probes + greedy_pool], config)
    served = [recalled(r, d.key_terms) for d, r in zip(probes + greedy_pool, served_replies)]
    served_recall = sum(served[:len(probes)]) / len(probes) if probes else None
    served_pool = served[len(probes):]
    known = sum(served_pool)
    with adapters(model, teacher):
        served_likely = likelihoods(model, tokenizer, _items(probes + pool), config.system_prompt,
                                    config.generation_batch_size)
    seconds["served"] = time.monotonic() - t0

    # --- SEAL / ReST-EM (optional): keep the dream sets whose throw-away adapter raised held-out recall,
    # and fine-tune the dream writer on them (trainer/seal.py); the model is left as it was
    seal_metrics, writer_factors = None, None
    if config.seal_outer_loop:
        t0 = time.monotonic()
        outcome = seal.outer_loop(model, tokenizer, trained, probes, episodes, config, teacher=teacher,
                                  frozen=frozen, similarity=similarity, progress=progress)
        writer_factors, writer_metrics = seal.train_writer(model, tokenizer, outcome.winners, episodes,
                                                           config)
        kept = {id(d) for d in outcome.kept}
        dreams = [d for d in dreams if d.held_out or id(d) in kept]
        trained = outcome.kept
        seal_metrics = {**outcome.metrics, "writer": writer_metrics}
        seconds["seal"] = time.monotonic() - t0

    # --- seed: grow tonight's expert (or layers) and train only it ----------------------------------
    t0 = time.monotonic()
    grown: list[int] = []
    if layers_mode:  # the teachers (`adapters`) skip the grown layers: they are the model before growth
        grown = grow_student_layers(model, config.grown_layers)
    else:
        model = grow_expert(model, rank=config.expert_rank, alpha=config.expert_alpha,
                            target_modules=config.target_modules, frozen=frozen, seed=config.seed)
    by_id = {str(e.get("id", "")): e for e in episodes}
    examples: list[Example] = []
    for d in trained:
        examples.append(dream_example(tokenizer, d, by_id[d.episode_id], teacher, config))
        d.teacher_logits = None  # the example holds them now
    earlier_trained = [Dream.from_dict(d) for d in earlier_dreams if not d.get("held_out")]
    replayable = earlier_trained
    draws = config.steps * round(config.batch_size * config.replay_fraction)
    if len(replayable) > draws:  # training cannot use more: spare the teacher passes, keep every night's share
        replayable = random.Random(config.seed).sample(replayable, draws)
    for question, answer in replay_pairs(model, tokenizer, replayable, teacher, config,
                                         dict(zip([d.question for d in probes + greedy_pool], served_replies))):
        p = render(tokenizer, [{"role": "user", "content": question}], config.system_prompt)
        examples.append(build_example(tokenizer, p, p, answer, teacher, "replay"))
    general_train = list(prompts.TRAIN[: config.general_prompts])
    general_gate = list(prompts.GATE[: config.gate_general_prompts])
    general_teacher = teacher if config.general_teacher == "served" else None
    with adapters(model, None):  # the gate compares with the base's replies whatever trains
        general_answers = answers(model, tokenizer, general_train + general_gate, config)
    if general_teacher is not None:
        with adapters(model, general_teacher):
            general_answers[:len(general_train)] = answers(model, tokenizer, general_train, config)
    base_gate = general_answers[len(general_train):]
    general_items = [(q, a, ()) for q, a in zip(general_gate, base_gate)]  # no key terms: every token counts
    with adapters(model, None):
        base_likely = likelihoods(model, tokenizer, general_items, config.system_prompt,
                                  config.generation_batch_size)
    for q, a in zip(general_train, general_answers):
        p = render(tokenizer, [{"role": "user", "content": q}], config.system_prompt)
        examples.append(build_example(tokenizer, p, p, a, general_teacher, "general"))
    binding = []
    if config.binding_weight > 0:
        binding = [binding_pair(tokenizer, own, rival, config)
                   for own, rival in rival_answers(trained, earlier_trained)]
    cache_teacher(model, tokenizer, [e for e in examples if e.cached is None])
    bar = None
    if show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, desc="seed", leave=False)
    train_metrics = seed(model, tokenizer, examples, config, similarity=similarity, progress=progress, bar=bar,
                         binding=binding, deadline=seed_deadline(started, seconds, config))
    if bar is not None:
        bar.close()
    seconds["seed"] = time.monotonic() - t0

    # --- evaluate: the gate ------------------------------------------------------------------------
    t0 = time.monotonic()
    report("evaluate", 0, 1, None)
    replies = answers(model, tokenizer, [d.question for d in probes + greedy_pool] + general_gate, config)
    for d, reply in zip(probes, replies):
        d.recalled = recalled(reply, d.key_terms)
    recall = sum(d.recalled for d in probes) / len(probes) if probes else None
    candidate = [recalled(r, d.key_terms) for d, r in zip(greedy_pool, replies[len(probes):])]
    retention = retention_ratio(served_pool, candidate)
    now = replies[len(probes) + len(greedy_pool):]
    general = sum(_same_answer(a, b) for a, b in zip(now, base_gate)) / len(general_gate) if general_gate else None
    likely = likelihoods(model, tokenizer, _items(probes + pool) + general_items, config.system_prompt,
                         config.generation_batch_size)
    shift = LikelihoodShift.between(served_likely + base_likely, likely, len(probes), len(pool))
    report("evaluate", 1, 1, None)
    gate = GateNumbers(recall=recall, served_recall=served_recall, probes=len(probes), retention=retention,
                       retention_set=known, general=general, shift=shift)
    reasons = verdict(gate, config)
    seconds["evaluate"] = time.monotonic() - t0

    # --- save: the experts concatenated into one standard PEFT folder, or the grown base -------------
    report("save", 0, 1, None)
    adapter = model_dir = None
    if layers_mode:
        growth = [*read_growth(base_model), {"name": f"night-{night}", "layers": grown, "episodes": list(by_id)}]
        model_dir = save_model(out_dir / "model", model, tokenizer, growth)
    else:
        stack = [adapter_factors(model, name) for name in frozen] + [adapter_factors(model, EXPERT)]
        experts = experts + [{"name": f"night-{night}", "rank": config.expert_rank, "episodes": list(by_id)}]
        adapter = save_adapter(out_dir / "adapter", concatenate(stack), experts,
                               base_model_name_or_path=served_base or str(base_model),
                               target_modules=config.target_modules)
    if writer_factors is not None:  # travels with the adapter; a grown base renumbers layers: not reused
        seal_metrics["writer"]["path"] = str(seal.save_writer(
            out_dir / "writer" if layers_mode else adapter / seal.WRITER_DIR, writer_factors, config,
            base_model_name_or_path=served_base or str(base_model), night=night))
    seconds["total"] = time.monotonic() - started
    greedy_retention = greedy_retention_counts(greedy_pool, served_pool, candidate)
    if not asks_earlier_greedily:  # the same keys, each None: not asked, rather than asked and never answered
        greedy_retention = dict.fromkeys(greedy_retention)
    metrics = {
        "recall": recall,
        "served_recall": served_recall,  # the served model's recall of the same probes, before tonight
        "retention": retention,
        "general_agreement": general,
        "probes": len(probes),
        "retention_asked": len(pool),
        **greedy_retention,
        # the graded reading: mean change in log-probability per key-term token (nats), candidate - served
        "likelihood": shift.to_dict(),
        "dreams": len(trained),
        "replayed": len(replayable),
        "rank": None if layers_mode else sum(e["rank"] for e in experts),
        "experts": None if layers_mode else len(experts),
        "layers": model.config.num_hidden_layers,
        "grown_layers": grown or None,
        "merge_error": None if merge_report is None else merge_report.max_relative_error,
        "train": train_metrics,
        "seal": seal_metrics,
        "seconds": seconds,
    }
    keep = [d.to_dict() for d in dreams] + [d for d in earlier_dreams]
    (out_dir / "metrics.json").write_text(json.dumps({"accepted": not reasons, "reasons": reasons, **metrics},
                                                     indent=2, default=str))
    with open(out_dir / "dreams.jsonl", "w") as fh:
        for d in dreams:
            fh.write(json.dumps(d.to_dict()) + "\n")
    report("save", 1, 1, None)
    return SleepResult(adapter, not reasons, metrics, keep, reasons, model_dir=model_dir)


def seed_deadline(started: float, seconds: dict[str, float], config: SleepConfig) -> float | None:
    """When seeding must end for the night to fit `config.night_seconds` (None: no budget). The gate after
    seeding repeats the served model's pass and adds the general prompts (1.2-1.7x that pass on the CPU):
    twice it, plus a few seconds to save, are kept for it."""
    if config.night_seconds is None:
        return None
    return started + config.night_seconds - (2 * seconds.get("served", 0.0) + 5.0)


def replay_pairs(model, tokenizer, replayable: Sequence[Dream], teacher, config: SleepConfig,
                 served_replies: dict[str, str]) -> list[tuple[str, str]]:
    """(question, continuation) of each replayed earlier dream. With `replay_answers: served` the
    continuation is the served model's greedy closed-book reply (reused from the gate's pass where it
    asked the same question), once per question: distilling along the path the served model actually
    takes keeps what it answers, where the dream's in-context answer is a path it may never take."""
    if config.replay_answers == "dream":
        return [(d.question, d.answer) for d in replayable]
    questions = list(dict.fromkeys(d.question for d in replayable))
    missing = [q for q in questions if q not in served_replies]
    replies = dict(served_replies)
    if missing:
        with adapters(model, teacher):
            replies.update(zip(missing, answers(model, tokenizer, missing, config)))
    return [(q, replies[q]) for q in questions if replies[q].strip()]


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


@dataclass
class GateNumbers:
    recall: float | None  # candidate's recall of tonight's held-out probes
    served_recall: float | None  # the served model's recall of the same probes
    probes: int
    retention: float | None  # candidate's recall of the earlier dreams asked over the served model's
    retention_set: int  # how many of them the served model answers: the evidence behind `retention`
    general: float | None  # agreement with the base model's replies to held-out general prompts
    shift: LikelihoodShift | None = None  # the graded reading of the same three checks


def verdict(gate: GateNumbers, config: SleepConfig) -> list[str]:
    """Why the candidate must not replace the served model (empty: accept). Recall is judged as a gain
    over the served model on the same probes, retention as a ratio to its recall of earlier dreams: both compare the
    two models on the same questions, so a hard night does not read as a failed one. Below
    `gate_min_probes` a number is noise, not evidence: it is only reported. With `gate_reading:
    likelihood` the same three checks read the change in the answers' log-probability instead; with
    `open` nothing is refused."""
    if config.gate_reading == "open":
        return []
    if config.gate_reading == "likelihood" and gate.shift is not None:
        return likelihood_verdict(gate.shift, config)
    reasons = []
    if gate.recall is not None and gate.probes >= config.gate_min_probes:
        gain = gate.recall - (gate.served_recall or 0.0)
        if gain < config.min_recall_gain - 1e-9:
            reasons.append(f"recall of tonight's {gate.probes} held-out probes {gate.recall:.2f} is "
                           f"{gain:+.2f} over the served model's {gate.served_recall or 0.0:.2f} "
                           f"(< {config.min_recall_gain:+.2f})")
        if gate.recall < config.min_recall:
            reasons.append(f"recall of tonight's held-out probes {gate.recall:.2f} < {config.min_recall}")
    if (gate.retention is not None and gate.retention_set >= config.gate_min_probes
            and gate.retention < config.min_retention - 1e-9):
        reasons.append(f"retention of earlier dreams {gate.retention:.2f} (recall over the served model's, "
                       f"which answers {gate.retention_set}) < {config.min_retention}")
    if gate.general is not None and gate.general < 1 - config.max_general_drop - 1e-9:
        reasons.append(f"general agreement with the base {gate.general:.2f} < {1 - config.max_general_drop:.2f}")
    return reasons


def likelihood_verdict(shift: LikelihoodShift, config: SleepConfig) -> list[str]:
    """`verdict` on the graded reading: changes in nats per token, candidate minus served model."""
    reasons = []
    if (shift.recall_gain is not None and shift.probes >= config.gate_min_probes
            and shift.recall_gain <= config.min_recall_logprob_gain):
        reasons.append(f"tonight's {shift.probes} held-out answers gained {shift.recall_gain:+.3f} nats per "
                       f"key-term token over the served model (needs > {config.min_recall_logprob_gain:+.3f})")
    if (shift.retention_change is not None and shift.retention_asked >= config.gate_min_probes
            and shift.retention_change < -config.max_retention_logprob_drop):
        reasons.append(f"{shift.retention_asked} earlier dreams' answers changed {shift.retention_change:+.3f} "
                       f"nats per key-term token (may lose at most {config.max_retention_logprob_drop:.3f})")
    if shift.general_change is not None and shift.general_change < -config.max_general_logprob_drop:
        reasons.append(f"the base's general replies changed {shift.general_change:+.3f} nats per token "
                       f"(may lose at most {config.max_general_logprob_drop:.3f})")
    return reasons


def _same_answer(a: str, b: str) -> bool:
    """Two replies agree when they share most content words (the gate's general check)."""
    wa, wb = words(a), words(b)
    if not wa and not wb:
        return True
    return len(wa & wb) / max(len(wb), 1) >= 0.5
