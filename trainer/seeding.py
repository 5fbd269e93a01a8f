"""Knowledge seeding: train tonight's expert with `(1-alpha)*GKD + alpha*imitation`.

GKD: token-level generalized JSD(beta) between a teacher and the student on continuations that are
the teacher's own answers (off-policy, teacher logits cached once) or, for a fraction lambda of each
batch, sampled from the student (on-policy, teacher scored afresh). Three kinds of examples share a
batch, each with its teacher:
  - tonight's dreams: teacher = current model WITH the episode in context, student without it;
  - replay of earlier dreams: teacher = previous model (the served stack), no context;
  - general prompts: teacher = the base model, no context.
Imitation: the student completes a truncated teacher answer G times; reward
`gamma*semantic + (1-gamma)*edit`, policy gradient with the group mean as baseline.
Binding (optional, `binding_weight`): one person's question must favour their own answer over the same
answer with another person's value put in, DPO's loss with the model before training as reference.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from trainer.binding import BindingPair, binding_margins, cache_binding_reference
from trainer.chat import answer_ids, continuation_logits, decode, render
from trainer.config import SleepConfig
from trainer.dreaming import Dream
from trainer.episodes import windows
from trainer.experts import adapters
from trainer.generation import LOCAL, Generation
from trainer.losses import (binding_loss, distillation_with_answers, generalized_jsd, imitation_reward,
                            policy_gradient_loss, token_logprobs)

BASE = None  # teacher adapters: None is the bare base model


@dataclass
class Example:
    """One GKD prompt: the student's view, the teacher's view, and the teacher's own answer."""

    student_prompt: list[int]
    teacher_prompt: list[int]
    answer: str
    continuation: list[int]
    teacher: tuple[str, ...] | None  # adapters active in the teacher; None: base model
    kind: str  # tonight | replay | general
    cached: torch.Tensor | None = None  # (len(continuation), V) teacher logits, on CPU


def build_example(tokenizer, student_prompt, teacher_prompt, answer, teacher, kind) -> Example:
    return Example(list(student_prompt), list(teacher_prompt), answer, answer_ids(tokenizer, answer),
                   None if teacher is None else tuple(teacher), kind)


def dream_example(tokenizer, d: Dream, episode: dict, teacher: Sequence[str] | None,
                  config: SleepConfig) -> Example:
    """Tonight's dream as a seeding example: the student sees the question alone, the teacher the episode
    and the question; the teacher logits cached while dreaming come along."""
    question = [{"role": "user", "content": d.question}]
    example = build_example(
        tokenizer, render(tokenizer, question, config.system_prompt),
        render(tokenizer, windows(tokenizer, episode, config)[d.window] + question, config.system_prompt),
        d.answer, teacher, "tonight")
    example.cached = d.teacher_logits
    return example


@torch.no_grad()
def teacher_logits(model, tokenizer, examples: Sequence[Example], conts: Sequence[list[int]], width: int):
    """(B, width, V) teacher logits aligned to the end, from the cache when the continuation is the
    teacher's own answer, else from a fresh teacher forward. An example drawn with its own answer and no
    cache yet keeps its fresh logits as its cache (bf16 on CPU), so a night reads the teacher once per
    example it trains on and never for those its steps do not reach."""
    device = next(model.parameters()).device
    fresh: dict = {}
    for i, (ex, c) in enumerate(zip(examples, conts)):
        if not (ex.cached is not None and c is ex.continuation):
            fresh.setdefault(ex.teacher, []).append(i)
    rows: dict[int, torch.Tensor] = {}
    for teacher, idx in fresh.items():
        with adapters(model, None if teacher is None else list(teacher)):
            logits, _, mask = continuation_logits(model, [examples[i].teacher_prompt for i in idx],
                                                  [conts[i] for i in idx], tokenizer.pad_token_id)
        for row, i in enumerate(idx):
            rows[i] = logits[row, mask[row]]
            ex = examples[i]
            if conts[i] is ex.continuation and ex.cached is None:
                ex.cached = rows[i].to("cpu", torch.bfloat16)
                rows[i] = ex.cached.to(device)
    vocab = next(iter(rows.values())).shape[-1] if rows else examples[0].cached.shape[-1]
    out = torch.zeros(len(examples), width, vocab, device=device)
    for i, (ex, c) in enumerate(zip(examples, conts)):
        src = rows[i] if i in rows else ex.cached.to(device)
        out[i, width - len(c):] = src.float()
    return out


def on_policy_fraction(example: Example, config: SleepConfig) -> float:
    if example.kind == "replay" and config.replay_lmbda is not None:
        return config.replay_lmbda
    return config.lmbda


def gkd_loss(model, tokenizer, batch: Sequence[Example], config: SleepConfig, rng: random.Random,
             generation: Generation = LOCAL) -> torch.Tensor:
    """GKD on one batch: a fraction lambda of continuations (`replay_lmbda` of replayed ones) sampled
    on-policy from the student; with `answer_weight` w, the off-policy rows of tonight's and replayed
    dreams also learn their own answer (`(1 - w) * GKD + w * cross-entropy`, `losses.distillation_with_answers`)."""
    conts: list[list[int]] = [ex.continuation for ex in batch]
    if config.on_policy_unit == "batch":
        draw = rng.random()
        on_policy = [i for i, ex in enumerate(batch) if draw < on_policy_fraction(ex, config)]
    else:
        on_policy = [i for i, ex in enumerate(batch) if rng.random() < on_policy_fraction(ex, config)]
    if on_policy:
        sampled = generation.student(model, tokenizer, [batch[i].student_prompt for i in on_policy],
                                     max_new_tokens=config.on_policy_max_new_tokens, temperature=1.0,
                                     seed=rng.randrange(2**31))
        for i, ids in zip(on_policy, sampled):
            if ids:
                conts[i] = ids
    logits, targets, mask = continuation_logits(model, [ex.student_prompt for ex in batch], conts,
                                                tokenizer.pad_token_id)
    teacher = teacher_logits(model, tokenizer, batch, conts, logits.shape[1])
    jsd = generalized_jsd(logits, teacher, mask, beta=config.beta, temperature=config.gkd_temperature,
                          teacher_temperature=config.teacher_temperature, reduction="none")
    # the example's own answer, where it was not replaced by a student sample; a general prompt keeps the
    # base's whole distribution (one sampled reply as a hard target drifted the general answers)
    told = mask.clone()
    told[on_policy] = False
    told[[i for i, ex in enumerate(batch)
          if ex.kind == "general" or (ex.kind == "replay" and not config.answer_on_replay)]] = False
    return distillation_with_answers(jsd, logits, targets, mask, told, config.answer_weight)


def imitation_loss(model, tokenizer, example: Example, config: SleepConfig, similarity, rng: random.Random,
                   generation: Generation = LOCAL):
    """The student completes a truncated teacher answer G times; policy gradient on the rewards.

    Returns (loss, mean reward).
    """
    answer = example.continuation
    cut = max(1, int(len(answer) * config.imitation_prefix))
    prefix, reference_ids = answer[:cut], answer[cut:]
    if not reference_ids:
        return None, 0.0
    prompt = example.student_prompt + prefix
    completions = generation.student(model, tokenizer, [prompt] * config.imitation_group,
                                     max_new_tokens=max(len(reference_ids), 4), temperature=1.0,
                                     seed=rng.randrange(2**31))
    completions = [c if c else [tokenizer.eos_token_id] for c in completions]
    texts = [decode(tokenizer, c) for c in completions]
    reference = decode(tokenizer, reference_ids)
    rewards = imitation_reward(similarity(texts, reference), texts, reference, config.gamma, config.edit_threshold)
    logits, targets, mask = continuation_logits(model, [prompt] * len(completions), completions,
                                                tokenizer.pad_token_id)
    loss = policy_gradient_loss(token_logprobs(logits, targets), mask, rewards.to(logits.device))
    return loss, float(rewards.mean())


def _mix(pools: dict[str, list[Example]], config: SleepConfig, rng: random.Random) -> list[Example]:
    size = config.batch_size
    counts = {"replay": round(size * config.replay_fraction) if pools["replay"] else 0,
              "general": round(size * config.general_fraction) if pools["general"] else 0}
    counts["tonight"] = size - counts["replay"] - counts["general"]
    if not pools["tonight"]:
        counts["replay" if pools["replay"] else "general"] += counts.pop("tonight")
    batch = []
    for kind, n in counts.items():
        if n > 0 and pools[kind]:
            batch += rng.sample(pools[kind], n) if n <= len(pools[kind]) else rng.choices(pools[kind], k=n)
    return batch


def backward_clipped_apart(params: Sequence[torch.Tensor], parts: Sequence[tuple[torch.Tensor, float]],
                           clip: float) -> torch.Tensor:
    """Into `.grad`: the sum over `parts` of weight x (the loss's gradient, its norm clipped to `clip`).

    Each loss is backpropagated alone, so one whose gradient is much larger (a margin summed over tokens
    against a per-token mean) does not shrink the others' share of a shared clip. Returns the largest
    norm before clipping (inf or nan when a part is not finite)."""
    total = [None] * len(params)
    norms = []
    for loss, weight in parts:
        for p in params:
            p.grad = None
        loss.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(params, clip or float("inf")).detach().float())
        for i, p in enumerate(params):
            if p.grad is not None:
                total[i] = weight * p.grad if total[i] is None else total[i] + weight * p.grad
    for p, g in zip(params, total):
        p.grad = g
    return torch.stack(norms).max()  # max propagates nan


# steps timed before a deadline plans the rest: one imitation period of cpu-default, so the mean step time
# they give carries imitation in its share (5 steps, one of them imitating, planned 58 of 60 for a night
# that had time for 60)
PLAN_AFTER = 10


def planned_steps(steps: int, done: int, elapsed: float, remaining: float) -> int:
    """How many of `steps` steps fit in all, when the `done` steps so far took `elapsed` seconds and
    `remaining` seconds are left: never fewer than are done, never more than `steps`."""
    if done <= 0 or elapsed <= 0:
        return steps
    return max(done, min(steps, done + int(max(remaining, 0.0) / (elapsed / done))))


def seed(
    model,
    tokenizer,
    examples: Sequence[Example],
    config: SleepConfig,
    *,
    similarity: Callable[[list[str], str], torch.Tensor],
    progress: Callable | None = None,
    bar=None,
    binding: Sequence[BindingPair] = (),
    reference: Sequence[str] | None = None,
    deadline: float | None = None,
    generation: Generation = LOCAL,
) -> dict:
    """Train the active trainable adapter for `config.steps` steps. Returns training metrics.

    Length: one loop that reads top to bottom (draw a batch, GKD, imitation, binding, step, re-plan); cut into
    functions, its optimizer, schedule, plan and per-loss records would travel through every call.

    `binding`: own/rival answer pairs for the binding loss (used when `config.binding_weight` > 0).
    `reference`: the adapters that make the model before training (None: the bare base; tonight's expert
    is zero and grown layers are skipped, so this is the served model): a pair's reference margin is read
    through them when the pair first trains, so a night cut short by its deadline reads no more than it
    uses. Examples without cached teacher logits get them the same way (`teacher_logits`).
    `deadline` (`time.monotonic()`): when the last step must have ended. From step `PLAN_AFTER` on, each
    step re-plans the step count from the mean step time so far (up or down, never past `config.steps`:
    a ratchet that only lowers it would keep the slowest early estimate), and the cosine schedule decays
    over that count; when every step fits, the run is the same as without a deadline.
    `generation`: where the student's on-policy and imitation samples come from (`trainer.generation`);
    it is told of every optimizer step."""
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    pools = {k: [e for e in examples if e.kind == k] for k in ("tonight", "replay", "general")}
    params = [p for p in model.parameters() if p.requires_grad]
    if not params or config.steps == 0 or not examples:
        return {"steps": 0, "loss": None}
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    warmup = max(config.warmup_steps, 1)
    planned = config.steps  # re-planned under a deadline; the schedule's closure reads it at every step

    def warm_up_then_cosine(s: int) -> float:
        return min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s / planned, 1.0)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warm_up_then_cosine)
    imitation_pool = pools["tonight"] or pools["replay"]
    binding = list(binding) if config.binding_weight > 0 else []
    if binding:  # drawn up front, apart from the batches' draws, so a pair's reference can wait for its step
        draw = random.Random(config.seed + 1)
        binding_draws = [draw.sample(binding, min(config.binding_pairs, len(binding))) for _ in range(config.steps)]
    losses, gkd_losses, rewards, binding_losses = [], [], [], []
    skipped: list[dict] = []  # what was not finite on each skipped step, to find the cause later
    start = time.monotonic()
    model.train()
    for step in range(config.steps):
        if step >= planned:
            break
        batch = _mix(pools, config, rng)
        gkd = gkd_loss(model, tokenizer, batch, config, rng, generation)
        loss = (1 - config.alpha) * gkd
        imitation = None
        if config.alpha > 0 and config.imitation_every and step % config.imitation_every == 0 and imitation_pool:
            imitation, reward = imitation_loss(model, tokenizer, rng.choice(imitation_pool), config, similarity, rng,
                                               generation)
            if imitation is not None:
                loss = loss + config.alpha * imitation
                rewards.append(reward)
        bind = None
        if binding:
            chosen = binding_draws[step]
            unread = [p for p in chosen if p.reference is None]
            if unread:
                with adapters(model, None if reference is None else list(reference)):
                    cache_binding_reference(model, tokenizer, unread)  # in eval mode: no dropout
            bind = binding_loss(binding_margins(model, tokenizer, chosen),
                                torch.tensor([p.reference for p in chosen], device=gkd.device), config.binding_beta)
            binding_losses.append(bind.item())
        optimizer.zero_grad(set_to_none=True)
        if bind is not None and config.binding_own_clip:
            norm = backward_clipped_apart(params, [(loss, 1.0), (bind, config.binding_weight)], config.grad_clip)
            loss = loss + config.binding_weight * bind
        else:
            if bind is not None:
                loss = loss + config.binding_weight * bind
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip or float("inf"))
        finite = bool(torch.isfinite(loss) and torch.isfinite(norm))
        if finite:
            optimizer.step()
            generation.stepped(model)
            losses.append(loss.item())
            gkd_losses.append(gkd.item())
        else:  # one bad batch (an overflow in low precision, say) must not poison the expert: no update
            parts = {"gkd": gkd, "imitation": imitation, "binding": bind, "grad_norm": norm}
            skipped.append({"step": step, "kinds": sorted({ex.kind for ex in batch}),
                            **{k: repr(float(v)) for k, v in parts.items() if v is not None}})
        if deadline is not None and step + 1 >= min(PLAN_AFTER, config.steps):
            now = time.monotonic()
            planned = planned_steps(config.steps, step + 1, now - start, deadline - now)
            if bar is not None and bar.total != planned:
                bar.total = planned
                bar.refresh()
        schedule.step()
        if progress:
            progress("seed", step + 1, planned, losses[-1] if finite else None)
        if bar is not None:
            bar.update(1)
            if finite:
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    if not losses:
        return {"steps": 0, "planned_steps": planned, "skipped_steps": len(skipped), "skipped": skipped,
                "loss": [], "gkd": [],
                "seconds": time.monotonic() - start}
    return {
        "steps": len(losses),
        "planned_steps": planned,  # config.steps, or fewer where the night's deadline cut them
        "skipped_steps": len(skipped),  # non-finite loss or gradient: no update
        "skipped": skipped,
        "loss_first": losses[0],
        "loss_last": sum(losses[-3:]) / len(losses[-3:]),
        "gkd_first": gkd_losses[0],
        "gkd_last": sum(gkd_losses[-3:]) / len(gkd_losses[-3:]),
        "imitation_reward": sum(rewards) / len(rewards) if rewards else None,
        "binding_pairs": len(binding),
        "binding_first": binding_losses[0] if binding_losses else None,
        "binding_last": sum(binding_losses[-3:]) / len(binding_losses[-3:]) if binding_losses else None,
        # per step, for the dashboard's training curves
        "loss": [round(x, 4) for x in losses],
        "gkd": [round(x, 4) for x in gkd_losses],
        "seconds": time.monotonic() - start,
    }


