"""The questions a night would ask of chats written by hand, no model needed: how new phrasings were found
(sessions 36-38). Each chat is read among three lines of small talk, as `dreaming.candidates_of` reads a
night's episodes; a pair (a fact, then its correction) also shows the questions both ask or that the night of
the correction rechecks (`corrections.recheck_questions`): retiring the old value needs one; and which of the
fact's questions the correction would retire were each answer the told sentence itself.

    .venv/bin/python bench/question_shapes.py FILE [--pairs] [--model DIR] [--clozes]

FILE: one chat a line, its turns split by " || " (user first: "My dog is called Dunshi. || What a lovely
name!"); with --pairs, "fact || correction", each the user's, answered "Noted.". Lines starting with "#"
are skipped.
"""

from __future__ import annotations

import argparse
import random
import warnings
from pathlib import Path

from transformers import AutoTokenizer

from trainer.config import SleepConfig
from trainer.corrections import recheck_questions, superseded
from trainer.dreaming import Dream, candidates_of, told_values
from trainer.episodes import episode_windows, told_text

SMALL_TALK = [("How are you today?", "I'm doing well, thanks for asking!"),
              ("Can you tell me a joke?", "Why did the scarecrow win an award? He was outstanding in his field."),
              ("What's a good way to relax?", "A short walk or some deep breathing can help.")]
# what every chat with a name is asked; left out of a pair's shared questions, which they share by the name
_TEMPLATE = ("Repeat what I told you about", "What do you know about")


def chat(eid: str, turns: list[str]) -> dict:
    return {"id": eid, "messages": [{"role": "user" if i % 2 == 0 else "assistant", "content": t}
                                    for i, t in enumerate(turns)]}


def questions(tokenizer, config: SleepConfig, episode: dict, clozes: bool = False) -> list[str]:
    """The candidate questions of one chat among the small talk, in the order a night writes them."""
    episodes = [episode] + [chat(f"small-talk-{i}", list(pair)) for i, pair in enumerate(SMALL_TALK)]
    told = {e["id"]: told_text(e) for e in episodes}
    views = episode_windows(tokenizer, episodes, config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = candidates_of(tokenizer, episodes, views, told, {}, [[] for _ in range(sum(map(len, views.values())))],
                              config, random.Random(0), None, told_values(tokenizer, told))
    return [d.question for d in found if d.episode_id == episode["id"] and (clozes or not d.cloze)]


def retired(tokenizer, turns: list[str], before: list[str], asked: list[str]) -> list[str]:
    """The fact's questions the correction's night would retire (`corrections.superseded`) if every answer
    were the told sentence itself, each night's values read on its own (the fact's night is an earlier one):
    a reading of the rules, not of a model's answers."""
    told = {"fact": turns[0], "correction": turns[1]}
    values = {eid: told_values(tokenizer, {eid: text})[eid] for eid, text in told.items()}
    earlier = [Dream("fact", q, turns[0], "template", key_terms=sorted(values["fact"]), night="1").to_dict()
               for q in before]
    answered = [Dream("correction", q, turns[1], "recheck", key_terms=sorted(values["correction"]))
                for q in dict.fromkeys(asked)]
    gone = superseded(earlier, answered, {"correction": turns[1]}, {"correction": "Noted."})
    return sorted({r.old["question"] for r in gone if not r.old["question"].startswith(_TEMPLATE)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path)
    parser.add_argument("--pairs", action="store_true", help="lines are 'fact || correction'")
    parser.add_argument("--model", default=".cache/models/SmolLM2-135M-Instruct", help="its tokenizer is read")
    parser.add_argument("--clozes", action="store_true", help="show the cloze prompts too")
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    config = SleepConfig.from_yaml("cpu-default")
    lines = [line.strip() for line in args.file.read_text().splitlines() if line.strip() and not line.startswith("#")]
    for line in lines:
        turns = [t.strip() for t in line.split("||")]
        if not args.pairs:
            print("==", line)
            for q in questions(tokenizer, config, chat("chat", turns), args.clozes):
                print("   ", q)
            continue
        fact, correction = chat("fact", [turns[0], "Noted."]), chat("correction", [turns[1], "Noted."])
        before = questions(tokenizer, config, fact)
        after = questions(tokenizer, config, correction)
        earlier = [Dream("fact", q, "", "template", key_terms=["value"]).to_dict() for q in before]
        told = {"correction": told_text(correction)}
        rechecked = recheck_questions(earlier, told, len(earlier)).get("correction", [])
        shared = [q for q in before if (q in after or q in rechecked) and not q.startswith(_TEMPLATE)]
        print("OK  " if shared else "NONE", line)
        print("     asked again:", shared or sorted(set(after)))
        print("     retires:", retired(tokenizer, turns, before, rechecked + after) or "nothing")


if __name__ == "__main__":
    main()
