"""The whole recipe, 3 steps a night, on the tiny random model: runs in seconds, saves a loadable adapter,
replays and merges on later nights, reports progress, and never reads probes/answers/relation."""

import json

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from trainer import dreaming
from trainer.config import SleepConfig
from trainer.recipe import SleepResult, sleep

pytestmark = pytest.mark.model


class Guarded(dict):
    """An episode that fails the test if anything but its messages/id is read."""

    def __getitem__(self, key):
        if key not in ("messages", "id"):
            raise AssertionError(f"the trainer read episode[{key!r}]")
        return super().__getitem__(key)

    def get(self, key, default=None):
        if key not in ("messages", "id"):
            raise AssertionError(f"the trainer read episode.get({key!r})")
        return super().get(key, default)


EPISODES = [
    Guarded(id="e1", probes=[], relation="pet", messages=[
        {"role": "user", "content": "Quick update: Mirpa Lovos's new parrot is named Lodun!"},
        {"role": "assistant", "content": "Got it, noted!"}]),
    Guarded(id="e2", probes=[], relation="job", messages=[
        {"role": "user", "content": "Kaett Dunvos works as a ferry pilot at the harbour."},
        {"role": "assistant", "content": "That's lovely to hear."}]),
]


def _config(**overrides):
    values = dict(steps=3, batch_size=4, dream_max_new_tokens=6, eval_max_new_tokens=6, on_policy_max_new_tokens=6,
                  question_max_new_tokens=6, model_questions=1, answers_per_question=2, template_questions=3, entities_per_episode=1,
                  imitation_every=2, imitation_group=2, lmbda=0.5, alpha=0.2, expert_rank=4, max_lora_rank=8,
                  semantic_model="self", torch_threads=1, device="cpu", dtype="float32", seed=0)
    values.update(overrides)
    return SleepConfig(**values)


@pytest.fixture
def grounded(monkeypatch):
    """A random model's answers never restate the episode: count every dream as grounded."""
    monkeypatch.setattr(dreaming, "agreement", lambda answer, episode, question: (0.5, ["lodun"]))


def test_three_nights_on_the_tiny_model(tiny_model_dir, tmp_path, grounded):
    calls = []
    config = _config()
    first = sleep(EPISODES, base_model=tiny_model_dir, adapter_dir=None, earlier_dreams=[], config=config,
                  out_dir=tmp_path / "n1", served_base="served-base", night="1",
                  progress=lambda *a: calls.append(a))
    assert isinstance(first, SleepResult)
    phases = [c[0] for c in calls]
    assert phases[0] == "setup" and phases[-1] == "save" and {"dream", "seed", "evaluate"} <= set(phases)
    seed_calls = [c for c in calls if c[0] == "seed"]
    assert [c[1] for c in seed_calls] == [1, 2, 3] and all(c[2] == 3 and c[3] is not None for c in seed_calls)
    metrics = first.metrics
    assert metrics["dreams"] > 0 and metrics["probes"] > 0 and metrics["train"]["steps"] == 3
    assert all(torch.isfinite(torch.tensor(v)) for v in (metrics["train"]["loss_first"], metrics["train"]["loss_last"]))
    config_json = json.loads((first.adapter_dir / "adapter_config.json").read_text())
    assert config_json["base_model_name_or_path"] == "served-base" and config_json["r"] == 4
    assert any(d["held_out"] for d in first.dreams)
    assert json.loads((tmp_path / "n1" / "metrics.json").read_text())["accepted"] == first.accepted
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    PeftModel.from_pretrained(base, first.adapter_dir)  # loads as a standard PEFT folder

    second = sleep(EPISODES, base_model=tiny_model_dir, adapter_dir=first.adapter_dir,
                   earlier_dreams=first.dreams, config=config, out_dir=tmp_path / "n2", night="2")
    assert second.metrics["replayed"] > 0 and second.metrics["rank"] == 8 and second.metrics["experts"] == 2
    # the third night passes the rank budget (8): the stack is merged by SVD before growing
    third = sleep(EPISODES, base_model=tiny_model_dir, adapter_dir=second.adapter_dir,
                  earlier_dreams=second.dreams, config=config, out_dir=tmp_path / "n3", night="3")
    assert third.metrics["rank"] == 8 and third.metrics["merge_error"] is not None
    assert 0.0 <= third.metrics["merge_error"] < 1.0


def test_gate_rejects_below_thresholds(tiny_model_dir, tmp_path, grounded):
    result = sleep(EPISODES, base_model=tiny_model_dir, adapter_dir=None, earlier_dreams=[],
                   config=_config(steps=2, min_recall=1.0, imitation_every=0, gate_min_probes=1), out_dir=tmp_path / "n1")
    if result.metrics["recall"] < 1.0:
        assert not result.accepted and any("recall" in r for r in result.reasons)
    assert result.adapter_dir.is_dir()  # a rejected candidate is still saved, with its metrics


def test_gate_does_not_judge_on_a_handful_of_probes(tiny_model_dir, tmp_path, grounded):
    result = sleep(EPISODES, base_model=tiny_model_dir, adapter_dir=None, earlier_dreams=[],
                   config=_config(steps=1, min_recall=1.0, imitation_every=0, gate_min_probes=100,
                                  max_general_drop=1.0), out_dir=tmp_path / "n1")
    assert result.accepted and result.metrics["recall"] is not None
