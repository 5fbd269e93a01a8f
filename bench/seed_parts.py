"""Where a night's seed phase goes: sleep nights 1..N of a data set, timing the seeding loop's parts.

    .venv/bin/python bench/seed_parts.py ../shared/eval/facts-public.jsonl runs/seed-parts 2 \
        --model ~/.local/share/reverie/models/SmolLM2-135M-Instruct [--set KEY=VALUE ...]

Each night prints its phases (metrics.seconds) and the seconds spent in `trainer.seeding`'s GKD loss
(forward, on-policy samples and fresh teacher passes included), binding forwards, the binding
reference pass, `generate` (on-policy samples and imitation groups), backward and AdamW, with call
counts; and the preparation before the first step (`recipe.training_set`: growing the expert, tonight's
examples, replayed answers, general answers, binding pairs). The timers wrap the functions in place; a
timed part includes the parts it calls. Writes OUT/results.json (config, dataset, base model) and OUT/night-N/, so `bench/night_variant.py` can rerun a
night on top of them.
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import time
from pathlib import Path

import torch

import trainer.seeding as seeding
from trainer.benchmark import parse_overrides
from trainer.benchmark_scoring import load_jsonl
import trainer.recipe as recipe
from trainer.config import SleepConfig
from trainer.recipe import sleep

PARTS = ("gkd_loss", "binding_margins", "cache_binding_reference", "backward_clipped_apart", "generate",
         "teacher_logits", "imitation_loss")
# the preparation before the first step (`recipe.training_set` and what it calls), by the recipe's names
PREPARATION = ("grow", "training_set", "dream_example", "replay_pairs", "answers", "rival_answers",
               "binding_pair")
seconds: collections.Counter = collections.Counter()
calls: collections.Counter = collections.Counter()


def timed(name: str, function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds[name] += time.perf_counter() - start
            calls[name] += 1
    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("nights", type=int)
    parser.add_argument("--model", required=True)
    parser.add_argument("--config", default="cpu-default")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    for name in PARTS:  # the loop calls these through the module, so wrapping the module's names times them
        setattr(seeding, name, timed(name, getattr(seeding, name)))
    for name in PREPARATION:
        setattr(recipe, name, timed(name, getattr(recipe, name)))
    torch.optim.AdamW.step = timed("adamw", torch.optim.AdamW.step)
    config = SleepConfig.from_yaml(args.config, **parse_overrides(args.set))
    cases = load_jsonl(args.dataset)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(
        {"config": config.to_dict(), "dataset": str(args.dataset), "base_model": args.model}, indent=1))
    earlier, adapter = [], None
    for n in range(1, args.nights + 1):
        seconds.clear()
        calls.clear()
        episodes = [{"id": c["id"], "messages": c["episode"]["messages"]} for c in cases if int(c["night"]) == n]
        result = sleep(episodes, base_model=args.model, adapter_dir=adapter, earlier_dreams=earlier, config=config,
                       out_dir=args.out / f"night-{n}", night=str(n))
        earlier, adapter = result.dreams, result.adapter_dir
        print(n, result.accepted, json.dumps(result.metrics["seconds"]), flush=True)
        print("  parts", {k: (round(v, 1), calls[k]) for k, v in seconds.items()}, flush=True)
        print("  binding pairs", result.metrics["train"].get("binding_pairs"), "dreams", result.metrics["dreams"],
              "replayed", result.metrics["replayed"], flush=True)


if __name__ == "__main__":
    main()
