"""The sleep config the SmolLM2 learning tests use: cpu-default, shortened to fit CI on 2 cores."""

from __future__ import annotations

from pathlib import Path

import yaml

from trainer.config import CONFIG_DIR

SHORT_NIGHT = dict(
    torch_threads=1, steps=30, batch_size=6, general_prompts=4, gate_general_prompts=4, lmbda=0.0,
    imitation_every=12, held_out_per_episode=0, eval_max_new_tokens=24, template_questions=2,
    night_seconds=None,  # the tests judge what a night learns; CI's shared cores must not cut its steps
)


def short_night_config(folder: Path) -> Path:
    config = yaml.safe_load((CONFIG_DIR / "cpu-default.yaml").read_text())
    config.update(SHORT_NIGHT)
    path = folder / "short-night.yaml"
    path.write_text(yaml.safe_dump(config))
    return path
