"""Where a night's text comes from: the teacher's answers and the student's samples.

A night generates text in two roles. The **teacher** is the model the night starts from (the served
stack) with an episode in its context: it writes the dreams' answers (and, when asked, questions). The
**student** is the model being trained: its on-policy GKD continuations and its imitation groups.

`LocalGeneration` (the default) runs `chat.generate` on the training model itself, as its adapters stand:
the recipe already makes the served stack active while dreaming and the student's stack while seeding, so
both roles read the very weights in memory and the student's samples are always current.

Another implementation may serve both roles from an inference server (the service's vLLM one,
`service/sleep/vllm_generation.py`): the teacher is the served adapter there, and the student is shown to
the server as a LoRA folder (`save_student`) at most every `SleepConfig.student_sync_steps` optimizer
steps, so its samples may be up to that many steps old, as in TRL's and OpenRLHF's vLLM modes. Seeding
reports each optimizer step (`stepped`) so the server's copy knows how stale it is. Every implementation
returns token ids cut after the end-of-turn token, as `chat.generate` does, and honours the same
sampling: greedy at temperature 0, otherwise plain sampling (no top-k, no top-p).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from trainer.chat import generate
from trainer.experts import adapter_factors, concatenate, factors_rank, save_adapter


class Generation(Protocol):
    def teacher(self, model, tokenizer, groups: Sequence[Sequence[Sequence[int]]], *, seeds: Sequence[int | None],
                max_new_tokens: int, temperature: float = 0.0, batch_size: int = 16,
                shared_prefix: bool = False) -> list[list[list[int]]]:
        """The served model's continuations of each group of prompts (token ids, each ending with the
        assistant header), group by group. A group is sampled with its own seed; its prompts usually share
        one context (`shared_prefix`: `chat.generate` reads it once). The groups are independent: a server
        may generate them all at once."""
        ...

    def student(self, model, tokenizer, prompts: Sequence[Sequence[int]], *, max_new_tokens: int,
                temperature: float, seed: int | None = None) -> list[list[int]]:
        """The model being trained's continuations of `prompts`."""
        ...

    def stepped(self, model) -> None:
        """The student's weights changed (one optimizer step)."""
        ...


class LocalGeneration:
    """`chat.generate` on the training model, with whatever adapters the caller made active."""

    def teacher(self, model, tokenizer, groups, *, seeds, max_new_tokens, temperature=0.0, batch_size=16,
                shared_prefix=False):
        return [generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                         generator_seed=seed, batch_size=batch_size, shared_prefix=shared_prefix)
                for prompts, seed in zip(groups, seeds, strict=True)]

    def student(self, model, tokenizer, prompts, *, max_new_tokens, temperature, seed=None):
        # on-policy rows share the system turn, an imitation group its whole prompt: read once
        return generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                        generator_seed=seed, shared_prefix=True)

    def stepped(self, model) -> None:
        pass  # the student's samples read the live weights


LOCAL = LocalGeneration()


def cut_after_end_of_turn(ids: Sequence[int], end_of_turn: int, stopped: bool) -> list[int]:
    """A server's continuation as `chat.generate` returns one: up to and including the end-of-turn token;
    `stopped` (the server stopped at that token) adds it when the server left it out."""
    ids = list(ids)
    if end_of_turn in ids:
        return ids[:ids.index(end_of_turn) + 1]
    return ids + [end_of_turn] if stopped else ids


def save_student(model, out_dir: str | Path, *, base_model_name_or_path: str) -> Path:
    """The student as one standard PEFT LoRA folder: its active adapters (the frozen stack and tonight's
    expert) concatenated, as `recipe.save_candidate` publishes them, so a server serving it generates
    what the training model would. Only a LoRA student (`growth_mode: lora`) can be saved so."""
    names = list(model.base_model.active_adapters)
    stack = [adapter_factors(model, name) for name in names]
    experts = [{"name": name, "rank": factors_rank(factors)} for name, factors in zip(names, stack)]
    return save_adapter(out_dir, concatenate(stack), experts, base_model_name_or_path=base_model_name_or_path)
