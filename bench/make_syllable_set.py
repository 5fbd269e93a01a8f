"""Write a dev set whose names and answers are built from one small syllable inventory.

    python bench/make_syllable_set.py > bench/data/facts-dev-syllables.jsonl

Our first dev sets drew every name and answer from its own made-up word (Drofel Vashmo, Quighezan). The
public set's people, towns, pets and dishes are all recombinations of about twenty syllables, so one
night's answers share tokens with another night's names and answers. This set has that property with
syllables, relations and phrasings of its own (nothing is taken from shared/eval): 3 nights of 20
episodes, 4 per relation. What it showed: docs/benchmarks-history.md.
"""

from __future__ import annotations

import json
import random
import sys

SYLLABLES = ["Zu", "Fen", "Ko", "Tal", "Mer", "Dri", "Sal", "Nu", "Vek", "Hom", "Ri", "Bas", "Qel", "Ond",
             "Tir", "Lum", "Ga", "Pes", "Wo", "Char"]
ACKS = ["Okay, I'll keep that in mind.", "Noted, thank you!", "Good to know."]
INSTRUMENTS = ["cello", "trombone", "harp", "accordion", "banjo"]

# relation: (ways a user tells it, the two probes, how an answer is made)
RELATIONS = {
    "boat": (["{name} finally named the new sailboat {answer}.",
              "Guess what, {name}'s boat is called {answer} now."],
             ["What is the name of {name}'s boat?", "What did {name} call the boat?"], "word"),
    "locker": (["{name}'s locker at the gym is number {answer}.",
                "Note this: the gym gave {name} locker {answer}."],
               ["What is {name}'s locker number?", "Which locker does {name} use at the gym?"], "digits"),
    "instrument": (["{name} has been practising the {answer} every evening.",
                    "Apparently {name} took up the {answer} this year."],
                   ["Which instrument does {name} play?", "What instrument is {name} practising?"], "instrument"),
    "birthplace": (["{name} was born in a village called {answer}.",
                    "Fun fact: {name} grew up in {answer}."],
                   ["Where was {name} born?", "Which village did {name} grow up in?"], "place"),
    "employer": (["{name} just started working for a firm called {answer}.",
                  "These days {name} is employed by {answer}."],
                 ["Which firm does {name} work for?", "Who employs {name}?"], "word"),
}


def word(rng: random.Random, parts: int) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(parts)).capitalize()


def answer(rng: random.Random, kind: str) -> str:
    if kind == "digits":
        return str(rng.randrange(1000, 10000))
    if kind == "instrument":
        return rng.choice(INSTRUMENTS)
    if kind == "place":
        return word(rng, 3)
    return word(rng, 2)


def cases(seed: int = 7, nights: int = 3, per_relation: int = 4) -> list[dict]:
    rng = random.Random(seed)
    used: set[str] = set()
    rows = []
    for night in range(1, nights + 1):
        for relation, (tellings, probes, kind) in RELATIONS.items():
            for _ in range(per_relation):
                name = f"{word(rng, 2)} {word(rng, 2)}"
                while name in used:
                    name = f"{word(rng, 2)} {word(rng, 2)}"
                used.add(name)
                value = answer(rng, kind)
                rows.append({
                    "night": night, "namespace": "default", "relation": relation,
                    "episode": {"messages": [
                        {"role": "user", "content": rng.choice(tellings).format(name=name, answer=value)},
                        {"role": "assistant", "content": rng.choice(ACKS)}]},
                    "probes": [{"question": q.format(name=name), "answers": [value]} for q in probes],
                })
    rng.shuffle(rows)
    return [{"id": f"devsyl-{i:03d}", **row} for i, row in enumerate(rows)]


if __name__ == "__main__":
    for row in cases():
        sys.stdout.write(json.dumps(row) + "\n")
