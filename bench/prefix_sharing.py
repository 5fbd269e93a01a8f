"""What reading a batch's shared prefix once saves on seeding's passes: 8 rows shaped as a night's batch (the
chat template's system turn, a question, a told answer; one general prompt with the base's long reply)
through `chat.continuation_logits` read whole and through the shared prefix, alternating, in one run.

    .venv/bin/python bench/prefix_sharing.py --model M [--threads 1] [--repeats 5] [--out FILE.json]

Prints median seconds for a forward and backward (the student's step, an expert's gradient) and a no-grad
forward (the teacher's and the gate's passes) on each path, their ratios to the whole reading, and how far
each path's gradient parts from it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from trainer.chat import MIN_SHARED_PREFIX, answer_ids, common_prefix, continuation_logits, load_model, render
from trainer.config import SleepConfig
from trainer.experts import grow_expert
from trainer.losses import token_logprobs

ROWS = [
    ("What name did you suggest for my kitten?", "I suggested Kedhep for your kitten."),
    ("Where do I work now?", "You work at Lobel now."),
    ("What is my dog called?", "Your dog is called Dunshi."),
    ("What is the name of Mirpa Lovos's new parrot?", "Mirpa Lovos's new parrot is named Lodun."),
    ("What code did you choose for my garage door?", "I chose 4417 for your garage door."),
    ("Which city did Tomas Berel move to?", "Tomas Berel moved to Varnett."),
    ("Write one sentence about the sea.", "The sea is a vast and mysterious place, full of life and wonder, "
     "where waves crash against the shore and the tides rise and fall."),
    ("What kind of car do I have?", "You have a Corab."),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = SleepConfig()
    tokenizer, model = load_model(args.model, config)
    model = grow_expert(model, rank=config.expert_rank, alpha=config.expert_alpha,
                        target_modules=config.target_modules, frozen=[], seed=0)
    expert = [p for p in model.parameters() if p.requires_grad]
    torch.manual_seed(0)
    with torch.no_grad():  # as if trained a while: a zero B would make every expert gradient but B's zero
        for p in expert:
            p.normal_(std=0.01)
    model.train()
    prompts = [render(tokenizer, [{"role": "user", "content": q}], config.system_prompt) for q, _ in ROWS]
    continuations = [answer_ids(tokenizer, a) for _, a in ROWS]
    shared = common_prefix(prompts)
    assert shared >= MIN_SHARED_PREFIX, f"only {shared} shared tokens: the prefix path would not be taken"

    def step(shared_prefix: bool) -> list[torch.Tensor]:
        model.zero_grad()
        logits, targets, mask = continuation_logits(model, prompts, continuations, tokenizer.pad_token_id,
                                                    shared_prefix=shared_prefix)
        (-(token_logprobs(logits, targets) * mask).sum() / mask.sum()).backward()
        return [p.grad.clone() for p in expert]

    @torch.no_grad()
    def forward(shared_prefix: bool) -> None:
        continuation_logits(model, prompts, continuations, tokenizer.pad_token_id,
                            shared_prefix=shared_prefix)

    whole, prefixed = step(False), step(True)
    error = (sum((a - b).pow(2).sum() for a, b in zip(whole, prefixed)).sqrt()
             / sum(a.pow(2).sum() for a in whole).sqrt()).item()
    seconds = {kind: {False: [], True: []} for kind in ("step", "forward")}
    for _ in range(args.repeats):
        for shared_prefix in (False, True):  # alternating: both paths see the same machine
            for kind, run in (("step", step), ("forward", forward)):
                start = time.perf_counter()
                run(shared_prefix)
                seconds[kind][shared_prefix].append(time.perf_counter() - start)
    result = {"rows": len(ROWS), "shared_tokens": shared,
              "row_tokens": [len(p) + len(c) for p, c in zip(prompts, continuations)],
              "threads": args.threads, "gradient_relative_difference": error}
    for kind, runs in seconds.items():
        whole_s, prefixed_s = (sorted(runs[k])[len(runs[k]) // 2] for k in (False, True))
        result[kind] = {"whole_s": round(whole_s, 3), "shared_prefix_s": round(prefixed_s, 3),
                        "ratio": round(prefixed_s / whole_s, 3)}
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
