"""What the sleep worker hands a consolidator and gets back: plain data and folders, no database, no web."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

Progress = Callable[[str, int, int, float | None], None]


@dataclass
class SleepJob:
    """One run's work: the namespace's new episodes, the base model, the adapter they build on."""

    run_id: uuid.UUID
    namespace: str
    episodes: list[dict]  # {"id": str, "messages": [..., the assistant's reply]}
    base_model: Path
    current_adapter: Path | None
    workdir: Path


@dataclass
class SleepOutcome:
    adapter_dir: Path
    accepted: bool
    metrics: dict = field(default_factory=dict)
    rank: int = 0
    experts: int = 1
    # the episodes the night consumed (ids as handed in); None: all of them. The others were not dreamed
    # (the night's dreaming budget ran out) and stay in the backlog for the next run.
    episode_ids: list[str] | None = None


class Consolidator(Protocol):
    def __call__(self, job: SleepJob, progress: Progress) -> SleepOutcome: ...
