"""What a night keeps with its expert scaled down: each night's adapter of a finished `reverie eval` run,
its newest expert (the last columns of every B) at several scales, asked the night's own probes
closed-book, the general set, and the gate's held-out general prompts as likelihoods (the gate's
`general_change` against the base's replies).

    .venv/bin/python bench/expert_scale.py RUN DATASET GENERAL --model M [--scales 1 0.85 0.7 0.5] \
        [--config cpu-default] [--set KEY=VALUE ...]

RUN is a `trainer.benchmark` output folder (RUN/night-N/adapter). The gate scales a refused night's
expert (`gate.softer_scale`); this measures what that costs in recall and buys in general replies.
Prints a table and writes RUN/expert-scale.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from trainer import prompts
from trainer.benchmark import ask, general_accuracy, night_adapters, parse_overrides, with_adapter
from trainer.benchmark_scoring import load_jsonl, load_probes
from trainer.benchmark_report import Phases
from trainer.chat import answers
from trainer.config import SleepConfig
from trainer.experts import lora_modules, read_experts
from trainer.likelihood import likelihoods, mean_change


@torch.no_grad()
def scale_newest(model, rank: int, factor: float, originals: dict) -> None:
    """Set the newest expert (the last `rank` columns of each B) to `factor` times what was saved."""
    for name, module in lora_modules(model):
        for adapter, b in module.lora_B.items():
            key = (name, adapter)
            originals.setdefault(key, b.weight.detach().clone())
            b.weight.copy_(originals[key])
            b.weight[:, -rank:] *= factor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("general", type=Path)
    parser.add_argument("--model", required=True)
    parser.add_argument("--config", default="cpu-default")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.85, 0.7, 0.5])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    config = SleepConfig.from_yaml(args.config, **parse_overrides(args.set))
    torch.set_num_threads(config.torch_threads or 1)
    probes = load_probes(load_jsonl(args.dataset))
    general = load_jsonl(args.general)
    phases = Phases(bars=False)
    gate_prompts = list(prompts.GATE[: config.gate_general_prompts])
    rows = []
    for n, adapter in night_adapters(args.run):
        rank = read_experts(adapter)[-1]["rank"]
        tokenizer, model = with_adapter(args.model, adapter, config)
        with model.disable_adapter():
            base_replies = answers(model, tokenizer, gate_prompts, config)
            items = [(q, a, ()) for q, a in zip(gate_prompts, base_replies)]
            base_likely = likelihoods(model, tokenizer, items, config.system_prompt, config.generation_batch_size)
        own = [i for i, p in enumerate(probes) if p.night == n]
        originals: dict = {}
        for factor in args.scales:
            scale_newest(model, rank, factor, originals)
            marks = ask(model, tokenizer, probes, own, config, phases, f"night {n} x{factor}")
            likely = likelihoods(model, tokenizer, items, config.system_prompt, config.generation_batch_size)
            row = {"night": n, "scale": factor, "own_probes": len(own),
                   "recalled": sum(m.correct for m in marks.values()),
                   "general": general_accuracy(model, tokenizer, general, config),
                   "general_change": mean_change(base_likely, likely)}
            rows.append(row)
            print(f"night {n} scale {factor:.2f}: recalled {row['recalled']}/{len(own)}, general "
                  f"{row['general']:.3f}, gate general_change {row['general_change']:+.3f}", flush=True)
    (args.run / "expert-scale.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
