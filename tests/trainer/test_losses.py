"""Losses on hand-computed cases (the TRL GKD habit)."""

import math

import pytest
import torch

from trainer.losses import (
    binding_loss,
    distillation_with_answers,
    edit_distance,
    edit_similarity,
    generalized_jsd,
    imitation_reward,
    policy_gradient_loss,
    sequence_logprob,
    token_logprobs,
)


def _kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


P = [0.7, 0.2, 0.1]  # teacher
Q = [0.2, 0.5, 0.3]  # student
LP = torch.tensor(P).log().view(1, 1, 3)
LQ = torch.tensor(Q).log().view(1, 1, 3)


def test_identical_logits_give_zero():
    logits = torch.randn(2, 5, 11)
    for beta in (0.0, 0.3, 1.0):
        assert generalized_jsd(logits, logits.clone(), beta=beta).item() == pytest.approx(0.0, abs=1e-6)


def test_beta_ends_are_the_two_kls():
    assert generalized_jsd(LQ, LP, beta=0.0).item() == pytest.approx(_kl(P, Q), rel=1e-5)
    assert generalized_jsd(LQ, LP, beta=1.0).item() == pytest.approx(_kl(Q, P), rel=1e-5)


def test_half_beta_is_the_jensen_shannon_divergence():
    m = [(p + q) / 2 for p, q in zip(P, Q)]
    expected = 0.5 * _kl(P, m) + 0.5 * _kl(Q, m)
    assert generalized_jsd(LQ, LP, beta=0.5).item() == pytest.approx(expected, rel=1e-5)
    # bounded by log 2, symmetric at beta = 0.5
    assert expected < math.log(2)
    assert generalized_jsd(LP, LQ, beta=0.5).item() == pytest.approx(expected, rel=1e-5)


def test_beta_interior_uses_the_weighted_mixture():
    beta = 0.25
    m = [beta * p + (1 - beta) * q for p, q in zip(P, Q)]
    expected = beta * _kl(P, m) + (1 - beta) * _kl(Q, m)
    assert generalized_jsd(LQ, LP, beta=beta).item() == pytest.approx(expected, rel=1e-5)


def test_mask_averages_only_counted_tokens():
    student = torch.cat([LQ, LP, LQ], dim=1)  # token 1 identical -> 0
    teacher = torch.cat([LP, LP, LP], dim=1)
    mask = torch.tensor([[1, 1, 0]])
    assert generalized_jsd(student, teacher, mask, beta=0.0).item() == pytest.approx(_kl(P, Q) / 2, rel=1e-5)
    assert generalized_jsd(student, teacher, torch.zeros(1, 3), beta=0.0).item() == 0.0


def test_temperature_scales_both():
    t = 2.0
    p = torch.softmax(LP.flatten() / t, 0).tolist()
    q = torch.softmax(LQ.flatten() / t, 0).tolist()
    assert generalized_jsd(LQ, LP, beta=0.0, temperature=t).item() == pytest.approx(_kl(p, q), rel=1e-5)


def test_teacher_temperature_sharpens_the_teacher_only():
    # teacher [1/4, 3/4] at temperature 1/2 is [1/10, 9/10]; the student [1/2, 1/2] is left as it is
    teacher = torch.tensor([0.0, math.log(3.0)]).view(1, 1, 2)
    student = torch.zeros(1, 1, 2)
    sharpened = generalized_jsd(student, teacher, beta=0.0, teacher_temperature=0.5).item()
    assert sharpened == pytest.approx(_kl([0.1, 0.9], [0.5, 0.5]), rel=1e-5)
    assert generalized_jsd(student, teacher, beta=0.0).item() == pytest.approx(_kl([0.25, 0.75], [0.5, 0.5]), rel=1e-5)
    # a student already on the sharpened teacher has nothing left to learn
    assert generalized_jsd(teacher * 2, teacher, beta=0.0, teacher_temperature=0.5).item() == pytest.approx(0.0, abs=1e-6)


def test_distillation_with_answers_mixes_in_the_told_tokens_only():
    # two positions: the first is a told answer token, the second a sampled one (divergence only)
    student = torch.tensor([[0.3, 0.7], [0.5, 0.5]]).log().view(1, 2, 2)
    teacher = torch.tensor([[0.6, 0.4], [0.9, 0.1]]).log().view(1, 2, 2)
    targets, mask, told = torch.tensor([[1, 0]]), torch.tensor([[True, True]]), torch.tensor([[True, False]])
    jsd = generalized_jsd(student, teacher, mask, beta=0.0, reduction="none")
    assert jsd[0].tolist() == pytest.approx([_kl([0.6, 0.4], [0.3, 0.7]), _kl([0.9, 0.1], [0.5, 0.5])], rel=1e-5)
    w = 0.5
    loss = distillation_with_answers(jsd, student, targets, mask, told, w).item()
    first = (1 - w) * _kl([0.6, 0.4], [0.3, 0.7]) + w * -math.log(0.7)
    assert loss == pytest.approx((first + _kl([0.9, 0.1], [0.5, 0.5])) / 2, rel=1e-5)
    # weight 0 is the divergence alone; at a told position it is KL from the teacher mixed with the token
    assert distillation_with_answers(jsd, student, targets, mask, told, 0.0).item() == pytest.approx(
        jsd.mean().item(), rel=1e-5)
    mixed = [(1 - w) * 0.6, (1 - w) * 0.4 + w]
    entropy = lambda p: -sum(x * math.log(x) for x in p)  # noqa: E731
    assert first == pytest.approx(_kl(mixed, [0.3, 0.7]) + entropy(mixed) - (1 - w) * entropy([0.6, 0.4]), rel=1e-5)
    # a masked position counts nowhere, told or not
    only_first = distillation_with_answers(jsd, student, targets, torch.tensor([[True, False]]), told, w).item()
    assert only_first == pytest.approx(first, rel=1e-5)


def test_jsd_gradient_flows_to_student_only():
    student = torch.randn(1, 2, 5, requires_grad=True)
    teacher = torch.randn(1, 2, 5)
    generalized_jsd(student, teacher, beta=0.5).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="beta"):
        generalized_jsd(LQ, LP, beta=1.5)
    with pytest.raises(ValueError, match="shapes"):
        generalized_jsd(LQ, torch.zeros(1, 2, 3))


def test_edit_distance_and_similarity():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3
    assert edit_similarity("kitten", "sitting", threshold=1.0) == pytest.approx(1 - 3 / 7)
    assert edit_similarity("abc", "abc") == 1.0
    assert edit_similarity("", "") == 1.0
    # 3/7 = 0.43 is past a threshold of 0.4: no credit
    assert edit_similarity("kitten", "sitting", threshold=0.4) == 0.0


def test_imitation_reward_mixes_semantic_and_edit():
    rewards = imitation_reward(
        torch.tensor([1.0, 0.5, -0.2]), ["abc", "abd", "xyz"], "abc", gamma=0.25, threshold=0.5
    )
    expected = [0.25 * 1 + 0.75 * 1, 0.25 * 0.5 + 0.75 * (1 - 1 / 3), 0.25 * 0 + 0.75 * 0]
    assert rewards.tolist() == pytest.approx(expected)


def test_policy_gradient_group_baseline():
    logprobs = torch.tensor([[-1.0, -2.0, 0.0], [-0.5, -0.5, -9.0]], requires_grad=True)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    rewards = torch.tensor([1.0, 0.0])
    loss = policy_gradient_loss(logprobs, mask, rewards)
    # advantages +0.5, -0.5; mean token log-probs -1.0 and -0.5
    assert loss.item() == pytest.approx(-(0.5 * -1.0 + -0.5 * -0.5) / 2)
    loss.backward()
    assert logprobs.grad[0].tolist() == pytest.approx([-0.5 / 3 / 2] * 3)
    assert logprobs.grad[1].tolist() == pytest.approx([0.5 / 2 / 2, 0.5 / 2 / 2, 0.0])
    # equal rewards: nothing to learn
    assert policy_gradient_loss(logprobs, mask, torch.tensor([0.3, 0.3])).item() == 0.0


def test_token_logprobs_gathers():
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0]]])
    out = token_logprobs(logits, torch.tensor([[1, 0]]))
    assert out[0].tolist() == pytest.approx([math.log(0.5), math.log(0.75)])


def test_a_non_finite_value_at_a_masked_position_does_not_leak():
    student = torch.cat([LQ, LP, torch.full_like(LQ, float("nan"))], dim=1)
    teacher = torch.cat([LP, LP, LP], dim=1)
    mask = torch.tensor([[1, 1, 0]])
    assert generalized_jsd(student, teacher, mask, beta=0.5).item() == pytest.approx(
        generalized_jsd(student[:, :2], teacher[:, :2], beta=0.5).item() * 2 / 2, rel=1e-6)
    logprobs = torch.tensor([[-1.0, -2.0, float("-inf")]])
    loss = policy_gradient_loss(logprobs, torch.tensor([[1, 1, 0]]), torch.tensor([1.0]))
    assert torch.isfinite(loss) and loss.item() == 0.0  # one completion: its advantage is 0
    two = torch.tensor([[-1.0, -2.0, float("nan")], [-0.5, -0.5, -0.5]])
    assert policy_gradient_loss(two, torch.tensor([[1, 1, 0], [1, 1, 1]]), torch.tensor([1.0, 0.0])).item() == \
        pytest.approx(-(0.5 * -1.5 + -0.5 * -0.5) / 2)


def test_binding_loss_is_dpo_on_own_over_rival_margins():
    # nothing moved: log 2, whatever the margins themselves are
    assert binding_loss(torch.tensor([3.0, -1.0]), torch.tensor([3.0, -1.0])).item() == pytest.approx(math.log(2))
    # gains of +2 and -1 with beta 0.5: mean(log(1 + e^-1), log(1 + e^0.5))
    expected = (math.log(1 + math.exp(-1.0)) + math.log(1 + math.exp(0.5))) / 2
    loss = binding_loss(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 1.0]), beta=0.5)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # the gradient raises the policy margin, never the reference's
    policy = torch.tensor([0.0], requires_grad=True)
    reference = torch.tensor([0.0], requires_grad=True)
    binding_loss(policy, reference).backward()
    assert policy.grad.item() == pytest.approx(-0.5) and reference.grad is None
    with pytest.raises(ValueError):
        binding_loss(torch.zeros(2), torch.zeros(3))


def test_sequence_logprob_sums_the_masked_tokens():
    logprobs = torch.tensor([[-1.0, -2.0, -3.0], [float("nan"), -0.5, -0.25]])
    mask = torch.tensor([[True, True, True], [False, True, True]])
    assert sequence_logprob(logprobs, mask).tolist() == [-6.0, -0.75]
