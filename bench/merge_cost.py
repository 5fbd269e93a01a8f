"""What a merge by SVD keeps: each night's adapter of a finished `reverie eval` run, its whole expert stack
cut to lower ranks with `experts.merge` (what `recipe.load_served` does once tonight's expert would take the
stack past `max_lora_rank`), asked the night's own probes and the earlier nights' closed-book, and the
general set.

    .venv/bin/python bench/merge_cost.py RUN DATASET GENERAL --model M [--keep 1 0.75 0.5] \
        [--config cpu-default] [--set KEY=VALUE ...]

RUN is a `trainer.benchmark` output folder (RUN/night-N/adapter); `--keep` the shares of the stack's rank
kept. Prints a table and writes RUN/merge-cost.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from trainer.benchmark import ask, general_accuracy, night_adapters, parse_overrides, with_adapter
from trainer.benchmark_report import Phases
from trainer.benchmark_scoring import load_jsonl, load_probes
from trainer.config import SleepConfig
from trainer.experts import adapter_factors, factors_rank, lora_modules, merge


@torch.no_grad()
def load_cut(model, factors: dict, rank: int) -> float:
    """Put the stack cut to `rank` into the model's adapter (zero columns past it); returns the merge's worst
    relative error."""
    cut, report = merge(factors, rank)
    for name, module in lora_modules(model):
        if name not in cut:
            continue
        a, b = cut[name]
        scaling = module.scaling["default"]
        module.lora_A["default"].weight.zero_()[: a.shape[0]] = a
        module.lora_B["default"].weight.zero_()[:, : b.shape[1]] = b / scaling
    return report.max_relative_error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("general", type=Path)
    parser.add_argument("--model", required=True)
    parser.add_argument("--config", default="cpu-default")
    parser.add_argument("--keep", type=float, nargs="+", default=[1.0, 0.75, 0.5])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    config = SleepConfig.from_yaml(args.config, **parse_overrides(args.set))
    torch.set_num_threads(config.torch_threads or 1)
    probes = load_probes(load_jsonl(args.dataset))
    general = load_jsonl(args.general)
    phases = Phases(bars=False)
    rows = []
    for n, adapter in night_adapters(args.run):
        tokenizer, model = with_adapter(args.model, adapter, config)
        factors = adapter_factors(model, "default")
        rank = factors_rank(factors)
        own = [i for i, p in enumerate(probes) if p.night == n]
        earlier = [i for i, p in enumerate(probes) if p.night < n and p.counted_after(n)]
        for share in args.keep:
            kept = max(1, round(rank * share))
            error = load_cut(model, factors, kept)
            marks = ask(model, tokenizer, probes, own + earlier, config, phases, f"night {n} rank {kept}")
            row = {"night": n, "rank": rank, "kept": kept, "worst_relative_error": error,
                   "own_probes": len(own), "own_recalled": sum(marks[i].correct for i in own),
                   "earlier_probes": len(earlier), "earlier_recalled": sum(marks[i].correct for i in earlier),
                   "general": general_accuracy(model, tokenizer, general, config)}
            rows.append(row)
            print(f"night {n} rank {kept} of {rank}: own {row['own_recalled']}/{len(own)}, earlier "
                  f"{row['earlier_recalled']}/{len(earlier)}, general {row['general']:.3f}, "
                  f"worst relative error {error:.3f}", flush=True)
    (args.run / "merge-cost.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
