"""Score sleep candidates (accepted or refused) on every night's benchmark probes and the general set.

    .venv/bin/python bench/score_candidates.py runs/eval-public 2 3 > runs/eval-public/candidates.json

`reverie eval` scores only the served model; this answers "what would night N's candidate have done?"
for the adapters it left in OUT/night-N/adapter.
"""

import json
import sys
from pathlib import Path

import torch

from trainer.benchmark import _default_model, accuracy, general_accuracy, probe_items, with_adapter
from trainer.benchmark_scoring import load_jsonl
from trainer.config import SleepConfig


def main(out: Path, nights: list[int], shared: Path = Path("../shared/eval")) -> dict:
    results = json.loads((out / "results.json").read_text())
    config = SleepConfig.from_yaml("cpu-default", **{**results["config"], "torch_threads": 1})
    torch.set_num_threads(1)
    cases = load_jsonl(results["dataset"])
    general = load_jsonl(shared / "general-public.jsonl")
    base = results.get("base_model") or _default_model()
    return {str(n): score(base, out / f"night-{n}" / "adapter", cases, results["nights"], general, config)
            for n in nights}


def score(base_model, adapter_dir, cases: list[dict], nights: int, general: list[dict], config: SleepConfig,
          replies: dict | None = None) -> dict:
    """One adapter's accuracy on each night's probes (1..nights) and on the general set. `replies`, when
    given, receives each night's per-probe rows (question, reply, correct)."""
    tokenizer, model = with_adapter(base_model, adapter_dir, config)
    row = {}
    for i in range(1, nights + 1):
        row[f"night {i} probes"], rows = accuracy(
            model, tokenizer, probe_items([c for c in cases if int(c["night"]) == i]), config)
        if replies is not None:
            replies[f"night {i}"] = rows
    row["general"] = general_accuracy(model, tokenizer, general, config)
    return row


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), [int(n) for n in sys.argv[2:]]), indent=1))
