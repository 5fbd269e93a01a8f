"""Does the eval gate read what the benchmark's probes measure? One row per candidate night.

    PYTHONPATH=.:bench .venv/bin/python bench/gate_agreement.py runs/seed1 runs/syl runs/seed1-n2-no-replay

A benchmark run (its results.json) gives a row per night; a night variant (`bench/night_variant.py`,
its variant.json) gives one. Each row sets the gate's readings of the candidate, greedy and likelihood
(night-N/metrics.json), beside what the benchmark measured on the same candidate, against the model
served before it: tonight's probes closed-book, every earlier night's probes, and the general set.
Runs must have kept every night (gate forced open), so the model served before night N is night N-1's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _points(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:+.1f}"


def _nats(x: float | None) -> str:
    return "-" if x is None else f"{x:+.3f}"


def _ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def served_scores(results: dict, night: int) -> tuple[list[float], float]:
    """The benchmark's scores of the model served before `night`: each earlier night's probes, general."""
    if night == 1:
        return [], results["general_before"]
    return results["retention"][night - 2], results["general_after"][night - 2]


def night_metrics(path: Path, night: int) -> dict:
    """night-N/metrics.json of a run, or night-N-metrics.json of a kept copy (the archives in bench/results/)."""
    nested = path / f"night-{night}" / "metrics.json"
    return json.loads((nested if nested.is_file() else path / f"night-{night}-metrics.json").read_text())


def row(label: str, metrics: dict, results: dict, night: int, after: list[float], general_after: float) -> str:
    earlier, general_before = served_scores(results, night)
    kept = [a - b for a, b in zip(after[:night - 1], earlier)]
    likely = metrics.get("likelihood") or {}
    greedy_gain = None if metrics.get("recall") is None else metrics["recall"] - (metrics.get("served_recall") or 0)
    cells = [label, str(night),
             _points(after[night - 1] - results["closed_book_before"]),
             _points(sum(kept) / len(kept) if kept else None),
             _points(general_after - general_before),
             _points(greedy_gain), _ratio(metrics.get("retention")), _ratio(metrics.get("general_agreement")),
             _nats(likely.get("recall_gain")), _nats(likely.get("retention_change")),
             _nats(likely.get("general_change"))]
    return "| " + " | ".join(cells) + " |"


def rows(path: Path) -> list[str]:
    if (path / "variant.json").is_file():
        variant = json.loads((path / "variant.json").read_text())
        night = variant["night"]
        results = json.loads((Path(variant["run"]) / "results.json").read_text())
        metrics = night_metrics(path, night)
        scored = variant["candidate"]
        after = [scored[f"night {i} probes"] for i in range(1, night + 1)]
        overrides = " ".join(f"{k}={v}" for k, v in variant["overrides"].items())
        return [row(f"{path.name} ({overrides})", metrics, results, night, after, scored["general"])]
    results = json.loads((path / "results.json").read_text())
    out = []
    for night, (after, general) in enumerate(zip(results["retention"], results["general_after"]), start=1):
        out.append(row(path.name, night_metrics(path, night), results, night, after, general))
    return out


HEADER = """\
| candidate | night | probes tonight (points) | earlier nights' probes (points) | general (points) | greedy: recall gain (points) | greedy: retention | greedy: general agreement | likelihood: recall gain (nats) | likelihood: retention change (nats) | likelihood: general change (nats) |
|---|---|---|---|---|---|---|---|---|---|---|"""


def main(paths: list[str]) -> None:
    print(HEADER)
    for p in paths:
        for line in rows(Path(p)):
            print(line)


if __name__ == "__main__":
    main(sys.argv[1:])
