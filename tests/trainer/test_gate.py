"""The eval gate's verdict on hand-made numbers, and which earlier dreams it asks about."""

import dataclasses
import math
import random

import pytest

from trainer.config import SleepConfig
from trainer.likelihood import LikelihoodShift
from trainer.gate import GateNumbers, retention_pool, retention_ratio, softer_scale, verdict

CONFIG = SleepConfig(min_recall=0.0, min_recall_gain=0.05, min_retention=0.75, max_general_drop=0.5,
                     gate_min_probes=5)


def _gate(**overrides) -> GateNumbers:
    values = dict(recall=0.3, served_recall=0.0, probes=20, retention=0.9, retention_set=15, general=0.75)
    values.update(overrides)
    return GateNumbers(**values)


def test_a_candidate_that_learned_and_kept_is_accepted():
    assert verdict(_gate(), CONFIG) == []


def test_recall_is_judged_as_a_gain_over_the_served_model():
    # 0.15 alone would fail an absolute bar of 0.2; what counts is that the served model had 0.05
    assert verdict(_gate(recall=0.15, served_recall=0.05), CONFIG) == []
    # the same 0.30 is no progress when the served model already recalled 0.30 of the probes
    reasons = verdict(_gate(recall=0.30, served_recall=0.30), CONFIG)
    assert len(reasons) == 1 and "+0.00 over the served model's 0.30" in reasons[0]
    # exactly the minimum gain (one probe in 20) passes despite float rounding
    assert verdict(_gate(recall=0.35, served_recall=0.30), CONFIG) == []


def test_an_absolute_recall_floor_applies_when_configured():
    floor = SleepConfig(min_recall=0.2, min_recall_gain=0.0, gate_min_probes=5)
    assert any("< 0.2" in r for r in verdict(_gate(recall=0.1, served_recall=0.0), floor))


def test_retention_below_the_bar_rejects():
    reasons = verdict(_gate(retention=0.6, retention_set=20), CONFIG)
    assert len(reasons) == 1 and "retention of earlier dreams 0.60" in reasons[0] and "answers 20" in reasons[0]
    assert verdict(_gate(retention=0.75, retention_set=20), CONFIG) == []


def test_a_handful_of_probes_is_reported_not_judged():
    assert verdict(_gate(recall=0.0, served_recall=0.0, probes=4, retention=0.0, retention_set=4), CONFIG) == []
    assert verdict(_gate(recall=None, served_recall=None, probes=0, retention=None, retention_set=0), CONFIG) == []


def test_general_drift_rejects():
    reasons = verdict(_gate(general=0.4), CONFIG)
    assert len(reasons) == 1 and "general agreement" in reasons[0]


LIKELY = SleepConfig(gate_reading="likelihood", min_recall_logprob_gain=0.0, max_retention_logprob_drop=0.5,
                     max_general_logprob_drop=0.25, gate_min_probes=5)


def _shift(**overrides) -> LikelihoodShift:
    values = dict(recall_gain=0.8, retention_change=-0.1, general_change=-0.05, probes=20, retention_asked=30)
    values.update(overrides)
    return LikelihoodShift(**values)


def test_the_likelihood_reading_judges_the_shift_not_the_greedy_numbers():
    # greedy numbers that would refuse, a shift that learned and kept: the configured reading decides
    greedy_refuses = _gate(recall=0.0, served_recall=0.0, retention=0.2, retention_set=20, general=0.0,
                           shift=_shift())
    assert verdict(greedy_refuses, LIKELY) == []
    assert len(verdict(greedy_refuses, CONFIG)) == 3
    # without a shift measured (an older caller) the greedy numbers still decide
    reasons = verdict(_gate(general=0.0), LIKELY)
    assert len(reasons) == 1 and "general agreement with the base 0.00" in reasons[0]


def test_an_open_gate_refuses_nothing():
    broken = _gate(recall=0.0, retention=0.0, retention_set=20, general=0.0,
                   shift=_shift(recall_gain=-3.0, retention_change=-7.0, general_change=-7.0))
    assert verdict(broken, SleepConfig(gate_reading="open")) == []
    assert len(verdict(broken, LIKELY)) == 3


def test_likelihood_recall_must_gain():
    reasons = verdict(_gate(shift=_shift(recall_gain=0.0)), LIKELY)
    assert len(reasons) == 1 and "gained +0.000 nats" in reasons[0] and "20 held-out" in reasons[0]
    assert verdict(_gate(shift=_shift(recall_gain=0.01)), LIKELY) == []


def test_likelihood_retention_and_general_may_lose_at_most_their_bound():
    reasons = verdict(_gate(shift=_shift(retention_change=-0.6)), LIKELY)
    assert len(reasons) == 1 and "30 earlier dreams" in reasons[0] and "-0.600" in reasons[0]
    assert verdict(_gate(shift=_shift(retention_change=-0.5)), LIKELY) == []
    reasons = verdict(_gate(shift=_shift(general_change=-0.3)), LIKELY)
    assert len(reasons) == 1 and "general replies changed -0.300" in reasons[0]


def test_likelihood_on_a_handful_of_probes_is_reported_not_judged():
    few = _shift(recall_gain=-1.0, retention_change=-2.0, probes=4, retention_asked=4)
    assert verdict(_gate(shift=few), LIKELY) == []
    assert verdict(_gate(shift=_shift(recall_gain=None, retention_change=None, general_change=None)), LIKELY) == []


def test_a_candidate_refused_for_general_drift_is_tried_at_the_share_its_bound_allows_less_a_tenth():
    # -0.3 nats against a bound of 0.25: 0.25 / 0.3 of the change is allowed, 0.9 of that is tried
    assert math.isclose(softer_scale(_gate(shift=_shift(general_change=-0.3)), LIKELY), 0.9 * 0.25 / 0.3)
    # both costs over their bounds: the tighter one sets the scale (retention 0.5 / 0.6 < general 0.25 / 0.26)
    both = _gate(shift=_shift(retention_change=-0.6, general_change=-0.26))
    assert math.isclose(softer_scale(both, LIKELY), 0.9 * 0.5 / 0.6)
    # the greedy reading: agreement 0.4 is a drop of 0.6 where 0.5 is allowed
    assert math.isclose(softer_scale(_gate(general=0.4), CONFIG), 0.9 * 0.5 / 0.6)


def test_no_softer_try_for_an_accepted_candidate_a_failed_recall_or_a_change_far_over_its_bound():
    assert softer_scale(_gate(shift=_shift()), LIKELY) is None  # accepted as it is
    # tonight's recall failed: a smaller expert learns less, not more
    assert softer_scale(_gate(shift=_shift(recall_gain=0.0, general_change=-0.3)), LIKELY) is None
    # twice the bound: 0.45 < min_expert_scale 0.7
    assert softer_scale(_gate(shift=_shift(general_change=-0.5)), LIKELY) is None
    assert softer_scale(_gate(shift=_shift(general_change=-0.5)),
                        dataclasses.replace(LIKELY, min_expert_scale=0.4)) == pytest.approx(0.45)
    assert softer_scale(_gate(shift=_shift(general_change=-0.3)),
                        dataclasses.replace(LIKELY, min_expert_scale=None)) is None


def _dream(i, **fields):
    return {"episode_id": f"e{i}", "question": f"q{i}", "answer": f"a{i}", "key_terms": [f"k{i}"], **fields}


def test_retention_pool_asks_recalled_probes_first_then_trained_dreams():
    earlier = ([_dream(i, held_out=True, recalled=True) for i in range(3)]
               + [_dream(10 + i, held_out=True, recalled=False) for i in range(3)]  # never known: not asked
               + [_dream(20 + i) for i in range(10)]
               + [{**_dream(40), "key_terms": []}])  # nothing to check a reply against
    pool = retention_pool(earlier, 8, random.Random(0))
    assert len(pool) == 8
    assert {d.question for d in pool[:3]} == {"q0", "q1", "q2"} and all(d.held_out for d in pool[:3])
    assert all(not d.held_out and d.question.startswith("q2") for d in pool[3:])
    assert retention_pool(earlier, 0, random.Random(0)) == []
    assert len(retention_pool(earlier, 100, random.Random(0))) == 13


def test_retention_pool_asks_a_question_once_with_the_key_terms_of_all_its_answers():
    earlier = [_dream(1), {**_dream(1), "answer": "the user's words", "key_terms": ["k1", "lodun"]}, _dream(2)]
    pool = retention_pool(earlier, 10, random.Random(0))
    assert sorted(d.question for d in pool) == ["q1", "q2"]
    assert next(d for d in pool if d.question == "q1").key_terms == ["k1", "lodun"]


def test_retention_counts_answers_gained_as_well_as_lost():
    served = [True, True, True, True, False, False, False, False]
    # loses 2 of the 4 it knew and gains 2 it did not: as much recall as before, nothing forgotten
    churned = [True, True, False, False, True, True, False, False]
    assert retention_ratio(served, churned) == 1.0
    # loses 1 of 4, gains nothing: 3 / 4
    assert retention_ratio(served, [True, True, True, False, False, False, False, False]) == 0.75
    # gains more than it had: above 1
    assert retention_ratio(served, [True] * 6 + [False] * 2) == 1.5
    assert retention_ratio([False] * 3, [True] * 3) is None  # nothing known: no evidence either way
    assert retention_ratio([], []) is None


def test_retention_pool_leaves_out_questions_that_test_no_one_memory():
    earlier = [_dream(1), {**_dream(2), "specific": False}, _dream(3)]
    assert sorted(d.question for d in retention_pool(earlier, 10, random.Random(0))) == ["q1", "q3"]
    # tonight trains "q3" again, about another episode: the candidate's new answer is not forgetting
    assert [d.question for d in retention_pool(earlier, 10, random.Random(0), asked_tonight={"q3"})] == ["q1"]


def test_retention_is_broken_down_by_what_each_earlier_dream_asks():
    from trainer.dreaming import Dream
    from trainer.gate import retention_by_form

    pool = [Dream.from_dict(d) for d in (_dream(0, held_out=True, recalled=True), _dream(1), _dream(2, cloze=True),
                                         _dream(3, cloze=True), _dream(4, held_out=True, cloze=True))]
    served = [True, True, True, False, True]
    candidate = [True, False, False, True, False]
    assert retention_by_form(pool, served, candidate) == {
        "held-out question": {"asked": 1, "served": 1, "candidate": 1},
        "trained question": {"asked": 1, "served": 1, "candidate": 0},
        "trained cloze": {"asked": 2, "served": 1, "candidate": 1},
        "held-out cloze": {"asked": 1, "served": 1, "candidate": 0},
    }
