"""How much of a model's closed-book recall is bound to the person asked about.

    .venv/bin/python bench/binding.py ../shared/eval/facts-public.jsonl runs/n2-served-s0/replies.json [...]

A reply is correct (README scoring) when it contains the probe's answer. A small student often gives
every person of a relation the same answer ("the door code is 7896" for all four studios), and is then
correct for the one person it belongs to by collapse, not by memory. Here a correct reply is *bound*
when no reply about another person of the same relation told the same night contains that answer too
(people of other nights are left out: a person the model was never told about gets some guess, and a
value it knows is a likely one).
Reads the per-probe rows `bench/night_variant.py` writes (replies.json: {"night N": [rows]}).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from trainer.benchmark import correct, load_jsonl


def binding(cases: list[dict], replies: dict[str, list[dict]]) -> dict[str, dict]:
    by_question = {p["question"]: (c, p) for c in cases for p in c["probes"]}
    out = {}
    for night, night_rows in replies.items():
        rows = [(by_question[r["question"]], r) for r in night_rows]
        correct_n = bound = 0
        for r in night_rows:
            case, probe = by_question[r["question"]]
            if not r["correct"]:
                continue
            correct_n += 1
            others = [o["reply"] for (c, _), o in rows if c["relation"] == case["relation"] and c["id"] != case["id"]]
            bound += not any(correct(reply, probe["answers"]) for reply in others)
        out[night] = {"probes": len(night_rows), "correct": correct_n, "bound": bound}
    return out


def main(dataset: Path, paths: list[Path]) -> None:
    cases = load_jsonl(dataset)
    for path in paths:
        print(path, json.dumps(binding(cases, json.loads(path.read_text()))))


if __name__ == "__main__":
    main(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]])
