"""How much of a model's closed-book recall is bound to the person asked about.

    .venv/bin/python bench/binding.py ../shared/eval/facts-public.jsonl runs/n2-served-s0/replies.json [...] \
        [--before runs/pub-n1/replies-after-night-1.json]

A reply is correct (README scoring) when it contains the probe's answer. A model may give every person
of a relation the same answer (one door code for every studio), and is then correct for the one person
it belongs to by collapse, not by memory. Here a correct reply is *bound*
when no reply about another person of the same relation told the same night contains that answer too
(people of other nights are left out: a person the model was never told about gets some guess, and a
value it knows is a likely one).
Reads the per-probe rows `bench/night_variant.py` writes (replies.json: {"night N": [rows]}).

With `--before` (the replies of the model a night was trained on top of), the probes it answered and
the new model does not are *lost*; a lost probe is *overwritten* when its new reply names the answer of
a person of the same relation told on another night (a parrot called after a later night's parrot).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from trainer.benchmark_scoring import correct, load_jsonl


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


def overwritten(cases: list[dict], before: dict[str, list[dict]], after: dict[str, list[dict]]) -> dict[str, dict]:
    by_question = {p["question"]: (c, p) for c in cases for p in c["probes"]}
    out = {}
    for night, rows in after.items():
        known = {r["question"] for r in before.get(night, []) if r["correct"]}
        lost = [r for r in rows if r["question"] in known and not r["correct"]]
        hits = 0
        for r in lost:
            case, _ = by_question[r["question"]]
            others = [p["answers"] for c in cases if c["relation"] == case["relation"] and c["night"] != case["night"]
                      for p in c["probes"]]
            hits += any(correct(r["reply"], answers) for answers in others)
        out[night] = {"known_before": len(known), "lost": len(lost), "overwritten": hits}
    return out


def main(argv: list[str]) -> None:
    before = None
    if "--before" in argv:
        i = argv.index("--before")
        before = json.loads(Path(argv[i + 1]).read_text())
        argv = argv[:i] + argv[i + 2:]
    cases = load_jsonl(argv[0])
    for path in argv[1:]:
        replies = json.loads(Path(path).read_text())
        row = binding(cases, replies)
        if before is not None:
            for night, counts in overwritten(cases, before, replies).items():
                row[night].update(counts)
        print(path, json.dumps(row))


if __name__ == "__main__":
    main(sys.argv[1:])
