"""`reverie eval`: the scoring of format v1 and v2 as pure functions on hand-built cases, progress lines,
the dev sets our generator writes, and the whole harness on the tiny random model (the files and keys)."""

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from trainer import dreaming, text
from trainer.benchmark import main
from trainer.benchmark_report import Phases, report
from trainer.benchmark_scoring import (
    Mark,
    by_category,
    correct,
    load_jsonl,
    load_probes,
    no_sleep_marks,
    summarise,
)

REPO = Path(__file__).resolve().parents[2]


def test_scoring_follows_the_readme():
    assert correct("Her parrot is  called\nLODUN, I think.", ["Lodun"])
    assert correct("It has eight legs", ["8", "eight"])
    assert not correct("Lo dun", ["Lodun"])


def test_a_rejected_answer_makes_a_reply_wrong_even_next_to_a_right_one():
    assert correct("She works at Lobel now.", ["Lobel"], reject=["Gorbel"])
    assert not correct("She works at Lobel, formerly GORBEL.", ["Lobel"], reject=["Gorbel"])
    assert not correct("She works at  gorbel", ["Lobel"], reject=["Gorbel"])
    probe = load_probes([_case("c", 1, "Lobel", reject=["Gorbel"])])[0]
    assert probe.mark("Lobel, not Gorbel") == Mark(False, True)
    assert probe.mark("Lobel") == Mark(True, False)
    assert load_probes([_case("d", 1, "Lodun")])[0].mark("Lodun") == Mark(True, None)  # v1: no stale


def _case(cid, night, answer, category=None, reject=None, **extra):
    probe = {"question": f"What about {cid}?", "answers": [answer]}
    if reject:
        probe["reject"] = reject
    case = {"id": cid, "night": night, "namespace": "default", "relation": "r",
            "episode": {"messages": [{"role": "user", "content": f"{cid} is {answer}."},
                                     {"role": "assistant", "content": "Noted."}]},
            "probes": [probe], **extra}
    if category:
        case["category"] = category
    return case


def _marks(probes, right: set[str], stale: set[str] = frozenset(), nights=None):
    """Marks of every probe (of nights <= `nights` when given): right when its case is in `right`."""
    return {i: Mark(p.case in right, (p.case in stale) if p.reject else None)
            for i, p in enumerate(probes) if nights is None or p.night <= nights}


# night 1: a (user), b (update, superseded by c on night 2); night 2: c (update, corrects b), d (user)
V2 = [_case("a", 1, "Zeb", "user"), _case("b", 1, "Gorbel", "update", superseded_by="c"),
      _case("c", 2, "Lobel", "update", reject=["Gorbel"], supersedes="b"), _case("d", 2, "Qim", "user")]


def test_a_superseded_case_leaves_retention_from_its_corrections_night():
    probes = load_probes(V2)
    assert [p.superseded_at for p in probes] == [None, 2, None, None]
    before, in_context = _marks(probes, set()), _marks(probes, {"a", "b", "c"}, stale={"c"})
    after = [_marks(probes, {"b"}, nights=1), _marks(probes, {"a", "b", "c"}, stale={"c"}, nights=2)]
    s = summarise(probes, range(4), before, in_context, after, nights=2)
    assert s["probes"] == 4 and s["closed_book_before"] == 0.0 and s["in_context"] == 0.75
    assert s["in_context_per_night"] == [1.0, 0.5]
    # after night 1 both night-1 cases count (b's correction is not slept yet); after night 2 only a
    assert s["retention"] == [[0.5], [1.0, 0.5]] and s["closed_book_after"] == [0.5, 0.5]
    # kept compares a alone after nights 1 and 2 (b left both sides): a was missed after night 1
    assert s["kept"] == [[1.0], [None, 1.0]]
    assert s["stale"] == {"probes": 1, "before": 0.0, "in_context": 1.0, "after": [None, 1.0],
                          "retention": [[None], [None, 1.0]]}


def test_kept_compares_the_same_probes_where_retention_rows_do_not():
    probes = load_probes(V2)
    before = _marks(probes, set())
    # after night 1: a recalled, b (superseded on night 2) missed; after night 2: a still recalled
    after = [_marks(probes, {"a"}, nights=1), _marks(probes, {"a", "c"}, nights=2)]
    s = summarise(probes, range(4), before, before, after, nights=2)
    assert s["retention"][0][0] == 0.5 and s["retention"][1][0] == 1.0  # rows count {a, b}, then {a}
    assert s["kept"] == [[1.0], [1.0, 1.0]]  # a after night 2 against a after night 1
    assert "## Kept" in report({**s, "dataset": "d.jsonl", "nights": 2, "base_model": "m", "general_before": None,
                                "total_seconds": 0.0, "general_after": [], "seconds": [], "accepted": [],
                                "baselines": {"no_sleep": {"closed_book_after": [0.0, 0.0]}}})


def test_a_correction_slept_the_same_night_empties_its_row():
    cases = [_case("b", 1, "Gorbel", superseded_by="c"), _case("c", 1, "Lobel", reject=["Gorbel"])]
    probes = load_probes(cases)
    after = [_marks(probes, {"c"}, nights=1)]
    s = summarise(probes, [0], _marks(probes, set()), _marks(probes, set()), after, nights=1)
    assert s["retention"] == [[None]] and s["closed_book_after"] == [None] and "stale" not in s
    report_row = summarise(probes, range(2), _marks(probes, set()), _marks(probes, set()), after, nights=1)
    assert report_row["retention"] == [[1.0]] and report_row["stale"]["after"] == [0.0]


def test_by_category_has_the_top_levels_keys_per_category():
    mixed = V2 + [_case("e", 1, "Tor")]  # no category in a file that has them: "facts"
    probes = load_probes(mixed)
    before, in_context = _marks(probes, set()), _marks(probes, {"a", "e"})
    after = {"sleep": [_marks(probes, {"a", "b"}, nights=1), _marks(probes, {"a", "c", "d"}, stale={"c"}, nights=2)],
             "naive_sft": [_marks(probes, set(), nights=1), _marks(probes, {"d"}, nights=2)]}
    after["no_sleep"] = no_sleep_marks(probes, before, 2)
    cats = by_category(probes, before, in_context, after, nights=2)
    assert list(cats) == ["user", "update", "facts"]
    assert cats["user"]["closed_book_after"] == [1.0, 1.0] and cats["user"]["retention"] == [[1.0], [1.0, 1.0]]
    assert cats["user"]["in_context_per_night"] == [1.0, 0.0] and cats["facts"]["probes"] == 1
    assert cats["update"]["retention"] == [[1.0], [None, 1.0]] and cats["update"]["stale"]["after"] == [None, 1.0]
    assert "stale" not in cats["user"]
    assert cats["user"]["baselines"]["naive_sft"] == {"closed_book_after": [0.0, 1.0], "retention": [[0.0], [0.0, 1.0]]}
    assert cats["update"]["baselines"]["no_sleep"]["stale"]["after"] == [None, 0.0]


def test_a_v1_file_scores_as_before_and_has_no_category():
    cases = [_case(f"c{i}", 1 + i % 2, f"Lodun{i}") for i in range(4)]
    probes = load_probes(cases)
    assert all(p.category is None and p.superseded_at is None and not p.reject for p in probes)
    before = _marks(probes, {"c0"})
    after = [_marks(probes, {"c0", "c2"}, nights=1), _marks(probes, {"c1"}, nights=2)]
    s = summarise(probes, range(4), before, _marks(probes, {"c0", "c1", "c2"}), after, nights=2)
    # the v1 harness's numbers: mean over probes, night rows over that night's probes
    assert s["closed_book_before"] == 0.25 and s["in_context"] == 0.75 and s["in_context_per_night"] == [1.0, 0.5]
    assert s["retention"] == [[1.0], [0.0, 0.5]] and s["closed_book_after"] == [1.0, 0.5] and "stale" not in s
    assert s["kept"] == [[1.0], [0.0, 1.0]]
    assert by_category(probes, before, before, {k: after for k in ("sleep", "naive_sft", "no_sleep")}, 2) == {}


def test_an_unknown_superseded_by_is_an_error():
    with pytest.raises(ValueError, match="not in the file"):
        load_probes([_case("b", 1, "X", superseded_by="nope")])


def test_a_logged_run_gets_one_line_per_phase_with_its_time():
    stream = io.StringIO()
    phases = Phases(stream)  # a StringIO is not a terminal
    with phases.phase("before | closed-book", 3) as update:
        update(2)
        update(3)
    callback = phases.callback("night 2 | sleep")
    for call in [("setup", 0, 1, None), ("setup", 1, 1, None), ("dream", 1, 2, None), ("dream", 2, 2, None),
                 ("seed", 1, 3, 1.5), ("seed", 3, 3, 0.25)]:
        callback(*call)
    phases.finish()
    lines = stream.getvalue().splitlines()
    assert [line.split(" done in ")[0] for line in lines] == [
        "before | closed-book 3/3", "night 2 | sleep | setup", "night 2 | sleep | dream 2/2",
        "night 2 | sleep | seed 3/3"]
    assert all(line.split(" done in ")[1].startswith("0 s") for line in lines) and lines[-1].endswith("(loss 0.250)")


def test_the_report_has_a_table_per_category():
    probes = load_probes(V2)
    before, in_context = _marks(probes, set()), _marks(probes, {"a"})
    after = {"sleep": [_marks(probes, {"a"}, nights=1), _marks(probes, {"a", "c"}, stale={"c"}, nights=2)],
             "naive_sft": [_marks(probes, set(), nights=1), _marks(probes, set(), nights=2)]}
    after["no_sleep"] = no_sleep_marks(probes, before, 2)
    r = {"dataset": "memory.jsonl", "base_model": "m", "nights": 2, "nights_done": 2, "general_before": 0.5,
         "total_seconds": 3.0, "general_after": [0.5, 0.5], "seconds": [1.0, 1.0], "accepted": [True, True],
         **summarise(probes, range(4), before, in_context, after["sleep"], 2),
         "baselines": {k: {**summarise(probes, range(4), before, in_context, after[k], 2),
                           "general_after": [0.5, 0.5]} for k in ("naive_sft", "no_sleep")},
         "by_category": by_category(probes, before, in_context, after, 2)}
    text = report(r)
    assert "## Category `user`" in text and "## Category `update`" in text
    assert "old value named, corrections so far (sleep)" in text


def test_the_dev_sets_load_and_pair_up(tmp_path):
    written = tmp_path / "dev.jsonl"
    subprocess.run([sys.executable, str(REPO / "bench" / "make_memory_set.py"), "--seed", "7", "--out", str(written)],
                   check=True, cwd=REPO)
    for path in (written, REPO / "bench/data/memory-dev-a.jsonl", REPO / "bench/data/memory-dev-b.jsonl"):
        cases = load_jsonl(path)
        probes = load_probes(cases)
        assert len(cases) >= 30 and len(probes) >= len(cases)
        assert {c["category"] for c in cases} == {"user", "assistant", "update", "multi", "long"}
        assert len({c["id"] for c in cases}) == len(cases) and {c["night"] for c in cases} == {1, 2, 3}
        by_id = {c["id"]: c for c in cases}
        for case in cases:
            assert set(case) >= {"id", "night", "namespace", "category", "episode", "probes"}
            assert case["episode"]["messages"][0]["role"] == "user"
            text = " ".join(m["content"] for m in case["episode"]["messages"]).lower()
            for probe in case["probes"]:
                assert probe["question"].strip() and probe["answers"]
                assert any(a.lower() in text for a in probe["answers"]), (case["id"], probe)
                assert all(r.lower() not in " ".join(probe["answers"]).lower() for r in probe.get("reject", []))
            if "superseded_by" in case:
                newer = by_id[case["superseded_by"]]
                assert newer["supersedes"] == case["id"] and newer["night"] > case["night"]
                old = {a for p in case["probes"] for a in p["answers"]}
                assert all(set(p["reject"]) == old for p in newer["probes"])
            if "supersedes" in case:
                assert by_id[case["supersedes"]]["superseded_by"] == case["id"]
        first_person = [c["relation"] for c in cases if c["category"] == "user"]
        assert len(first_person) == len(set(first_person))  # one user: each first-person relation once


def _run_eval(tiny_model_dir, tmp_path, *overrides: str, cases=None, flags=()) -> dict:
    """`reverie eval` on two nights of one invented fact each; returns results.json."""
    cases = cases or [
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
            "--model", str(tiny_model_dir), "--config", "cpu-default", *flags]
    for item in small + list(overrides):
        argv += ["--set", item]
    assert main(argv) == 0
    return json.loads((out / "results.json").read_text())


@pytest.mark.model
def test_eval_writes_results_report_and_plots(tiny_model_dir, tmp_path, capsys):
    results = _run_eval(tiny_model_dir, tmp_path, "gate_reading=open")
    out = tmp_path / "out"
    for key in ("closed_book_before", "in_context", "closed_book_after", "retention", "general_before",
                "general_after", "baselines", "seconds"):
        assert key in results
    assert "by_category" not in results and "stale" not in results  # a v1 file keeps its keys
    assert len(results["closed_book_after"]) == 2 and [len(r) for r in results["retention"]] == [1, 2]
    assert set(results["baselines"]) == {"naive_sft", "no_sleep"}
    assert len(results["baselines"]["naive_sft"]["closed_book_after"]) == 2
    assert results["accepted"] == [True, True] and results["episodes_per_night"] == [1, 1]
    assert (out / "report.md").read_text().startswith("# Sleep benchmark")
    assert (out / "recall.png").is_file() and (out / "retention.png").is_file()
    # before: 2 probes closed-book, 2 in context, 1 general; after night n: n probes and 1 general, twice
    assert len((out / "replies.jsonl").read_text().splitlines()) == 2 + 2 + 1 + 2 * (1 + 1) + 2 * (2 + 1)
    err = capsys.readouterr().err  # not a terminal: a line per phase, every phase of the run
    for phase in ("before | closed-book", "before | in-context", "before | general", "night 1 | sleep | setup",
                  "night 1 | sleep | dream", "night 2 | sleep | seed", "night 2 | sleep | save",
                  "night 2 | sleep | closed-book", "night 2 | naive SFT 2/2", "night 2 | naive SFT | general"):
        assert f"{phase}" in err and " done in " in err, phase


@pytest.mark.model
def test_a_v2_file_reports_categories_and_stale(tiny_model_dir, tmp_path, monkeypatch):
    seen = []
    from trainer import benchmark

    real = benchmark.sleep
    monkeypatch.setattr(benchmark, "sleep", lambda episodes, **kw: seen.extend(episodes) or real(episodes, **kw))
    results = _run_eval(tiny_model_dir, tmp_path, "gate_reading=open", cases=V2)
    assert all(set(e) == {"id", "messages"} for e in seen) and [e["id"] for e in seen] == ["a", "b", "c", "d"]
    assert set(results["by_category"]) == {"user", "update"}
    assert len(results["retention"][1]) == 2 and results["stale"]["probes"] == 1
    assert set(results["by_category"]["update"]["baselines"]) == {"naive_sft", "no_sleep"}
    assert "## Category `update`" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.model
def test_no_naive_skips_the_baseline_and_keeps_the_rest(tiny_model_dir, tmp_path, capsys):
    results = _run_eval(tiny_model_dir, tmp_path, "gate_reading=open", cases=V2, flags=["--no-naive"])
    assert set(results["baselines"]) == {"no_sleep"}
    assert set(results["by_category"]["update"]["baselines"]) == {"no_sleep"}
    assert len(results["closed_book_after"]) == 2 and results["stale"]["probes"] == 1
    report = (tmp_path / "out" / "report.md").read_text()
    assert "naive" not in report and "| no sleep |" in report
    assert not (tmp_path / "out" / "naive-1").exists() and "naive SFT" not in capsys.readouterr().err


@pytest.mark.model
def test_a_refused_night_carries_its_episodes_to_the_next(tiny_model_dir, tmp_path, monkeypatch):
    # every dream grounded on a word the random model never says: tonight's recall is 0, below the floor
    monkeypatch.setattr(dreaming, "agreement", lambda answer, episode, question: (0.5, sorted(text.values(episode))))
    results = _run_eval(tiny_model_dir, tmp_path, "gate_reading=greedy", "min_recall=1", "gate_min_probes=1",
                         "max_general_drop=1")
    assert results["accepted"] == [False, False]
    assert results["episodes_per_night"] == [1, 2]  # night 1's episode is slept on again on night 2


def test_night_adapters_are_read_in_night_order_and_a_night_without_one_is_left_out(tmp_path):
    from trainer.benchmark import night_adapters

    for n in (10, 2, 1, 3):
        (tmp_path / f"night-{n}").mkdir()
        if n != 3:  # a night whose candidate was refused published no adapter
            (tmp_path / f"night-{n}" / "adapter").mkdir()
    (tmp_path / "naive-1" / "adapter").mkdir(parents=True)
    assert night_adapters(tmp_path) == [(n, tmp_path / f"night-{n}" / "adapter") for n in (1, 2, 10)]
