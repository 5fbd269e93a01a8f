"""`reverie eval`: the knowledge-incorporation benchmark of shared/eval/README.md, end to end.

    reverie eval --dataset ../shared/eval/facts-public.jsonl --general ../shared/eval/general-public.jsonl \
        --nights 3 --out runs/eval --config cpu-default

For each night n the episodes of night n are consolidated by `trainer.sleep` (the served adapter
advances only when the gate accepts, as in production); probes are then asked closed-book. Baselines
on the same data: no sleep, and naive LoRA fine-tuning on the raw transcripts with the same step
budget. Writes DIR/results.json, DIR/report.md and PNG plots. Only this harness reads `probes`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from trainer.chat import render
from trainer.config import SleepConfig
from trainer.dreaming import episode_messages
from trainer.experts import EXPERT, PREVIOUS, adapter_factors, concatenate, grow_expert, read_experts, save_adapter
from trainer.recipe import answers, load_model, sleep


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def correct(reply: str, expected: Sequence[str]) -> bool:
    """README scoring: any answer appears in the reply, case-insensitively, whitespace collapsed."""
    reply = normalise(reply)
    return any(normalise(a) in reply for a in expected)


def load_jsonl(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def probe_items(cases: Sequence[dict]) -> list[tuple[dict, dict]]:
    return [(case, probe) for case in cases for probe in case["probes"]]


def accuracy(model, tokenizer, items, config: SleepConfig, in_context: bool = False) -> tuple[float, list[dict]]:
    if not items:
        return 0.0, []
    questions = [probe["question"] for _, probe in items]
    context = [episode_messages(case["episode"]) for case, _ in items] if in_context else None
    replies = answers(model, tokenizer, questions, config, context=context)
    rows = [{"question": q, "reply": r, "correct": correct(r, p["answers"])}
            for q, r, (_, p) in zip(questions, replies, items)]
    return sum(r["correct"] for r in rows) / len(rows), rows


def general_accuracy(model, tokenizer, general: Sequence[dict], config: SleepConfig) -> float | None:
    if not general:
        return None
    replies = answers(model, tokenizer, [g["question"] for g in general], config)
    return sum(correct(r, g["answers"]) for r, g in zip(replies, general)) / len(general)


def with_adapter(base_path, adapter_dir, config):
    tokenizer, model = load_model(base_path, config)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir)).eval()
    return tokenizer, model


def naive_sft(episodes, *, base_model, adapter_dir, config: SleepConfig, out_dir: Path) -> Path:
    """Baseline: LoRA fine-tuning on the raw transcripts (causal LM loss on every chat token), one new
    expert per night like the recipe, the same number of steps and batch size."""
    tokenizer, model = load_model(base_model, config)
    experts, frozen = [], []
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir), adapter_name=PREVIOUS)
        experts, frozen = read_experts(adapter_dir), [PREVIOUS]
    model = grow_expert(model, rank=config.expert_rank, alpha=config.expert_alpha,
                        target_modules=config.target_modules, frozen=frozen, seed=config.seed)
    device = next(model.parameters()).device
    sequences = []
    for episode in episodes:
        ids = tokenizer.apply_chat_template(episode_messages(episode), tokenize=True)
        sequences.append(list(ids["input_ids"] if hasattr(ids, "keys") else ids))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed)
    model.train()
    for _ in range(config.steps):
        pick = torch.randint(len(sequences), (config.batch_size,), generator=generator).tolist()
        batch = [sequences[i] for i in pick]
        width = max(map(len, batch))
        ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        labels = torch.full((len(batch), width), -100)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, seq in enumerate(batch):
            ids[i, : len(seq)] = labels[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = 1
        loss = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    stack = [adapter_factors(model, name) for name in frozen] + [adapter_factors(model, EXPERT)]
    experts = experts + [{"name": f"naive-{out_dir.name}", "rank": config.expert_rank}]
    return save_adapter(out_dir / "adapter", concatenate(stack), experts, base_model_name_or_path=str(base_model),
                        target_modules=config.target_modules)
