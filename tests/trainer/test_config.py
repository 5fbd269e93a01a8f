"""Every shipped config loads; range checks speak in sentences."""

import dataclasses
import json
from pathlib import Path

import pytest

from trainer import prompts
from trainer.config import VLLM_LORA_RANKS, SleepConfig

GENERAL_DEV = Path(__file__).resolve().parents[2] / "bench" / "data" / "general-dev.jsonl"


@pytest.mark.parametrize("path", SleepConfig.shipped(), ids=lambda p: p.stem)
def test_every_shipped_config_loads(path):
    config = SleepConfig.from_yaml(path)
    assert config.max_lora_rank in VLLM_LORA_RANKS
    assert config.expert_rank <= config.max_lora_rank
    # a count past the list would be cut silently by the slice in recipe.training_set
    assert config.general_prompts <= len(prompts.TRAIN) and config.gate_general_prompts <= len(prompts.GATE)


def test_general_prompts_trained_gated_and_measured_are_three_disjoint_sets():
    measured = {json.loads(line)["question"] for line in GENERAL_DEV.read_text().splitlines()}
    trained, gated = set(prompts.TRAIN), set(prompts.GATE)
    assert len(trained) == len(prompts.TRAIN) and len(gated) == len(prompts.GATE)
    assert not trained & gated and not trained & measured and not gated & measured


def test_cpu_and_gpu_defaults_are_shipped():
    names = {p.stem for p in SleepConfig.shipped()}
    assert {"cpu-default", "gpu-default"} <= names
    assert SleepConfig.from_yaml("gpu-default").dtype == "bfloat16"
    assert SleepConfig.from_yaml("cpu-default").resolved_device() == "cpu"


def test_overrides_and_unknown_fields(tmp_path):
    assert SleepConfig.from_yaml("cpu-default", steps=3).steps == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text("stepz: 3\n")
    with pytest.raises(ValueError, match="unknown SleepConfig fields: stepz"):
        SleepConfig.from_yaml(bad)


def test_a_number_written_without_a_dot_reads_as_a_number(tmp_path):
    # YAML 1.1 (PyYAML) reads 5e-3 as the string "5e-3": a float field takes it as the number it means
    path = tmp_path / "c.yaml"
    path.write_text("learning_rate: 5e-3\n")
    assert SleepConfig.from_yaml(path).learning_rate == 0.005
    assert SleepConfig.from_yaml("cpu-default", night_seconds="1e3").night_seconds == 1000.0
    with pytest.raises(ValueError, match="learning_rate must be a number, not 'fast'"):
        SleepConfig.from_yaml(path, learning_rate="fast")


def test_every_field_has_help():
    assert all(f.metadata.get("help") for f in dataclasses.fields(SleepConfig))


@pytest.mark.parametrize(
    "change, words",
    [
        ({"beta": 1.5}, "beta"),
        ({"alpha": -0.1}, "alpha"),
        ({"max_lora_rank": 48}, "max_lora_rank"),
        ({"expert_rank": 0}, "expert_rank"),
        ({"imitation_group": 1}, "group baseline"),
        ({"replay_fraction": 0.6, "general_fraction": 0.5}, "sum to less than 1"),
        ({"dtype": "int8"}, "dtype"),
        ({"gate_reading": "lenient"}, "gate_reading must be one of"),
        ({"max_general_logprob_drop": -0.1}, "must not be negative"),
        ({"night_seconds": 0}, "night_seconds must be positive"),
        ({"dream_exposures": 0}, "dream_exposures must be positive"),
        ({"handle_questions": -1}, "question counts must not be negative"),
    ],
)
def test_range_checks_raise_a_sentence(change, words):
    with pytest.raises(ValueError, match=words):
        SleepConfig(**change)


def test_a_night_scales_its_steps_with_its_dreams():
    # batch 8, general 1 of them: 7 places for tonight's dreams, each dream drawn 3.5 times = a step per two
    config = SleepConfig(steps=200, dream_exposures=3.5, min_steps=20, batch_size=8, general_fraction=0.125,
                         replay_fraction=0.25)
    assert [config.for_backlog(n).steps for n in (0, 10, 60, 100, 1000)] == [20, 20, 30, 50, 200]
    assert SleepConfig(steps=60).for_backlog(1000).steps == 60  # no scaling: always `steps`


def test_replay_taking_its_places_gives_tonight_more_steps_not_fewer_exposures():
    config = SleepConfig(steps=200, dream_exposures=3.5, min_steps=20, batch_size=8, general_fraction=0.125,
                         replay_fraction=0.25)
    assert config.tonight_per_batch(replaying=False) == 7
    assert config.tonight_per_batch(replaying=True) == 5  # replay takes 2 of the 8
    night = config.for_backlog(100, replaying=True)
    assert night.steps == 70
    assert night.steps * config.tonight_per_batch(True) / 100 == 3.5  # as often as on the first night
