"""bench/make_memory_set.py writes the committed dev sets again from their documented commands, and its
spoken table tells the user's own facts in the loose shapes it promises."""

import json
from pathlib import Path

from bench.make_memory_set import SPOKEN, make, parse_mix

DATA = Path(__file__).resolve().parents[2] / "bench" / "data"


def _lines(cases):
    return [json.dumps(c) for c in cases]


def test_the_committed_dev_sets_are_what_their_commands_write():
    written_c = make(5, 2, parse_mix("user=2,assistant=6,update=1,multi=1,long=1"))
    assert _lines(written_c) == (DATA / "memory-dev-c.jsonl").read_text().splitlines()
    written_d = make(7, 2, parse_mix("user=6,assistant=2,update=2,multi=1,long=1"), "spoken")
    assert _lines(written_d) == (DATA / "memory-dev-d.jsonl").read_text().splitlines()
    written_e = make(11, 2, parse_mix("user=5,assistant=3,update=3,multi=1,long=1"), "everyday", "everyday", 1.0)
    assert _lines(written_e) == (DATA / "memory-dev-e.jsonl").read_text().splitlines()


def test_the_everyday_set_corrects_the_users_own_facts_in_other_words():
    cases = make(11, 2, parse_mix("user=5,assistant=3,update=3,multi=1,long=1"), "everyday", "everyday", 1.0)
    corrections = [c for c in cases if c.get("supersedes")]
    assert len(corrections) == 3 and all(c["relation"].startswith("my ") for c in corrections)
    # requests from the everyday table only
    from bench.make_memory_set import ASSIST_EVERYDAY
    things = {t for a in ASSIST_EVERYDAY for t in a[3]}
    assert all(c["relation"].removeprefix("suggested ") in things for c in cases if c["category"] == "assistant")


def test_the_spoken_set_tells_the_users_own_facts_from_its_own_table():
    cases = make(3, 2, parse_mix("user=5,assistant=0,update=1,multi=0,long=0"), "spoken")
    own = [c for c in cases if c["relation"].startswith("my ")]
    assert own and all(c["relation"].removeprefix("my ") in SPOKEN for c in own)
    # the trainer may read only the messages: no probe's question is said in the chat
    for c in cases:
        said = " ".join(m["content"] for m in c["episode"]["messages"])
        assert all(p["question"] not in said for p in c["probes"])
