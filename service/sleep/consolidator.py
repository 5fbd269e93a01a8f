"""The worker's consolidator: hands a run's episodes to the trainer's sleep recipe.

Kept dreams travel with the adapter they trained (`reverie_dreams.jsonl` in its folder), so the next
night replays them from whatever adapter is active, rollbacks included.
"""

from __future__ import annotations

import json
from pathlib import Path

from service.sleep.job import Progress, SleepJob, SleepOutcome

DREAMS_FILE = "reverie_dreams.jsonl"


def read_dreams(adapter_dir: Path | None) -> list[dict]:
    if adapter_dir is None or not (adapter_dir / DREAMS_FILE).is_file():
        return []
    with open(adapter_dir / DREAMS_FILE, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_dreams(adapter_dir: Path, dreams: list[dict]) -> None:
    with open(adapter_dir / DREAMS_FILE, "w", encoding="utf-8") as handle:
        for dream in dreams:
            handle.write(json.dumps(dream) + "\n")


class TrainerConsolidator:
    """`trainer.recipe.sleep` with a config chosen by name (shipped) or YAML path, plus overrides."""

    def __init__(self, config: str, **overrides):
        self.config = config
        self.overrides = overrides

    def __call__(self, job: SleepJob, progress: Progress) -> SleepOutcome:
        from trainer.config import SleepConfig
        from trainer.experts import adapter_rank, read_experts
        from trainer.recipe import sleep

        config = SleepConfig.from_yaml(self.config, **self.overrides)
        if config.growth_mode != "lora":
            raise ValueError(f"growth_mode {config.growth_mode!r} makes a new base model, and the service "
                             "publishes and serves LoRA adapters over a fixed base only: use growth_mode 'lora'.")
        result = sleep(
            job.episodes,
            base_model=job.base_model,
            adapter_dir=job.current_adapter,
            earlier_dreams=read_dreams(job.current_adapter),
            config=config,
            out_dir=job.workdir / "candidate",
            served_base=str(job.base_model),
            night=job.run_id.hex[:8],
            progress=progress,
        )
        adapter_dir = Path(result.adapter_dir)
        write_dreams(adapter_dir, result.dreams)
        return SleepOutcome(
            adapter_dir=adapter_dir,
            accepted=result.accepted,
            metrics={**result.metrics, "rejected_because": result.reasons},
            rank=adapter_rank(adapter_dir),
            experts=len(read_experts(adapter_dir)),
            episode_ids=result.episode_ids,
        )
