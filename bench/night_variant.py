"""Rerun one night of a finished benchmark run with other settings, on top of that run's previous night.

    .venv/bin/python bench/night_variant.py runs/dev-syl 2 runs/dev-syl-replay-lmbda-0.5 --set replay_lmbda=0.5
    .venv/bin/python bench/night_variant.py runs/pub-n1 1 runs/pub-n1-seed-1 --set seed=1

For comparing training settings of a later night without redoing the nights before it: the earlier
nights' adapter and dreams are taken from RUN (they must have been accepted, e.g. with the gate forced
open), night N's episodes are slept on with RUN's config plus the overrides, and the candidate is
scored on every night's probes up to N and on the general set. Prints and writes OUT/variant.json, and
the candidate's reply to every probe in OUT/replies.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from score_candidates import score

from trainer.benchmark import parse_overrides
from trainer.benchmark_scoring import load_jsonl
from trainer.config import SleepConfig
from trainer.recipe import sleep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("night", type=int)
    parser.add_argument("out", type=Path)
    parser.add_argument("--general", type=Path, default=Path("../shared/eval/general-public.jsonl"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    results = json.loads((args.run / "results.json").read_text())
    overrides = parse_overrides(args.set)
    config = SleepConfig(**{**results["config"], **overrides})
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    cases = load_jsonl(results["dataset"])
    n = args.night
    earlier = [d for i in range(1, n) for d in load_jsonl(args.run / f"night-{i}" / "dreams.jsonl")]
    episodes = [{"id": c["id"], "messages": c["episode"]["messages"]} for c in cases if int(c["night"]) == n]
    # Night 1 starts from the base model; a later night from RUN's adapter of the night before.
    previous_adapter = args.run / f"night-{n - 1}" / "adapter" if n > 1 else None
    t0 = time.monotonic()
    result = sleep(episodes, base_model=results["base_model"], adapter_dir=previous_adapter,
                   earlier_dreams=earlier, config=config, out_dir=args.out / f"night-{n}", night=str(n))
    seconds = time.monotonic() - t0
    replies: dict = {}
    scored = score(results["base_model"], result.adapter_dir, cases, n, load_jsonl(args.general), config, replies)
    (args.out / "replies.json").write_text(json.dumps(replies, indent=1))
    keys = ("recall", "served_recall", "retention", "retention_set", "retention_lost", "retention_gained",
            "general_agreement", "likelihood")
    out = {"run": str(args.run), "night": n, "overrides": overrides, "accepted": result.accepted,
           "reasons": result.reasons, "candidate": scored,
           "gate": {k: result.metrics.get(k) for k in keys}, "seconds": round(seconds, 1),
           "phases": result.metrics["seconds"]}
    (args.out / "variant.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
