"""One night's sleep, top to bottom: setup, dream, read the served model, seed, judge, save (design.md 4).

Each phase is one call: `dreaming.dream` writes tonight's curriculum, `gate.read_served` measures what
the served model knows, `seeding.seed` trains tonight's expert, `gate.judge` compares the candidate with
the served model, `experts` saves the stack as one PEFT folder.

    result = sleep(episodes, base_model="models/SmolLM2-135M-Instruct", adapter_dir=None,
                   earlier_dreams=[], config=SleepConfig.from_yaml("cpu-default"), out_dir="runs/night-1")

`episodes` are dicts with `messages` (the chat) and `id`; nothing else of them is read. The result
carries the candidate adapter folder (standard PEFT LoRA), the metrics, the dreams to keep for the
next nights (held-out probes included: they measure retention later), the gate's verdict and the ids of
the episodes the night consumed: with a night budget, the oldest that dreaming reached
(`trainer.budget`); the rest belong to the next night's backlog.
With `growth_mode: layers` the candidate is a new base folder instead (`model_dir`, no adapter).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from trainer import gate, prompts, seal
from trainer.chat import answers, load_model, render
from trainer.config import SleepConfig
from trainer.binding import binding_pair, rival_answers
from trainer.corrections import Retirement, dream_key
from trainer.budget import dream_within_budget, has_time_for, seed_deadline
from trainer.dreaming import Dream
from trainer.generation import LOCAL, Generation
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
from trainer.seeding import Example, build_example, dream_example, seed
from trainer.semantic import load_similarity
from trainer.text import words

Progress = Callable[[str, int, int, float | None], None]


@dataclass
class SleepResult:
    adapter_dir: Path | None  # the candidate PEFT LoRA folder; None in `layers` growth mode
    accepted: bool
    metrics: dict
    dreams: list[dict] = field(default_factory=list)  # to keep: pass back as `earlier_dreams` next night
    reasons: list[str] = field(default_factory=list)  # why the gate rejected it (empty when accepted)
    model_dir: Path | None = None  # `layers` growth mode: the candidate base folder (None in `lora` mode)
    episode_ids: list[str] = field(default_factory=list)  # the episodes consumed: the others were not dreamed


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
    generation: Generation = LOCAL,
) -> SleepResult:
    """Consolidate `episodes` into a new expert on top of `adapter_dir` (None: the first night).

    Length: the recipe on one page, phase after phase, as a torchtune recipe reads; each phase is one call.

    With `config.growth_mode == "layers"`, `config.grown_layers` decoder layers are grown instead (output
    projections zero: the function is unchanged) and trained alone, every teacher being the model
    before growth; the candidate is a new base folder, `out_dir / "model"` (`SleepResult.model_dir`,
    `adapter_dir` None). The next night passes that folder as `base_model`, with `adapter_dir=None`. An
    `adapter_dir` given in this mode is a LoRA adapter over `base_model` (the stack served before a
    switch of mode): it is merged into the weights before growing, so the new base carries it.

    `generation` writes the teacher's answers and the student's samples (`trainer.generation`): by default
    `chat.generate` on the model in memory; an inference server serving `adapter_dir` can stand in.
    """
    started = time.monotonic()
    out_dir = Path(out_dir)
    night = night or time.strftime("%Y-%m-%dT%H:%M:%S")
    report = progress or (lambda *_: None)
    seconds: dict[str, float] = {}

    # --- setup: the served model (base + its expert stack), the dream writer, the reward's similarity ---
    report("setup", 0, 1, None)
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    tokenizer, model = load_model(base_model, config)
    model, served = load_served(model, adapter_dir, config)
    writer = seal.load_writer(model, adapter_dir, config)  # SEAL: the previous night's dream writer, if any
    similarity = load_similarity(config.semantic_model, model, tokenizer)
    report("setup", 1, 1, None)
    seconds["setup"] = time.monotonic() - started

    # --- dream: the current model, with each episode in context, writes tonight's dreams ------------
    with timed(seconds, "dream"), adapters(model, served.teacher):
        backlog = len(episodes)  # from here on `episodes` are the ones dreamed: the night consumes those only
        night_dreams, episodes = dream_within_budget(model, tokenizer, episodes, config, night=night,
                                                     progress=progress, writer=writer, earlier=earlier_dreams,
                                                     generation=generation)
    seal.unload_writer(model, writer)
    dreams, retired = night_dreams.dreams, night_dreams.retired
    # a corrected fact's earlier dreams leave replay, the gate's retention sample and the kept dreams
    retired_keys = night_dreams.retired_keys()
    earlier_dreams = [d for d in earlier_dreams if dream_key(d) not in retired_keys]
    probes = [d for d in dreams if d.held_out]
    trained = [d for d in dreams if not d.held_out]

    # --- what the served model knows now: the gate judges the candidate against it ------------------
    with timed(seconds, "served"):
        reading = gate.read_served(model, tokenizer, probes, earlier_dreams, {d.question for d in dreams},
                                   served.teacher, config)

    # --- SEAL / ReST-EM (optional): keep the dream sets whose throw-away adapter raised held-out recall,
    # and fine-tune the dream writer on them (trainer/seal.py); the model is left as it was
    writer_night = None
    if config.seal_outer_loop:
        with timed(seconds, "seal"):
            writer_night = seal_night(model, tokenizer, trained, probes, episodes, served, similarity, config,
                                      progress)
        kept = {id(d) for d in writer_night.kept}
        dreams = [d for d in dreams if d.held_out or id(d) in kept]
        trained = writer_night.kept

    # --- seed: grow tonight's expert (or layers) and train only it, for as long as the backlog needs ------
    config = config.for_backlog(len(trained), replaying=any(not d.get("held_out") for d in earlier_dreams))
    with timed(seconds, "seed"):
        model, grown = grow(model, served, config)
        night_set = training_set(model, tokenizer, episodes, trained, earlier_dreams, reading, served.teacher,
                                 config, retired)
        with step_bar(show_progress, config.steps) as bar:
            train_metrics = seed(model, tokenizer, night_set.examples, config, similarity=similarity,
                                 progress=progress, bar=bar, binding=night_set.binding,
                                 reference=served.teacher, generation=generation,
                                 deadline=seed_deadline(started, seconds, config))

    # --- evaluate: the gate ------------------------------------------------------------------------
    with timed(seconds, "evaluate"):
        report("evaluate", 0, 1, None)
        judging = time.monotonic()
        verdict = gate.judge(model, tokenizer, reading, night_set.general, config)
        scale = gate.softer_scale(verdict.numbers, config) if config.growth_mode == "lora" else None
        if scale is not None and has_time_for(time.monotonic() - judging, started, config):
            verdict = gate.judge_scaled(model, tokenizer, reading, night_set.general, config, verdict, scale)
        report("evaluate", 1, 1, None)

    # --- save: the experts concatenated into one standard PEFT folder, or the grown base -------------
    report("save", 0, 1, None)
    episode_ids = list(dict.fromkeys(str(e.get("id", "")) for e in episodes))
    adapter, model_dir, experts = save_candidate(model, tokenizer, served, grown, episode_ids, config,
                                                 out_dir=out_dir, base_model=base_model,
                                                 served_base=served_base, night=night)
    seal_metrics = None if writer_night is None else writer_night.save(
        out_dir / "writer" if model_dir else adapter / seal.WRITER_DIR, served_base or str(base_model), night)
    seconds["total"] = time.monotonic() - started
    metrics = {"expert_scale": 1.0, **verdict.metrics,
               **night_metrics(model, trained, night_set, experts, grown, served, config),
               "retired": [r.to_dict() for r in retired], "train": train_metrics, "seal": seal_metrics,
               "episodes_dreamed": len(episodes), "episodes_left": backlog - len(episodes),
               "seconds": seconds}
    accepted = not verdict.reasons
    write_night(out_dir, dreams, {"accepted": accepted, "reasons": verdict.reasons, **metrics})
    report("save", 1, 1, None)
    keep = [d.to_dict() for d in dreams] + [d for d in earlier_dreams]
    return SleepResult(adapter, accepted, metrics, keep, verdict.reasons, model_dir=model_dir, episode_ids=episode_ids)


@dataclass
class WriterNight:
    """What the SEAL outer loop kept, and the dream writer it trained."""

    kept: list[Dream]
    metrics: dict
    factors: object
    writer_metrics: dict

    def save(self, folder: Path, base_model_name_or_path: str, night: str) -> dict:
        """Save the writer beside the candidate (a grown base renumbers layers: its own folder); the
        outer loop's metrics with the writer's path. A night whose sets all lost trains no writer: nothing
        is saved and the previous night's writer is not carried on."""
        if self.factors is None:
            return {**self.metrics, "writer": {**self.writer_metrics, "path": None}}
        path = seal.save_writer(folder, self.factors, base_model_name_or_path=base_model_name_or_path,
                                night=night)
        return {**self.metrics, "writer": {**self.writer_metrics, "path": str(path)}}


def seal_night(model, tokenizer, trained, probes, episodes, served: ServedStack, similarity, config: SleepConfig,
               progress) -> WriterNight:
    """SEAL / ReST-EM: the dream sets whose throw-away adapter raised held-out recall, and the dream writer
    fine-tuned on them (`trainer.seal`); the model is left as it was."""
    outcome = seal.outer_loop(model, tokenizer, trained, probes, episodes, config, teacher=served.teacher,
                              frozen=served.frozen, similarity=similarity, progress=progress)
    factors, writer_metrics = seal.train_writer(model, tokenizer, outcome.winners, episodes, config)
    return WriterNight(list(outcome.kept), outcome.metrics, factors, writer_metrics)


def night_metrics(model, trained, night_set, experts, grown, served, config: SleepConfig) -> dict:
    """What the run reports of the night besides the gate's numbers and the training curve."""
    layers_mode = config.growth_mode == "layers"
    return {
        "dreams": len(trained),
        "replayed": night_set.replayed,
        "rank": None if layers_mode else sum(e["rank"] for e in experts),
        "experts": None if layers_mode else len(experts),
        "layers": model.config.num_hidden_layers,
        "grown_layers": grown or None,
        "merge_error": None if served.merge_report is None else served.merge_report.max_relative_error,
    }


@contextmanager
def step_bar(show: bool, steps: int):
    """A tqdm bar over the seeding steps when `show` (a terminal), else None."""
    if not show:
        yield None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=steps, desc="seed", leave=False)
    try:
        yield bar
    finally:
        bar.close()


@contextmanager
def timed(seconds: dict[str, float], phase: str):
    """Record the seconds the block takes as `seconds[phase]`."""
    t0 = time.monotonic()
    yield
    seconds[phase] = time.monotonic() - t0


@dataclass
class ServedStack:
    """The served model's experts, as tonight's training sees them."""

    experts: list[dict] = field(default_factory=list)  # metadata of the served stack (or the merged one)
    teacher: list[str] | None = None  # adapters that make the served model (None: the bare base)
    frozen: list[str] = field(default_factory=list)  # adapters kept under tonight's expert, untrained
    merge_report: object | None = None  # when the stack was merged to stay within the rank budget


def load_served(model, adapter_dir: str | Path | None, config: SleepConfig):
    """The served model: `model` with the adapter at `adapter_dir` loaded (under `PREVIOUS`), merged by
    SVD into `MEMORY` when tonight's expert would pass `max_lora_rank`. In `layers` growth mode the
    adapter is folded into the weights instead. Returns the model and its `ServedStack`."""
    from peft import PeftModel

    if adapter_dir is None:
        return model, ServedStack()
    if config.growth_mode == "layers":
        if not (Path(adapter_dir) / "adapter_config.json").is_file():
            raise ValueError(f"{adapter_dir} is not a LoRA adapter: in growth_mode 'layers' the previous "
                             "night's model folder is passed as base_model, with adapter_dir=None.")
        return PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload().eval(), ServedStack()
    model = PeftModel.from_pretrained(model, str(adapter_dir), adapter_name=PREVIOUS).eval()
    stack = ServedStack(read_experts(adapter_dir), [PREVIOUS], [PREVIOUS])
    previous_rank = sum(e["rank"] for e in stack.experts)
    if previous_rank + config.expert_rank > config.max_lora_rank:
        merged, stack.merge_report = merge(adapter_factors(model, PREVIOUS), config.max_lora_rank - config.expert_rank)
        load_factors(model, MEMORY, merged)
        stack.frozen = [MEMORY]
        stack.experts = [{"name": "merged", "rank": stack.merge_report.rank_after,
                          "merged": [e["name"] for e in stack.experts]}]
    return model, stack


def grow(model, served: ServedStack, config: SleepConfig):
    """Tonight's trainable part: a zero-initialised expert over the frozen stack, or (`layers` mode)
    decoder layers with zero output projections that every teacher skips. Returns the model and the
    grown layers' indices (empty in `lora` mode)."""
    if config.growth_mode == "layers":
        return model, grow_student_layers(model, config.grown_layers)
    return grow_expert(model, rank=config.expert_rank, alpha=config.expert_alpha,
                       target_modules=config.target_modules, frozen=served.frozen, seed=config.seed), []


@dataclass
class NightSet:
    """What tonight's expert trains on, and the general prompts the gate keeps back."""

    examples: list[Example]
    binding: list  # (own, rival) answer pairs of the binding loss
    replayed: int  # earlier dreams replayed
    general: gate.GeneralReference


def training_set(model, tokenizer, episodes: Sequence[dict], trained: Sequence[Dream],
                 earlier_dreams: Sequence[dict], reading: gate.ServedReading, teacher, config: SleepConfig,
                 retired: Sequence[Retirement] = ()) -> NightSet:
    """Tonight's dreams (the in-context teacher's cached logits), earlier nights' dreams replayed with the
    served model as teacher, general prompts (the base's or the served model's replies), the binding
    pairs (rival people's values, and each corrected answer's old value: the new answer must win over
    it). The teacher logits of replayed and general examples, and the pairs' reference margins, are read
    by `seed` when a step first draws them: where the deadline leaves fewer steps than planned, reading
    all of them here took the time of 8 of night 3's 35 steps (facts-public on a slow machine, 2026-12-06)."""
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
    for question, answer in replay_pairs(model, tokenizer, replayable, teacher, config, reading.replies):
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
    general = gate.general_reference(model, tokenizer, general_gate, general_answers[len(general_train):], config)
    for q, a in zip(general_train, general_answers):
        p = render(tokenizer, [{"role": "user", "content": q}], config.system_prompt)
        examples.append(build_example(tokenizer, p, p, a, general_teacher, "general"))
    binding = []
    if config.binding_weight > 0:
        binding = [binding_pair(tokenizer, own, rival, config)
                   for own, rival in rival_answers(trained, earlier_trained)]
        binding += [binding_pair(tokenizer, r.new, r.old["answer"], config)
                    for r in retired if r.new is not None and words(r.new.answer) != words(r.old["answer"])]
    return NightSet(examples, binding, len(replayable), general)


def save_candidate(model, tokenizer, served: ServedStack, grown: list[int], episode_ids: list[str],
                   config: SleepConfig, *, out_dir: Path, base_model, served_base: str | None, night: str):
    """Write the candidate: the experts concatenated into one standard PEFT folder (`out_dir/adapter`),
    or in `layers` mode the grown base (`out_dir/model`). Returns (adapter, model_dir, experts)."""
    if config.growth_mode == "layers":
        growth = [*read_growth(base_model), {"name": f"night-{night}", "layers": grown, "episodes": episode_ids}]
        return None, save_model(out_dir / "model", model, tokenizer, growth), served.experts
    stack = [adapter_factors(model, name) for name in served.frozen] + [adapter_factors(model, EXPERT)]
    experts = served.experts + [{"name": f"night-{night}", "rank": config.expert_rank, "episodes": episode_ids}]
    adapter = save_adapter(out_dir / "adapter", concatenate(stack), experts,
                           base_model_name_or_path=served_base or str(base_model))
    return adapter, None, experts


def write_night(out_dir: Path, dreams: Sequence[Dream], metrics: dict) -> None:
    """`metrics.json` (the verdict and every number) and tonight's `dreams.jsonl` beside the candidate."""
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    with open(out_dir / "dreams.jsonl", "w") as fh:
        for d in dreams:
            fh.write(json.dumps(d.to_dict()) + "\n")


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
