"""How one night's seconds are shared between its phases (`SleepConfig.night_seconds`).

Dreaming takes at most `dream_share` of the night. A backlog longer than `dream_chunk` episodes is dreamed
a chunk at a time, oldest first; after each chunk the pace it measured (seconds per episode window) says
how many of the next episodes still fit, and the episodes that do not are left undreamed. The recipe
reports which episodes a night consumed; the others stay in the backlog for the next night, so a night
of any backlog ends in its budget and no episode is dropped. Seeding then ends in time for the gate and
the save (`seed_deadline`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from trainer.config import SleepConfig
from trainer.dreaming import NightDreams, dream
from trainer.episodes import episode_windows
from trainer.generation import LOCAL, Generation


def dream_within_budget(model, tokenizer, episodes: Sequence[dict], config: SleepConfig, *, night=None,
                        progress=None, writer=None, earlier: Sequence[dict] = (),
                        generation: Generation = LOCAL) -> tuple[NightDreams, list[dict]]:
    """Tonight's dreams and the episodes they were dreamed from (the first of `episodes`, in order).

    With no budget (`night_seconds` or `dream_share` None), or a backlog of at most `dream_chunk`
    episodes, this is one `dreaming.dream` call over every episode. Otherwise each chunk is its own call:
    whether a question singles out its episode (`identifies`) is then judged within its chunk, and every
    chunk rechecks the same earlier dreams for corrections. The first chunk always runs, so every night
    consumes something."""
    if config.night_seconds is None or config.dream_share is None or len(episodes) <= config.dream_chunk:
        return dream(model, tokenizer, episodes, config, night=night, progress=progress, writer=writer,
                     earlier=earlier, generation=generation), list(episodes)
    budget = config.night_seconds * config.dream_share
    windows = [len(views) for views in episode_windows(tokenizer, episodes, config).values()]
    started = time.monotonic()
    parts: list[NightDreams] = []
    done, size = 0, config.dream_chunk
    while size:
        parts.append(dream(model, tokenizer, episodes[done:done + size], config, night=night, writer=writer,
                           earlier=earlier, generation=generation))
        done += size
        if progress:
            progress("dream", done, len(episodes), None)
        spent = time.monotonic() - started
        size = episodes_that_fit(windows[done:done + config.dream_chunk], spent / max(1, sum(windows[:done])),
                                 budget - spent)
    return NightDreams([d for p in parts for d in p.dreams], [r for p in parts for r in p.retired]), list(episodes[:done])


def episodes_that_fit(windows: Sequence[int], seconds_per_window: float, seconds_left: float) -> int:
    """How many of the next episodes (their window counts, in order) fit in `seconds_left` at the pace
    measured so far."""
    fit, cost = 0, 0.0
    for count in windows:
        cost += count * seconds_per_window
        if cost > seconds_left:
            break
        fit += 1
    return fit


def seed_deadline(started: float, seconds: dict[str, float], config: SleepConfig) -> float | None:
    """When seeding must end for the night to fit `config.night_seconds` (None: no budget). The gate after
    seeding repeats the served model's pass and adds the general prompts: twice that pass, plus a few
    seconds to save, are kept for it, and a twentieth of the night besides: the gate's greedy replies to
    the general prompts and the last step's overrun took nights 9-21 s past 600 s on memory-public
    (2026-12-04, the gate taking up to 46 s against 17 s kept)."""
    if config.night_seconds is None:
        return None
    return started + config.night_seconds - (2 * seconds.get("served", 0.0) + 5.0 + config.night_seconds / 20)


def has_time_for(seconds: float, started: float, config: SleepConfig) -> bool:
    """Whether `seconds` more, and a few to save, still end the night started at `started` in its budget."""
    return config.night_seconds is None or time.monotonic() + seconds + 5.0 <= started + config.night_seconds
