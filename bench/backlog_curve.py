"""One night on a backlog of 20, 60 and 200 episodes: recall, steps and seconds as the backlog grows.

    .venv/bin/python bench/backlog_curve.py --sizes 20 60 200 --out runs/backlog [--config cpu-default]

For each size a one-night dev set is made by `bench/make_memory_set.py` (seed = the size; every
category but corrections, which need a second night; first-person facts capped at the relations one user
has), then `reverie eval --nights 1` runs on it with the given config. `runs/backlog/curve.json` and
`curve.md` hold, per size: episodes, trained dreams, planned and trained seeding steps, seconds per
phase, closed-book recall after the night against in-context, per category. The numbers are in
docs/benchmarks.md ("Kinds of memory").
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_memory_set import make  # noqa: E402

from trainer.benchmark import _default_model, parse_overrides, run  # noqa: E402
from trainer.config import SleepConfig  # noqa: E402

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


def point(size: int, out: Path, config: SleepConfig, model: Path, general: Path | None) -> dict:
    dataset = out / f"night-{size}.jsonl"
    dataset.write_text("".join(json.dumps(c) + "\n" for c in make(size, nights=1, mix=night_of(size))))
    results = run(dataset, general, 1, out / f"eval-{size}", config, model,
                  log=lambda msg: print(f"[{size}] {msg}", file=sys.stderr, flush=True))
    metrics = json.loads((out / f"eval-{size}" / "night-1" / "metrics.json").read_text())
    return {
        "episodes": size,
        "dreams": metrics["dreams"],
        "planned_steps": metrics["train"].get("planned_steps"),
        "steps": metrics["train"]["steps"],
        "seconds": metrics["seconds"],
        "closed_book_after": results["closed_book_after"][0],
        "in_context": results["in_context"],
        "by_category": {cat: {"closed_book_after": r["closed_book_after"][0], "in_context": r["in_context"]}
                        for cat, r in results.get("by_category", {}).items()},
        "accepted": results["accepted"][0],
    }


def table(points: list[dict]) -> str:
    lines = ["| episodes | dreams | steps (planned) | dream s | seed s | night s | closed-book | in-context |",
             "|---|---|---|---|---|---|---|---|"]
    for p in points:
        s = p["seconds"]
        lines.append(f"| {p['episodes']} | {p['dreams']} | {p['steps']} ({p['planned_steps']}) | {s['dream']:.0f} | "
                     f"{s['seed']:.0f} | {s['total']:.0f} | {p['closed_book_after']:.1%} | {p['in_context']:.1%} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 60, 200])
    parser.add_argument("--out", type=Path, default=Path("runs/backlog"))
    parser.add_argument("--config", default="cpu-default")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--general", type=Path, default=None, help="general questions JSONL (off by default)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    args = parser.parse_args(argv)
    config = SleepConfig.from_yaml(args.config, **parse_overrides(args.set))
    args.out.mkdir(parents=True, exist_ok=True)
    points = []
    for size in args.sizes:
        points.append(point(size, args.out, config, args.model or _default_model(), args.general))
        (args.out / "curve.json").write_text(json.dumps(points, indent=2))
        (args.out / "curve.md").write_text(table(points))
    print(table(points))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
