"""Losses and rewards of knowledge seeding: pure functions over tensors and strings.

Shapes: B batch, T tokens, V vocabulary, G completions in one group.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def generalized_jsd(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    mask: torch.Tensor | None = None,
    beta: float = 0.5,
    temperature: float = 1.0,
    teacher_temperature: float = 1.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Token-level generalized Jensen-Shannon divergence, averaged over the unmasked tokens.

    `JSD_beta(T || S) = beta * KL(T || M) + (1 - beta) * KL(S || M)` with the mixture
    `M = beta * T + (1 - beta) * S` (as in TRL's GKD `generalized_jsd_loss`). The ends are the KLs:
    beta = 0 gives forward KL(teacher || student), beta = 1 reverse KL(student || teacher).

    Args:
        student_logits: (B, T, V), gradients flow through it.
        teacher_logits: (B, T, V), aligned with the student: position t of both predicts the same token.
        mask: (B, T) bool/0-1, the positions that count; None counts all.
        beta: interpolation in [0, 1].
        temperature: applied to both sets of logits.
        teacher_temperature: applied to the teacher's logits only, after `temperature`. Below 1 the
            target leans toward the teacher's likeliest tokens (0 < t < 1: a sharpened teacher; as t
            goes to 0, cross-entropy on the teacher's argmax).
        reduction: "mean" or "none".
    Returns:
        "mean": a scalar, the sum of per-token divergences over unmasked tokens / their count (0 if none);
        "none": (B, T) per-token divergences, 0 at masked positions.
    """
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}.")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"logit shapes differ: {tuple(student_logits.shape)} vs {tuple(teacher_logits.shape)}.")
    s, t = student_logits.float(), teacher_logits.float()
    if temperature != 1.0:  # x / 1.0 == x: at the default, spare two passes over (B, T, V)
        s, t = s / temperature, t / temperature
    if teacher_temperature != 1.0:
        t = t / teacher_temperature
    s, t = F.log_softmax(s, dim=-1), F.log_softmax(t, dim=-1)
    if beta == 0.0:
        per_token = _kl(t, s)
    elif beta == 1.0:
        per_token = _kl(s, t)
    else:
        m = torch.logsumexp(torch.stack([s + math.log(1.0 - beta), t + math.log(beta)]), dim=0)
        per_token = beta * _kl(t, m) + (1.0 - beta) * _kl(s, m)
    if mask is None:
        return per_token.mean() if reduction == "mean" else per_token
    # where, not a product: a non-finite value at a masked (padding) position must not leak in
    mask = mask.to(torch.bool)
    per_token = torch.where(mask, per_token, 0.0)
    return per_token.sum() / mask.sum().clamp(min=1) if reduction == "mean" else per_token


def distillation_with_answers(
    jsd: torch.Tensor,
    student_logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    told: torch.Tensor,
    weight: float,
) -> torch.Tensor:
    """Per-token divergence `jsd` (B, T) where only the teacher teaches, and `(1 - weight) * jsd + weight *
    cross-entropy of targets` at the `told` positions (the example's own answer), averaged over `mask`.

    With forward KL, `(1 - w) * KL(teacher || student) + w * CE(target)` is KL from the mixture
    `(1 - w) * teacher + w * one_hot(target)`, less a constant: the told words themselves, where the
    teacher's distribution only half says them. Positions outside `told` (a student's sample, a prompt
    whose whole distribution is to be kept) keep the divergence at full weight.
    """
    mask, told = mask.to(torch.bool), told.to(torch.bool) & mask.to(torch.bool)
    nll = -token_logprobs(student_logits, targets)
    per_token = torch.where(told, (1.0 - weight) * jsd + weight * nll, jsd)
    return torch.where(mask, per_token, 0.0).sum() / mask.sum().clamp(min=1)


def _kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) over the last axis, from log-probabilities: (..., V) -> (...)."""
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between two strings (characters): insertions, deletions, substitutions."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def edit_similarity(candidate: str, reference: str, threshold: float = 0.7) -> float:
    """`1 - d / max(len)` with d the edit distance; 0 once `d / max(len)` exceeds `threshold`.

    Two empty strings are identical (1.0).
    """
    longest = max(len(candidate), len(reference))
    if longest == 0:
        return 1.0
    distance = edit_distance(candidate, reference) / longest
    return 0.0 if distance > threshold else 1.0 - distance


def imitation_reward(
    semantic: torch.Tensor, candidates: list[str], reference: str, gamma: float, threshold: float
) -> torch.Tensor:
    """Reward of each student completion against the teacher's: `gamma*semantic + (1-gamma)*edit`.

    Args:
        semantic: (G,) semantic similarity of each candidate to the reference, in [-1, 1]
            (cosine); clamped to [0, 1].
        candidates: G completions of the student.
        reference: the teacher's completion they imitate.
    Returns:
        (G,) rewards in [0, 1].
    """
    if semantic.shape != (len(candidates),):
        raise ValueError(f"semantic must have shape ({len(candidates)},), got {tuple(semantic.shape)}.")
    edit = torch.tensor([edit_similarity(c, reference, threshold) for c in candidates], dtype=torch.float32)
    return gamma * semantic.float().clamp(0.0, 1.0) + (1.0 - gamma) * edit


def policy_gradient_loss(logprobs: torch.Tensor, mask: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    """REINFORCE with a group baseline: `-mean_g[(r_g - mean(r)) * mean_t log p(y_gt)]`.

    Args:
        logprobs: (G, T) log-probability of each sampled token under the student (with gradients).
        mask: (G, T) 1 where the token belongs to the completion.
        rewards: (G,) rewards of the G completions of one prompt (no gradient).
    Returns:
        a scalar; 0 when all rewards are equal (no signal, not a push in any direction).
    """
    mask = mask.to(torch.bool)
    advantage = (rewards - rewards.mean()).detach().to(logprobs.dtype)
    mean_logprob = sequence_logprob(logprobs, mask) / mask.sum(-1).clamp(min=1)
    return -(advantage * mean_logprob).mean()


def binding_loss(policy_margin: torch.Tensor, reference_margin: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """DPO's loss on own-answer-over-rival-answer margins: `mean softplus(-beta * (m_policy - m_ref))`.

    A margin is `log p(own answer | question) - log p(rival answer | question)`, summed over tokens,
    where the rival answer is the own one with another person's value put in: the shared prefix ("Mirpa
    Lovos's parrot is named") cancels, what differs (the name of the parrot) decides it. The reference
    margin is the model's before training, so a length difference between the answers cancels too.

    Args:
        policy_margin: (B,) margins under the model being trained (with gradients).
        reference_margin: (B,) the same margins under the model before training (no gradient).
        beta: scale of the margin gain.
    Returns:
        a scalar: log 2 when nothing moved, towards 0 as the own answer gains over the rival's.
    """
    if policy_margin.shape != reference_margin.shape:
        raise ValueError(f"margin shapes differ: {tuple(policy_margin.shape)} vs {tuple(reference_margin.shape)}.")
    gain = policy_margin.float() - reference_margin.detach().float()
    return F.softplus(-beta * gain).mean()


def sequence_logprob(logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Log-probability of each continuation: (B, T) token log-probs, (B, T) mask -> (B,) their masked sum."""
    return torch.where(mask.to(torch.bool), logprobs, 0.0).sum(-1)


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Log-probability of each token: logits (B, T, V) predicting tokens (B, T) -> (B, T)."""
    return torch.gather(F.log_softmax(logits.float(), dim=-1), -1, tokens.unsqueeze(-1)).squeeze(-1)
