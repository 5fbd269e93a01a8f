"""`reverie eval` end to end on the tiny random model and a two-night toy data set: the files and keys."""

import json

import pytest

from trainer import dreaming
from trainer.benchmark import correct, main

pytestmark = pytest.mark.model


def test_scoring_follows_the_readme():
    assert correct("Her parrot is  called\nLODUN, I think.", ["Lodun"])
    assert correct("It has eight legs", ["8", "eight"])
    assert not correct("Lo dun", ["Lodun"])


def _run_eval(tiny_model_dir, tmp_path, *overrides: str) -> dict:
    """`reverie eval` on two nights of one invented fact each; returns results.json."""
    cases = [
        {"id": f"c{i}", "night": 1 + i % 2, "namespace": "default", "relation": "pet",
         "episode": {"messages": [{"role": "user", "content": f"Mirpa Lovos{i}'s new parrot is named Lodun{i}!"},
                                  {"role": "assistant", "content": "Got it, noted!"}]},
         "probes": [{"question": f"What is the name of Mirpa Lovos{i}'s parrot?", "answers": [f"Lodun{i}"]}]}
        for i in range(2)
    ]
    dataset = tmp_path / "facts.jsonl"
    dataset.write_text("\n".join(json.dumps(c) for c in cases))
    general = tmp_path / "general.jsonl"
    general.write_text(json.dumps({"id": "g", "question": "What is 2 plus 2?", "answers": ["4"]}))
    out = tmp_path / "out"
    small = ["steps=2", "batch_size=2", "dream_max_new_tokens=4", "eval_max_new_tokens=4",
             "on_policy_max_new_tokens=4", "general_prompts=2", "gate_general_prompts=2", "imitation_every=0",
             "torch_threads=1", "expert_rank=4", "max_lora_rank=8", "semantic_model=self", "answers_per_question=2"]
    argv = ["--dataset", str(dataset), "--general", str(general), "--nights", "2", "--out", str(out),
            "--model", str(tiny_model_dir), "--config", "cpu-default"]
    for item in small + list(overrides):
        argv += ["--set", item]
    assert main(argv) == 0
    return json.loads((out / "results.json").read_text())


def test_eval_writes_results_report_and_plots(tiny_model_dir, tmp_path):
    results = _run_eval(tiny_model_dir, tmp_path, "gate_reading=open")
    out = tmp_path / "out"
    for key in ("closed_book_before", "in_context", "closed_book_after", "retention", "general_before",
                "general_after", "baselines", "seconds"):
        assert key in results
    assert len(results["closed_book_after"]) == 2 and [len(r) for r in results["retention"]] == [1, 2]
    assert set(results["baselines"]) == {"naive_sft", "no_sleep"}
    assert len(results["baselines"]["naive_sft"]["closed_book_after"]) == 2
    assert results["accepted"] == [True, True] and results["episodes_per_night"] == [1, 1]
    assert (out / "report.md").read_text().startswith("# Sleep benchmark")
    assert (out / "recall.png").is_file() and (out / "retention.png").is_file()


def test_a_refused_night_carries_its_episodes_to_the_next(tiny_model_dir, tmp_path, monkeypatch):
    # every dream grounded on a word the random model never says: tonight's recall is 0, below the floor
    monkeypatch.setattr(dreaming, "agreement", lambda answer, episode, question: (0.5, ["lodun"]))
    results = _run_eval(tiny_model_dir, tmp_path, "gate_reading=greedy", "min_recall=1", "gate_min_probes=1",
                         "max_general_drop=1")
    assert results["accepted"] == [False, False]
    assert results["episodes_per_night"] == [1, 2]  # night 1's episode is slept on again on night 2
