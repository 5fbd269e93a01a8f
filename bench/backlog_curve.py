"""One night on a backlog of 20, 60 and 200 episodes: recall, steps and seconds as the backlog grows.

    .venv/bin/python bench/backlog_curve.py --sizes 20 60 200 --out runs/backlog [--config cpu-default]

For each size a one-night dev set is made by `bench/make_memory_set.py` (seed = the size; every
category but corrections, which need a second night; first-person facts capped at the relations one user
has), the night is slept once with the given config (`trainer.recipe.sleep`, the gate's verdict ignored)
and the probes of the episodes it dreamed are asked closed-book of the candidate, scored as `reverie
eval` scores. With a night budget, dreaming stops where its share of the night runs out
(`trainer.budget`): the episodes it did not reach are the next night's backlog, and their probes are not
asked. No baselines and
no in-context pass: the curve is what one night does as its backlog grows. `runs/backlog/curve.json`
and `curve.md` hold, per size: episodes, trained dreams, planned and trained seeding steps, seconds per
phase, closed-book recall overall and per category. The numbers are in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_memory_set import make  # noqa: E402

from trainer.benchmark import _default_model, parse_overrides  # noqa: E402
from trainer.benchmark_scoring import correct  # noqa: E402
from trainer.chat import answers, load_model  # noqa: E402
from trainer.config import SleepConfig  # noqa: E402
from trainer.recipe import sleep  # noqa: E402

FIRST_PERSON_RELATIONS = 20  # fewer than the generator's: one user tells each once
ASSISTANT_DECISIONS = 30  # what the generator can make the assistant decide without repeating a thing


def night_of(size: int) -> dict[str, int]:
    """Cases per category for a night of `size` episodes: a fifth first-person (capped), the rest spread."""
    user = min(size // 5, FIRST_PERSON_RELATIONS)
    rest = size - user
    assistant = min(rest // 3, ASSISTANT_DECISIONS)
    mix = {"user": user, "update": 0, "assistant": assistant, "multi": (rest - assistant) // 2}
    mix["long"] = rest - assistant - mix["multi"]
    return mix


def point(size: int, out: Path, config: SleepConfig, model: Path) -> dict:
    cases = make(size, nights=1, mix=night_of(size))
    (out / f"night-{size}.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    episodes = [{"id": c["id"], "messages": c["episode"]["messages"]} for c in cases]
    result = sleep(episodes, base_model=model, adapter_dir=None, config=config, out_dir=out / f"night-{size}",
                   night="1", progress=lambda phase, step, total, _: print(
                       f"[{size}] {phase} {step}/{total}", file=sys.stderr, flush=True) if step == total else None)
    from peft import PeftModel

    tokenizer, base = load_model(model, config)
    candidate = PeftModel.from_pretrained(base, str(result.adapter_dir)).eval()
    # the episodes the dreaming budget did not reach are the next night's backlog: their probes wait for it
    dreamed = set(result.episode_ids)
    probes = [(c.get("category", "facts"), p) for c in cases if c["id"] in dreamed for p in c["probes"]]
    replies = answers(candidate, tokenizer, [p["question"] for _, p in probes], config)
    marks = [(cat, correct(r, p["answers"], p.get("reject", ()))) for (cat, p), r in zip(probes, replies)]
    by_category: dict[str, list[bool]] = {}
    for cat, mark in marks:
        by_category.setdefault(cat, []).append(mark)
    metrics = result.metrics
    return {
        "episodes": size,
        "episodes_dreamed": len(dreamed),
        "dreams": metrics["dreams"],
        "planned_steps": metrics["train"].get("planned_steps"),
        "steps": metrics["train"]["steps"],
        "seconds": metrics["seconds"],
        "closed_book_after": sum(m for _, m in marks) / len(marks),
        "probes": len(marks),
        "by_category": {cat: sum(v) / len(v) for cat, v in sorted(by_category.items())},
        "accepted": result.accepted,
    }


def table(points: list[dict]) -> str:
    lines = ["| episodes | dreamed | dreams | steps (planned) | dream s | seed s | night s | closed-book, dreamed "
             "episodes | per category |", "|---|---|---|---|---|---|---|---|---|"]
    for p in points:
        s = p["seconds"]
        lines.append(f"| {p['episodes']} | {p['episodes_dreamed']} | {p['dreams']} | {p['steps']} ({p['planned_steps']}) | {s['dream']:.0f} | "
                     f"{s['seed']:.0f} | {s['total']:.0f} | {p['closed_book_after']:.1%} | "
                     + ", ".join(f"{c} {v:.0%}" for c, v in p["by_category"].items()) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 60, 200])
    parser.add_argument("--out", type=Path, default=Path("runs/backlog"))
    parser.add_argument("--config", default="cpu-default")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    args = parser.parse_args(argv)
    config = SleepConfig.from_yaml(args.config, **parse_overrides(args.set))
    args.out.mkdir(parents=True, exist_ok=True)
    points = []
    for size in args.sizes:
        points.append(point(size, args.out, config, args.model or _default_model()))
        (args.out / "curve.json").write_text(json.dumps(points, indent=2))
        (args.out / "curve.md").write_text(table(points))
    print(table(points))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
