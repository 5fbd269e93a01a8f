"""SEAL / ReST-EM outer loop (design.md section 4, step 1, optional): which of tonight's dreams teach?

    outcome = outer_loop(model, tokenizer, trained, probes, episodes, config,
                         teacher=teacher, frozen=frozen, similarity=similarity)
    writer, writer_metrics = train_writer(model, tokenizer, outcome.winners, episodes, config)

**Reward.** For each of `seal_rounds` rounds, each episode's training dreams are dealt at random into
`seal_sets_per_episode` disjoint candidate sets. For each set a throw-away LoRA expert (A random with
the night's seed, the same for every set so that sets differ only by their data; B = 0) grows on top
of the frozen stack tonight's expert will sit on, trains `seal_steps` steps with the knowledge-seeding
loss (`seeding.seed`) on that set alone, and is then deleted: the model is left as it was, to the bit.
The set's reward is the held-out recall gain on the probes of its episode: recall with the throw-away
adapter minus recall without (the recipe's `recalls`, key terms as in the gate).

**Filter (ReST-EM's E-step).** A dream's reward is the mean reward of the sets that held it (one per
round); the dreams above `seal_min_reward` win and stay tonight's training dreams, the others are
dropped (from training and from the dreams kept for replay). An episode none of whose dreams won keeps
its best-rewarded dreams (all of them when tied, e.g. every reward 0: no evidence either way), so an
episode that had dreams never loses them all. Episodes without probes get no reward: their dreams pass
unchanged and are not winners.

**Dream writer (ReST-EM's M-step).** The writer is the model that, with an episode in context, writes
the answers. It is a LoRA over the bare base model, fine-tuned fresh each night (ReST-EM fine-tunes the
base, not its last iterate) with causal-LM loss on (episode in context + question -> winning answer).
The recipe saves it as `reverie_writer/` inside the candidate adapter folder, so it travels with the
adapter (as its dreams do); the next night `load_writer` loads it and `dreaming.dream(writer=...)` lets
it write the answers, while scoring and the cached teacher logits stay the current model's.

Rounds re-deal the same dreams; they do not dream again with an updated writer within one night (SEAL's
inner generation step): the writer improves from night to night.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from peft import PeftModel

from trainer.chat import answer_ids, continuation_logits, render
from trainer.config import SleepConfig
from trainer.dreaming import Dream
from trainer.episodes import windows
from trainer.experts import (EXPERT, Factors, adapter_factors, adapters, factors_rank, grow_expert,
                             save_adapter)
from trainer.gate import recalls
from trainer.losses import token_logprobs
from trainer.seeding import dream_example, seed

WRITER = "writer"  # adapter name of the dream writer inside the model
WRITER_DIR = "reverie_writer"  # its folder inside an adapter folder (peft and vLLM ignore it)


@dataclass
class DreamSet:
    """One candidate set: some of an episode's training dreams, and what a throw-away adapter made of them."""

    round: int
    episode_id: str
    dreams: list[Dream]
    recall_before: float | None = None
    recall_after: float | None = None
    reward: float | None = None  # recall_after - recall_before; None when the episode has no probes

    def summary(self, min_reward: float) -> dict:
        return {"round": self.round, "episode": self.episode_id, "dreams": len(self.dreams),
                "recall_before": self.recall_before, "recall_after": self.recall_after, "reward": self.reward,
                "won": self.reward is not None and self.reward > min_reward}


@dataclass
class SealOutcome:
    kept: list[Dream]  # tonight's training dreams after the filter, in their original order
    winners: list[Dream]  # the kept dreams that won (the writer's training data)
    sets: list[DreamSet] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)


def deal(dreams: Sequence[Dream], sets_per_episode: int, rng: random.Random,
         round_: int = 0) -> list[DreamSet]:
    """Each episode's dreams shuffled and dealt round-robin into at most `sets_per_episode` non-empty sets."""
    by_episode: dict[str, list[Dream]] = {}
    for d in dreams:
        by_episode.setdefault(d.episode_id, []).append(d)
    sets: list[DreamSet] = []
    for eid, group in by_episode.items():
        group = list(group)
        rng.shuffle(group)
        n = min(sets_per_episode, len(group))
        sets += [DreamSet(round_, eid, group[i::n]) for i in range(n)]
    return sets


def filter_winners(dreams: Sequence[Dream], sets: Sequence[DreamSet],
                   min_reward: float = 0.0) -> tuple[list[Dream], list[Dream]]:
    """ReST-EM filter over rewarded sets. Returns (kept, winners), both in the order of `dreams`.

    A dream's reward is the mean of its sets' rewards; it wins above `min_reward`. Dreams in no rewarded
    set are kept (no evidence); an episode without a winner keeps its dreams tied at its best reward.
    """
    rewards: dict[int, list[float]] = {}
    for s in sets:
        if s.reward is not None:
            for d in s.dreams:
                rewards.setdefault(id(d), []).append(s.reward)
    mean = {key: sum(values) / len(values) for key, values in rewards.items()}
    winners = [d for d in dreams if id(d) in mean and mean[id(d)] > min_reward]
    won = {d.episode_id for d in winners}
    best: dict[str, float] = {}
    for d in dreams:
        if id(d) in mean:
            best[d.episode_id] = max(best.get(d.episode_id, -float("inf")), mean[id(d)])
    kept = [d for d in dreams if id(d) not in mean or mean[id(d)] > min_reward
            or (d.episode_id not in won and mean[id(d)] >= best[d.episode_id] - 1e-9)]
    return kept, winners


@contextmanager
def throwaway(model: torch.nn.Module, config: SleepConfig, *, below: Sequence[str] = (),
              name: str = EXPERT) -> Iterator[PeftModel]:
    """A LoRA adapter `name` (A random with `config.seed`, B = 0) over the active adapters `below`, the
    only trainable weights, for the length of the block; then it is deleted and `model` is as it was:
    the same adapters active, the same `requires_grad` flags and train/eval mode, and a plain model is
    plain again (its LoRA layers taken out). Yields the PeftModel to train.

    `name` is `expert` for the SEAL sets: `seeding.seed` switches teachers with `adapters()`, which
    gives gradients back to `expert` only.
    """
    plain = not isinstance(model, PeftModel)
    active = None if plain else list(model.base_model.active_adapters)
    flags = [(p, p.requires_grad) for p in model.parameters()]
    training = model.training
    grown = grow_expert(model, rank=config.expert_rank, alpha=config.expert_alpha,
                        target_modules=config.target_modules, frozen=list(below), seed=config.seed, name=name)
    try:
        yield grown
    finally:
        if plain:
            grown.unload()  # the same module objects as before, back in place
        else:
            grown.base_model.set_adapter(active)  # first, so that an inactive adapter is deleted
            grown.delete_adapter(name)
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(training)


def probe_recall(model, tokenizer, probes: Sequence[Dream], config: SleepConfig) -> float | None:
    """Fraction of probes whose closed-book greedy reply names one of their key terms (the gate's recall)."""
    if not probes:
        return None
    return sum(recalls(model, tokenizer, probes, config)) / len(probes)


def outer_loop(
    model,
    tokenizer,
    trained: Sequence[Dream],
    probes: Sequence[Dream],
    episodes: Sequence[dict],
    config: SleepConfig,
    *,
    teacher: Sequence[str] | None,
    frozen: Sequence[str],
    similarity: Callable[[list[str], str], torch.Tensor],
    progress: Callable | None = None,
) -> SealOutcome:
    """Reward candidate dream sets with throw-away adapters and keep the winners (see the module docstring).

    `model` is left exactly as given. `teacher` are the adapters of the in-context teacher (seeding's
    on-policy teacher), `frozen` those tonight's expert will sit on (the throw-away adapters sit there too).
    Dreams dropped by the filter lose their cached teacher logits.
    """
    by_id = {str(e.get("id", "")): e for e in episodes}
    probes_of: dict[str, list[Dream]] = {}
    for p in probes:
        probes_of.setdefault(p.episode_id, []).append(p)
    with adapters(model, list(frozen) or None):
        before = {eid: probe_recall(model, tokenizer, ps, config) for eid, ps in probes_of.items()}
    sets = [s for r in range(config.seal_rounds)
            for s in deal(trained, config.seal_sets_per_episode, random.Random(config.seed + r), r)]
    scored = [s for s in sets if before.get(s.episode_id) is not None]
    examples = {id(d): dream_example(tokenizer, d, by_id[d.episode_id], teacher, config) for d in trained}
    short = dataclasses.replace(config, steps=config.seal_steps)
    for i, s in enumerate(scored):
        with throwaway(model, config, below=frozen) as grown:
            seed(grown, tokenizer, [examples[id(d)] for d in s.dreams], short, similarity=similarity)
            s.recall_before = before[s.episode_id]
            s.recall_after = probe_recall(grown, tokenizer, probes_of[s.episode_id], config)
            s.reward = s.recall_after - s.recall_before
        if progress:
            progress("seal", i + 1, len(scored), None)
    kept, winners = filter_winners(trained, scored, config.seal_min_reward)
    staying = {id(d) for d in kept}
    for d in trained:
        if id(d) not in staying:
            d.teacher_logits = None
    summaries = [s.summary(config.seal_min_reward) for s in sets]
    metrics = {
        "rounds": config.seal_rounds,
        "sets": summaries,
        "rewards": [s.reward for s in scored],
        "sets_scored": len(scored),
        "sets_won": sum(s["won"] for s in summaries),
        "dreams_before": len(trained),
        "dreams_kept": len(kept),
        "winners": len(winners),
    }
    return SealOutcome(kept, winners, sets, metrics)


def writer_loss(model, pairs: Sequence[tuple[list[int], list[int]]], pad_id: int) -> torch.Tensor:
    """Causal-LM loss of (prompt, answer) pairs: mean negative log-likelihood of the answer tokens."""
    logits, targets, mask = continuation_logits(model, [p for p, _ in pairs], [c for _, c in pairs], pad_id)
    return -(token_logprobs(logits, targets) * mask).sum() / mask.sum()


def train_writer(model, tokenizer, winners: Sequence[Dream], episodes: Sequence[dict],
                 config: SleepConfig) -> tuple[Factors | None, dict]:
    """Fine-tune a fresh dream writer (LoRA over the bare base) on (episode + question -> winning answer).

    `model` is left exactly as given. Returns the writer's factors (scaling folded in; None when there
    are no winners or `seal_writer_steps` is 0) and its training metrics.
    """
    if not winners or config.seal_writer_steps == 0:
        return None, {"pairs": len(winners), "steps": 0}
    by_id = {str(e.get("id", "")): e for e in episodes}
    pairs = [(render(tokenizer, windows(tokenizer, by_id[d.episode_id], config)[d.window]
                     + [{"role": "user", "content": d.question}], config.system_prompt),
              answer_ids(tokenizer, d.answer)) for d in winners]
    rng = random.Random(config.seed)
    losses: list[float] = []
    with throwaway(model, config, below=(), name=WRITER) as writer:
        params = [p for p in writer.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
        writer.train()
        for _ in range(config.seal_writer_steps):
            batch = rng.sample(pairs, min(config.batch_size, len(pairs)))
            loss = writer_loss(writer, batch, tokenizer.pad_token_id)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            losses.append(loss.item())
        writer.eval()
        factors = adapter_factors(writer, WRITER)
    return factors, {"pairs": len(pairs), "steps": len(losses), "loss_first": losses[0],
                     "loss_last": losses[-1]}


def save_writer(folder: str | Path, factors: Factors, *, base_model_name_or_path: str, night: str) -> Path:
    """Write the writer as a standard PEFT folder (the recipe: `reverie_writer/` in the adapter folder)."""
    return save_adapter(folder, factors, [{"name": f"writer-{night}", "rank": factors_rank(factors)}],
                        base_model_name_or_path=base_model_name_or_path)


def load_writer(model, adapter_dir: str | Path | None, config: SleepConfig) -> list[str] | None:
    """Load the previous night's writer (inactive, frozen) when SEAL is on and its folder has one.

    Returns the adapters to pass as `dream(writer=...)`, or None.
    """
    if not (config.seal_outer_loop and config.seal_dream_with_writer) or adapter_dir is None:
        return None
    path = Path(adapter_dir) / WRITER_DIR
    if not isinstance(model, PeftModel) or not (path / "adapter_config.json").is_file():
        return None
    active = list(model.base_model.active_adapters)
    model.load_adapter(str(path), adapter_name=WRITER)
    model.base_model.set_adapter(active)
    for param in model.parameters():
        param.requires_grad = False
    return [WRITER]


def unload_writer(model, writer: Sequence[str] | None) -> None:
    """Delete the writer `load_writer` loaded (tonight's writer is trained afresh under the same name)."""
    if writer:
        model.delete_adapter(WRITER)  # loaded inactive: the active adapters stay
        for param in model.parameters():
            param.requires_grad = False
